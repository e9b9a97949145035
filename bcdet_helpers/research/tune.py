"""Equal-budget tuning of every arm with Optuna, scored on validation images only.

The paper gives no learning rates and no switch points, so an untuned arm is a strawman: our first
``switching`` schedule entered SGD at 1e-2 and blew up in every full-width run. A fair comparison
gives every arm the *same number of trials* of the same sampler (Optuna's TPE, seeded) over its
search space (``profiles.SEARCH_SPACES``, beside the arms themselves).

What a trial sees: fold 0 of the grouped split is held out as the test part and never read; the
trial trains on the other folds' training part and is scored on the validation part carved from
them (``data.split.make_split``). It does that :data:`INNER_RUNS` times, with the run seeds
``seed, seed + 1``: each seed carves a *different* validation set out of the training part and
starts from different weights, and the trial's score is the mean over those runs. One run on one
89-image validation set has a standard error of about 5 points -- enough to crown a lucky point
(issue #28: decay's winning 0.746 became the worst arm in cross-validation). A run's score is the
mean validation accuracy of its last five epochs -- what the final weights are worth, smoothed
over epochs, so a schedule whose ending wobbles pays for it and one lucky epoch does not win. A profile
may score macro-F1 instead (``Profile.tune_score``: ``class`` does, so that a 24-epoch run cannot win by
never predicting the smallest class, #29).

Pruning, the same rule for every arm: after a trial's first run, Optuna's ``MedianPruner`` stops it
when that run scored below the median first run of the trials before it (after
:data:`PRUNE_AFTER` trials). A pruned trial counts against the arm's budget like a finished one
(every arm gets the same number of points looked at), but only finished trials -- scored on every
validation set -- can be chosen.

The protocol (inner runs, score, pruner, search space, seed) is stored on each Optuna study; a run
of ``bcdet tune`` with another protocol or ``--seed`` is refused rather than mixed into it.

Storage: a SQLite file under ``runs/<profile>/tuning/`` by default, so a killed ``bcdet tune``
resumes where it stopped (a trial that was running is marked failed after a grace period and a
new one takes its place). Workers on several machines share one study through a PostgreSQL or
MySQL URL (``--storage postgresql://user:pw@host/db``, Optuna's RDB storage): start the same
command on each machine. ``--jobs N`` starts N single-thread workers on this machine.

Over 350 lines on purpose: the protocol, its workers and the summary that applies its rules (score,
budget, stability filter) share this module's constants and Optuna helpers; split, the halves would import
each other.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
import multiprocessing as mp
import time
from functools import partial
from pathlib import Path

from ..device import auto_jobs
from ..errors import BcdetError
from ..paths import runs_dir
from ..profiles import KINDS, SEARCH_SPACES, get_profile
from ..options import check_seed
from ..runinfo import environment_info, git_commit, write_json
from .workers import in_workers

__all__ = ["tune", "suggest", "storage_url", "summarize", "objective_value", "stability_constraint", "export", "tuned_entry",
           "auto_jobs"]

LAST_EPOCHS = 5  # a run's score averages the validation accuracy of this many final epochs
STABLE_RATIO = 2.0  # a phase whose peak training loss exceeds 2 x its entry loss has blown up (#13)
TUNING_FOLD = 0  # the held-out fold whose training part tuning may use
INNER_RUNS = 2  # runs per trial, seeds seed, seed + 1: two validation sets carved from the training part
PRUNE_AFTER = 8  # trials before the median pruner may stop a trial after its first run
TRIALS = 24  # trials per arm by default: TPE's 10 random start-up trials and 14 guided ones (#28)
MAX_SAMPLER_SEED = 2**32  # numpy's seed range: every seed derived here is taken modulo this


SCORES = {"val_acc": "validation accuracy", "val_f1": "validation macro-F1"}  # Profile.tune_score's choices


def protocol(seed: int, arm: str, score: str = "val_acc") -> dict:
    """What makes two tuning runs the same study: stored on the Optuna study, checked on resume. The
    score is named only when it is not accuracy, so the studies recorded before it was a choice resume."""
    return {"inner_runs": INNER_RUNS, "last_epochs": LAST_EPOCHS, "fold": TUNING_FOLD, "prune_after": PRUNE_AFTER,
            "stable_ratio": STABLE_RATIO, "seed": int(seed),
            "search_space": {k: list(v) if isinstance(v, tuple) else v for k, v in SEARCH_SPACES[arm].items()},
            **({"score": score} if score != "val_acc" else {})}


def storage_url(profile: str) -> str:
    """The default storage: ``sqlite:///runs/<profile>/tuning/optuna.db``."""
    folder = runs_dir(profile) / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


DRIVERS = {"postgresql": "pip install psycopg2-binary", "mysql": "pip install pymysql (and a mysql+pymysql:// URL)"}


def check_storage(url: str) -> str:
    """``url`` parsed and opened before the first trial, or one clear :class:`BcdetError`: a URL that is
    not one, a SQLite file whose folder does not exist, a database driver that is not installed (named,
    with its install line), a server that does not answer."""
    import sqlalchemy
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BcdetError(f"--storage {url!r} is not a database URL. Give e.g. sqlite:///tuning.db (a local file) "
                         "or postgresql://user:password@host/db (shared by several machines).") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise BcdetError(f"--storage {url!r}: the folder {folder} does not exist. Create it, or give a "
                             "SQLite file in an existing folder.")
    try:
        engine = sqlalchemy.create_engine(parsed)
        with engine.connect():
            pass
        engine.dispose()
    except (ImportError, ModuleNotFoundError) as exc:
        how = DRIVERS.get(backend, f"install the Python driver for {backend}")
        raise BcdetError(f"--storage {url.split('@')[-1]!r}: the {backend} driver is not installed "
                         f"({exc.name or exc}). Install it: {how}.") from None
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise BcdetError(f"--storage {url.split('@')[-1]!r} cannot be opened: {first}. Check the URL, and that the "
                         "server runs and accepts this user.") from None
    return url


def _check_protocol(study, wanted: dict) -> None:
    """Refuse to add trials to a study run under another protocol or seed (see the module docstring)."""
    have = study.user_attrs.get("protocol")
    if have is None and not study.trials:
        study.set_user_attr("protocol", wanted)
        return
    if have != json.loads(json.dumps(wanted)):
        was = "an older protocol (one validation set per trial)" if have is None else \
            ", ".join(f"{k}={have.get(k)!r}" for k in wanted if have.get(k) != wanted[k] and k != "search_space") \
            or "another search space"
        raise BcdetError(f"The Optuna study {study.study_name!r} was tuned with {was}; this run's protocol differs "
                         f"(seed {wanted['seed']}, {wanted['inner_runs']} validation sets per trial). Rerun with the "
                         "study's own --seed to resume it, or give another --storage for a new study.")


def suggest(trial, arm: str) -> dict:
    """One point of ``arm``'s search space, drawn by ``trial``."""
    params = {}
    for name, spec in SEARCH_SPACES[arm].items():
        kind = spec[0]
        if kind == "log":
            params[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, spec[1], spec[2])
        elif kind == "choice":
            params[name] = trial.suggest_categorical(name, list(spec[1]))
        else:
            raise ValueError(f"unknown search-space kind {kind!r} for {arm}.{name}")
    return params


def stability_constraint(max_phase_ratio: float) -> float:
    """A trial's constraint (Optuna: feasible when <= 0): its largest phase ratio (peak training
    loss over the phase's entry loss) minus :data:`STABLE_RATIO`. TPE keeps infeasible trials out of
    its model of good rates, so once its random start-up trials are done it looks for high scores
    *among stable runs*; the score itself stays the plain validation accuracy (issue #13)."""
    return float(max_phase_ratio) - STABLE_RATIO if math.isfinite(max_phase_ratio) else 1e9


def objective_value(history, score: str = "val_acc") -> float:
    """The mean of column ``score`` (:data:`SCORES`: validation accuracy by default) over the last
    :data:`LAST_EPOCHS` epochs."""
    return float(history[score].tail(LAST_EPOCHS).mean())


def _study_name(profile: str, arm: str, kind: str) -> str:
    return f"{profile}-{arm}-{kind}"


def _storage(url: str):
    import warnings

    import optuna

    # heartbeats let a later worker mark the trials of a killed one as failed (then not counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)


def _counted_states():
    """The trial states that use up the budget: finished, pruned after its first run, or running."""
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _budget_trials(study, before: int | None = None) -> list:
    """The trials that use up the budget (a worker's surplus trial, stepped back at once, does not)."""
    return [t for t in study.get_trials(deepcopy=False, states=_counted_states())
            if not t.user_attrs.get("surplus") and (before is None or t.number < before)]


def _counted(study) -> int:
    return len(_budget_trials(study))


def trial_folder(profile: str, arm: str, kind: str, url: str) -> Path:
    """Where a study's trial runs train: ``runs/<profile>/tuning/<arm>-<kind>-<storage>/``, one folder per
    storage, so two studies (another ``--storage``) never meet in one trial's run folder."""
    import hashlib

    tag = hashlib.sha1(url.split("@")[-1].encode()).hexdigest()[:8]
    return runs_dir(profile) / "tuning" / f"{arm}-{kind}-{tag}"


def inner_seeds(seed: int) -> list[int]:
    """The run seeds of one trial: ``seed``, ``seed + 1``, ... (modulo numpy's range)."""
    return [(seed + k) % MAX_SAMPLER_SEED for k in range(INNER_RUNS)]


def _worker(profile, arm, kind, trials, url, seed, device, progress, worker):
    """One tuning process: trials until the study holds ``trials`` (see :func:`tune`). Ctrl-C ends it
    quietly: Optuna marks the trial it was running as failed, which does not count."""
    try:
        _optimize(profile, arm, kind, trials, url, seed, device, progress, worker)
    except KeyboardInterrupt:
        if mp.parent_process() is not None:
            raise SystemExit(130) from None  # a worker process: the tuner says it once
        raise


def _optimize(profile, arm, kind, trials, url, seed, device, progress, worker):
    import warnings

    import optuna

    from ..profiles import schedule
    from ..runs import train_run
    from ..train import phase_stability

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a Ctrl-C'd trial is not a 40-line warning
    prof = get_profile(profile)  # a name or a Profile (tests pass a smaller one)
    study = optuna.create_study(study_name=_study_name(prof.name, arm, kind), storage=_storage(url),
                                direction="maximize", load_if_exists=True,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER, n_warmup_steps=0))
    _check_protocol(study, protocol(seed, arm, prof.tune_score))
    # seeded past the trials so far: a resumed study must not replay its first random draws
    study.sampler = optuna.samplers.TPESampler(seed=(seed + 1000 * worker + len(study.trials)) % MAX_SAMPLER_SEED)
    folder = trial_folder(prof.name, arm, kind, url)

    def objective(trial):
        # two workers can start a trial at the same moment: the one numbered past the budget steps back
        if len(_budget_trials(study, before=trial.number)) >= trials:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise optuna.TrialPruned("the study already holds its trials")
        params = suggest(trial, arm)
        t0 = time.perf_counter()
        scores, ratios = [], []
        for k, run_seed in enumerate(inner_seeds(seed)):
            res = train_run(prof, arm, seed=run_seed, kind=kind, fold=TUNING_FOLD, params=params, device=device,
                            run_dir=folder / f"trial{trial.number:03d}-seed{run_seed}", progress=False, resume=True)
            scores.append(objective_value(res.history, prof.tune_score))
            ratios.append(max(r["ratio"] for r in phase_stability(res.history)))
            trial.set_user_attr("scores", scores)
            trial.set_user_attr("max_phase_ratio", max(ratios))
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            if k == 0:
                trial.report(scores[0], step=0)
                if trial.should_prune():
                    if progress:
                        print(f"[{arm} worker {worker}] trial {trial.number}: pruned after its first run "
                              f"({scores[0]:.3f}, below the median)", flush=True)
                    raise optuna.TrialPruned()
        trial.set_constraint("phase_ratio", stability_constraint(max(ratios)))
        trial.set_user_attr("git_commit", git_commit())  # the code the trial ran (the summary's may be later)
        trial.set_user_attr("phases", json.dumps([asdict(p) for p in schedule(arm, prof.epochs, params=params)]))
        value = float(sum(scores) / len(scores))
        if progress:
            print(f"[{arm} worker {worker}] trial {trial.number}: score {value:.3f} {[round(x, 3) for x in scores]} "
                  f"(max phase ratio {max(ratios):.2f}, {time.perf_counter() - t0:.0f} s) {params}", flush=True)
        return value

    with warnings.catch_warnings():  # a killed worker's trial must not count as running
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if _counted(study) >= trials:
        return

    def stop_when_full(study, _trial):
        if _counted(study) >= trials:
            study.stop()

    study.optimize(objective, n_trials=trials, callbacks=[stop_when_full], catch=())


def tune(profile, arm: str, trials: int, storage: str | None = None, kind: str = "grouped",
         seed: int = 0, device: str = "cpu", jobs: int | None = None, out: str | Path | None = None,
         progress: bool = True) -> dict:
    """Run (or resume) the study of ``arm`` until it holds ``trials`` finished trials; returns
    :func:`summarize`'s summary, also written to ``out`` (default ``runs/<profile>/tuning/``).

    ``profile`` is a name or a :class:`~bcdet_helpers.profiles.Profile`."""
    try:
        prof = get_profile(profile)
    except ValueError as exc:  # an unknown profile: the message lists the valid names
        raise BcdetError(str(exc)) from None
    if arm not in SEARCH_SPACES:
        raise BcdetError(f"Unknown arm {arm!r}. Choose one of: {', '.join(SEARCH_SPACES)}.")
    if kind not in KINDS:
        raise BcdetError(f"Unknown kind {kind!r}. Choose one of: {', '.join(KINDS)}.")
    check_seed(seed)
    jobs = auto_jobs(device) if jobs is None else jobs
    if trials < 1 or jobs < 1:
        raise BcdetError(f"--trials and --jobs must be at least 1, got {trials} and {jobs}.")
    url = check_storage(storage or storage_url(prof.name))
    t0 = time.time()
    if progress:
        where = "the CPU" if str(device) == "cpu" else f"device {device}"
        print(f"tuning {arm} on {prof.name}: {trials} trials, "
              + (f"{jobs} workers at once on {where}" if jobs > 1 else f"one run at a time on {where}"), flush=True)
    if jobs > 1:  # N single-thread workers: on 2 CPU cores, 1.13x one two-thread run (issue #17)
        _worker(prof, arm, kind, 0, url, seed, device, False, 0)  # creates the study once, before they race
    # each worker pulls trials from the shared storage until the study holds `trials`
    for _ in in_workers(partial(_worker, prof, arm, kind, trials, url, seed, device, progress), range(jobs), jobs):
        pass
    return summarize(prof.name, arm, kind, url, out, wall_time=time.time() - t0, device=device)


def summarize(profile: str, arm: str, kind: str, url: str, out=None, wall_time: float | None = None,
              device: str = "cpu") -> dict:
    """Write ``trials-<arm>.csv``, ``best-<arm>.json`` and two figures into ``out``; return the best."""
    import optuna

    study = optuna.load_study(study_name=_study_name(profile, arm, kind), storage=_storage(url))
    out = Path(out) if out is not None else runs_dir(profile) / "tuning"
    out.mkdir(parents=True, exist_ok=True)
    df = study.trials_dataframe()
    df.to_csv(out / f"trials-{arm}.csv", index=False)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise BcdetError(f"The study {study.study_name} has no finished trial yet; run bcdet tune again.")
    budget = [t for t in _budget_trials(study) if t.state != optuna.trial.TrialState.RUNNING]
    # the best *stable* trial: no phase's peak training loss above STABLE_RATIO x its entry loss
    stable = [t for t in complete if t.user_attrs.get("max_phase_ratio", math.inf) <= STABLE_RATIO]
    best = max(stable, key=lambda t: t.value) if stable else study.best_trial
    top = study.best_trial  # the sensitivity row of #28: what the stability filter turned away, if anything
    seconds = float(sum(t.user_attrs.get("seconds", math.nan) for t in budget))
    summary = {
        "profile": profile, "arm": arm, "split": kind, "fold": TUNING_FOLD,
        "score": f"mean over {study.user_attrs.get('protocol', {}).get('inner_runs', 1)} runs (seeds seed, seed+1: "
                 f"each its own validation set carved from the training part) of the mean "
                 f"{SCORES[study.user_attrs.get('protocol', {}).get('score', 'val_acc')]} of "
                 f"the last {LAST_EPOCHS} epochs (test fold {TUNING_FOLD} never read)",
        "protocol": study.user_attrs.get("protocol"),
        "trials": len(budget), "finished_trials": len(complete), "pruned_trials": len(budget) - len(complete),
        "stable_trials": len(stable), "stable": bool(stable),
        "rule": f"highest score among finished trials whose every phase peaks below {STABLE_RATIO} x its entry loss",
        "best_trial": best.number, "best_value": best.value, "params": best.params,
        "best_user_attrs": best.user_attrs,
        "best_unfiltered": {"trial": top.number, "value": top.value, "params": top.params,
                            "max_phase_ratio": top.user_attrs.get("max_phase_ratio")},
        "training_seconds": seconds, "wall_time_s": wall_time,
        "storage": url.split("@")[-1], "study": study.study_name, "git_commit": git_commit(),
        "trial_git_commits": sorted({str(t.user_attrs.get("git_commit", "not recorded")) for t in complete}),
        "environment": environment_info(device),
    }
    write_json(out / f"best-{arm}.json", summary)
    _figures(study, out / f"history-{arm}.png", out / f"importance-{arm}.png")
    return summary


def _figures(study, history_png: Path, importance_png: Path) -> None:
    """Optuna's optimisation-history and parameter-importance plots (matplotlib backend)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    with warnings.catch_warnings():  # the matplotlib backend is marked experimental
        warnings.simplefilter("ignore")
        ax = ovm.plot_optimization_history(study)
        ax.figure.savefig(history_png, dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
        if len(study.get_trials(states=(TrialState.COMPLETE,))) >= 2:
            ax = ovm.plot_param_importances(study)
            ax.figure.savefig(importance_png, dpi=110, bbox_inches="tight")
            plt.close(ax.figure)


def tuned_entry(folder: str | Path, trials: int = TRIALS) -> dict:
    """The ``profiles.TUNED[<profile>]`` entry an exported tuning folder (``best-<arm>.json`` of every
    arm, :func:`export`) supports: ``{arm: {"params": ..., "source": ...}}``. Refused -- with what is
    missing -- unless every arm has the same number of finished trials, at least ``trials``, and a
    stable best trial: the equal-budget rule and the stability rule of issue #13."""
    folder = Path(folder)
    found = {arm: folder / f"best-{arm}.json" for arm in SEARCH_SPACES}
    missing = [p.name for p in found.values() if not p.exists()]
    if missing:
        raise BcdetError(f"{folder} lacks {', '.join(missing)}: export every arm's study first "
                         "(bcdet tune --export DIR).")
    best = {arm: json.loads(p.read_text()) for arm, p in found.items()}
    counts = {arm: b["trials"] for arm, b in best.items()}
    if len(set(counts.values())) > 1 or min(counts.values()) < trials:
        raise BcdetError(f"Unequal or short budgets {counts}: every arm needs the same number of trials, at least "
                         f"{trials}. Run the rounds on (bcdet tune --trials N for every arm).")
    unstable = [arm for arm, b in best.items() if not b["stable"]]
    if unstable:
        raise BcdetError(f"No stable trial for {', '.join(unstable)}: no tuned value to adopt for them.")
    return {arm: {"params": b["params"],
                  "source": f"{folder.as_posix()}/best-{arm}.json: trial {b['best_trial']} of {b['trials']}, "
                            f"score {b['best_value']:.3f}, study {b['study']}, commit "
                            # the code the best trial ran, not the code that exported the record
                            f"{(b.get('best_user_attrs') or {}).get('git_commit', b['git_commit'])}"}
            for arm, b in best.items()}


def export(profile: str, url: str, out: str | Path, kind: str = "grouped") -> list[dict]:
    """Summaries of every arm's study in ``url`` written to ``out`` (for ``results/tuning/<profile>/``),
    plus a copy of a SQLite storage file, so a later session can resume the same studies."""
    import shutil
    import sqlite3

    import optuna

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    finished = {s.study_name for s in optuna.get_all_study_summaries(storage=_storage(url))
                if s.best_trial is not None}
    done = [summarize(profile, arm, kind, url, out) for arm in SEARCH_SPACES
            if _study_name(profile, arm, kind) in finished]
    if url.startswith("sqlite:///"):  # an online backup: safe while workers write
        src, dst = sqlite3.connect(url[len("sqlite:///"):]), sqlite3.connect(out / "optuna.db.tmp")
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        shutil.move(out / "optuna.db.tmp", out / "optuna.db")
    return done
