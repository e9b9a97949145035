"""``make reproduce`` / ``bcdet reproduce``: the whole course, headless, with one profile.

Papermill executes notebooks 01 -> 05 in order, each with ``{"profile": profile}`` injected into
its ``parameters`` cell and ``notebooks/`` as working directory, exactly as a student would run
them top to bottom. What it leaves under ``runs/<profile>/``:

* ``notebooks/NN_*.ipynb`` -- the executed notebooks, outputs included
* ``figures/*.png``        -- written by the notebooks themselves
* ``metrics.json``         -- written by notebook 05; we add the wall time of every notebook
* ``report.md``            -- one page, readable without Jupyter: ours vs the paper, the
  switching-vs-constant verdict, the leakage gap, device, wall time, links to the key figures

Before anything runs it prints the device and an estimate of the training time, from a quick
measurement (or from finished runs of this profile on the same kind of device) -- never a
guessed number. A failing notebook stops the run with the notebook and the cell named.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from .errors import BcdetError
from .paths import CLASSES, project_root, runs_dir, use_runs_dir

# The kernel papermill runs and every notebook's metadata names: Jupyter's own "python3", which
# inside .venv's Jupyter is .venv's Python. No user-wide kernel is registered (see the Makefile).
KERNEL = "python3"

REPORT_FIGURES = (  # (file stem under figures/, caption) -- the ones report.md links, if present
    ("05_forest", "The verdict: paired differences with clustered 95% CIs (cross-validated study)"),
    ("05_confusion_matrices", "Confusion matrices (chapter 04's runs on their test fold, final weights)"),
    ("05_roc_curves", "ROC curves (one-vs-rest)"),
    ("05_reliability", "Reliability diagram"),
    ("05_gradcam", "Grad-CAM with the lesion mask outlined"),
    ("05_misclassified", "Misclassified test images"),
    ("04_histories", "Training curves (chapter 04)"),
)


def course_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The course notebooks ``NN_*.ipynb`` in chapter order."""
    folder = Path(folder) if folder is not None else project_root() / "notebooks"
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


# ------------------------------------------------------------------------------ time estimate
def _n_train_images(prof) -> int:
    """Training images per epoch for this profile: the dataset's images (as the index counts them;
    BUSI's published counts when no copy is found) after ``max_per_class``, times the training
    fraction."""
    from .data.check import EXPECTED_IMAGES
    from .data.index import list_images
    from .data.locate import find_busi

    root = find_busi()
    counts = dict(EXPECTED_IMAGES)
    if root is not None:
        counts = {c: sum(1 for p in list_images(root) if p.parent.name == c) for c in CLASSES}
    if prof.max_per_class:
        counts = {c: min(n, prof.max_per_class) for c, n in counts.items()}
    return max(1, round(sum(counts.values()) * (1 - 1 / prof.folds) * (1 - prof.val_fraction)))


def _recorded_seconds_per_epoch(profile: str, device_type: str) -> float | None:
    """Median seconds/epoch of finished runs of this profile on the same device type, if any."""
    values = []
    for result in runs_dir(profile).glob("*/result.json"):
        try:
            info = json.loads(result.read_text())
        except (OSError, ValueError):
            continue
        if str(info.get("environment", {}).get("device", "")).split(":")[0] == device_type:
            spe = info.get("seconds_per_epoch")
            if spe and math.isfinite(spe):
                values.append(float(spe))
    if not values:
        return None
    values.sort()
    return values[len(values) // 2]


def _measure_seconds_per_epoch(prof, device, n_train: int) -> float:
    """Time a few real training steps (forward + backward + Adam) of this profile's ResNet9.

    On the CPU the cost grows linearly with the number of images, so we time small batches and
    scale to an epoch's images; on a GPU we time full batches (small ones would overestimate).
    """
    import torch
    import torch.nn.functional as F

    from .model import build_model

    torch.manual_seed(0)
    model = build_model(prof).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = prof.batch_size if device.type != "cpu" else min(prof.batch_size, 32)
    x = torch.randn(batch, prof.channels, prof.image_size, prof.image_size, device=device)
    y = torch.randint(0, len(CLASSES), (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up: allocation, kernel selection
    if device.type == "cuda":
        torch.cuda.synchronize()
    timed, t0 = 0, time.perf_counter()
    while timed < 3 and (timed == 0 or time.perf_counter() - t0 < 5):
        step()
        timed += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_image = (time.perf_counter() - t0) / (timed * batch)
    # + validation (a forward pass over ~val/train as many images, ~1/3 of a training step each)
    val_share = prof.val_fraction / (1 - prof.val_fraction)
    return per_image * n_train * (1 + val_share / 3)


STUDY_PROFILES = ("paper", "laptop")  # `bcdet reproduce` runs the cross-validated study for these by default


def runs_study(profile: str, study: bool | None = None) -> bool:
    """Does a reproduction of ``profile`` run notebook 05's cross-validated study? ``study`` (``--study`` /
    ``--no-study``) decides when given; else yes for :data:`STUDY_PROFILES` (researchers get the full
    study; ``class`` and ``smoke`` keep it opt-in)."""
    return bool(study) if study is not None else profile in STUDY_PROFILES


def study_seeds(prof, random_seeds=None) -> dict[str, list[int]]:
    """Seeds per split kind of the study: the profile's seeds for ``grouped``; for ``random`` (which only
    measures the leakage gap) ``random_seeds``, by default the first seed only."""
    out = {"grouped": list(prof.seeds), "random": list(random_seeds) if random_seeds else list(prof.seeds[:1])}
    return {k: v for k, v in out.items() if k in prof.splits}


def planned_runs(prof, study: bool = True, random_seeds=None) -> list[tuple[str, str, int, int]]:
    """``(schedule, split, seed, fold)`` of every training run a reproduction of ``prof`` starts.

    Notebook 04's runs (the profile's *own* arms on its first split and seed, fold 0 -- notebook 04
    gets only ``profile``, so a smaller study such as ``--seeds 1 --splits random`` does not change
    them; notebook 05 scores these same runs) plus, when ``study``, notebook 05's cross-validated
    study: arms x folds x the seeds of each split kind (:func:`study_seeds`).
    """
    from .profiles import get_profile

    try:
        own = get_profile(prof.name)
    except ValueError:  # a Profile built by hand, not one of PROFILES
        own = prof
    chapter04 = [(s, own.splits[0], own.seeds[0], 0) for s in own.schedules]
    return list(dict.fromkeys((study_runs(prof, random_seeds) if study else []) + chapter04))


def study_runs(prof, random_seeds=None) -> list[tuple[str, str, int, int]]:
    """``(schedule, split, seed, fold)`` of the cross-validated study: 5 folds x arms x seeds per kind."""
    return [(s, kind, seed, fold) for kind, seeds in study_seeds(prof, random_seeds).items() for seed in seeds
            for fold in range(prof.folds) for s in prof.schedules]


def estimate(profile="paper", device="auto", study: bool | None = None, random_seeds=None) -> dict:
    """How long the training in the course will take on ``device``, and where the number comes from.

    Runs = :func:`planned_runs` (notebook 04's runs, plus notebook 05's cross-validated study when it
    runs -- :func:`runs_study`: by default for the paper and laptop profiles -- each counted once),
    minus runs already finished in ``runs/<profile>/``. ``profile`` is a name or a
    :class:`~bcdet_helpers.profiles.Profile` (e.g. one with fewer seeds). Seconds per epoch come from
    those finished runs on the same device type when there are some, else from timing a few
    training steps now. Notebook 03's small depth experiment, data preparation and evaluation come
    on top (minutes on a CPU).
    """
    from .profiles import get_profile
    from .train import choose_device, run_dir_for

    prof = get_profile(profile)
    dev = choose_device(device)
    with_study = runs_study(prof.name, study)
    runs = planned_runs(prof, with_study, random_seeds)
    chapter04 = planned_runs(prof, False)
    cv = study_runs(prof, random_seeds) if with_study else []
    done = sum((run_dir_for(prof.name, s, sp, seed, fold) / "result.json").exists() for s, sp, seed, fold in runs)
    n_train = _n_train_images(prof)
    spe = _recorded_seconds_per_epoch(prof.name, dev.type)
    source = "recorded (median of finished runs of this profile on this device type)"
    if spe is None:
        spe = _measure_seconds_per_epoch(prof, dev, n_train)
        source = "measured now (a few training steps of this profile's ResNet9)"
    epochs = (len(runs) - done) * prof.epochs
    return {
        "profile": prof.name,
        "device": str(dev),
        "runs": len(runs),
        "runs_chapter04_only": len(set(chapter04) - set(cv)),
        "runs_study": len(cv),
        "study": with_study,
        "study_seeds": study_seeds(prof, random_seeds) if with_study else {},
        "folds": prof.folds,
        "runs_done": done,
        "epochs_per_run": prof.epochs,
        "epochs_to_train": epochs,
        "n_train_images": n_train,
        "seconds_per_epoch": spe,
        "seconds_per_epoch_source": source,
        "training_seconds": epochs * spe,
    }


def _fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_estimate(est: dict) -> None:
    extra = est.get("runs_chapter04_only", 0)
    if est.get("study"):
        seeds = ", ".join(f"{k}: {len(v)} seed(s)" for k, v in est.get("study_seeds", {}).items())
        what = (f"(notebook 05's cross-validated study: {est['folds']} folds x arms x seeds per split kind "
                f"[{seeds}] = {est['runs_study']} runs"
                + (f", plus notebook 04's {extra} run(s) with the profile's own seed and split" if extra else "") + ") ")
    else:
        what = "(notebook 04's arms on one fold; notebook 05 scores them -- its cross-validated study is not run) "
    print(
        f"Profile {est['profile']!r}: {est['runs']} training runs x {est['epochs_per_run']} epochs " + what
        + f"({est['runs_done']} already finished and reused), ~{est['n_train_images']} training images per epoch."
    )
    print(
        f"Estimated training time: ~{_fmt_duration(est['training_seconds'])} "
        f"({est['seconds_per_epoch']:.2f} s/epoch, {est['seconds_per_epoch_source']}); "
        "data preparation, notebook 03's experiment and evaluation come on top."
    )
    if est["device"].startswith("cpu") and est["training_seconds"] > 1800:
        print(f"No GPU found: this will take a while on the CPU. {faster_choices(est['profile'], est.get('study'))} "
              "A CUDA GPU does 'paper' in minutes.")
    sys.stdout.flush()


# ------------------------------------------------------------------------ starting a long job
LONG_JOB_SECONDS = 3600  # above this, nobody starts a reproduction by accident


def faster_choices(profile: str, study: bool | None = None) -> str:
    """What to run instead of a long reproduction: a lighter profile, and -- when the reproduction runs
    the cross-validated study (``study``, default :func:`runs_study`) -- a smaller one, or none."""
    from .profiles import get_profile

    text = ""
    if profile == "paper":
        text = ("The 'laptop' profile is the CPU-friendly one: bcdet reproduce --profile laptop "
                "(make reproduce PROFILE=laptop). ")
    try:
        prof = get_profile(profile)
    except ValueError:
        return text
    if not runs_study(profile, study):
        return text
    full = len(planned_runs(prof, True))
    small = len(planned_runs(get_profile(profile, seeds=prof.seeds[:1], splits=["grouped"]), True))
    if small < full:
        text += (f"A smaller study trains {small} runs instead of {full}: --seeds {prof.seeds[0]} --splits grouped "
                 f"(make reproduce ARGS=\"--seeds {prof.seeds[0]} --splits grouped\"). ")
    return text + f"--no-study trains only notebook 04's {len(planned_runs(prof, False))} runs."


def _interactive() -> bool:
    """Is someone at a terminal to answer? (No under make -j, CI, nohup, pytest, a pipe.)"""
    try:
        return sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def confirm_long_job(est: dict, yes: bool = False) -> None:
    """Return when the job may start; else :class:`BcdetError` saying how to start it on purpose.

    Jobs up to :data:`LONG_JOB_SECONDS` of estimated training start at once. A longer one starts
    with ``yes`` (``--yes``, ``make reproduce YES=1``); otherwise on a terminal we ask, default no,
    naming the faster choices; with nobody to ask, we refuse and say how to opt in.
    """
    if est["training_seconds"] <= LONG_JOB_SECONDS or yes:
        return
    took = _fmt_duration(est["training_seconds"])
    opt_in = "add --yes (make reproduce YES=1)"
    if _interactive():
        print(f"\nThis reproduction trains for ~{took} on {est['device']}. {faster_choices(est['profile'], est.get('study'))}")
        try:
            answer = input(f"Start the ~{took} job now? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            return
        raise BcdetError(f"Not started (the answer was not 'y'). To start it without this question, {opt_in}.")
    raise BcdetError(
        f"Not started: the training alone is estimated at ~{took} on {est['device']} (over "
        f"{LONG_JOB_SECONDS // 3600} hour), and there is no terminal to confirm it on. To start it on "
        f"purpose, {opt_in}. {faster_choices(est['profile'], est.get('study'))}")


# ------------------------------------------------------------------------------------ running
def run_notebook(notebook: Path, out: Path, profile: str, echo: bool = True, **study) -> float:
    """Execute one notebook with papermill; returns its wall time. A failing cell raises
    :class:`BcdetError` naming the notebook, the cell and the error.

    ``study`` (``study=True``, ``seeds=[0]``, ``splits=["grouped"]``, ``random_seeds=[0]``) goes only
    to notebooks whose parameters cell declares it (chapter 05); the others get just ``profile``."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    study = {k: v for k, v in study.items() if v is not None}
    declared = pm.inspect_notebook(str(notebook)) if study else {}  # read the notebook only when needed
    parameters = {"profile": profile, **{k: v for k, v in study.items() if k in declared}}
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook),
            str(out),
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=str(notebook.parent),
            progress_bar=False,
            stdout_file=sys.stdout if echo else None,
            stderr_file=sys.stderr if echo else None,
        )
    except PapermillExecutionError as exc:
        first = next((ln for ln in (exc.source or "").splitlines() if ln.strip()), "")
        raise BcdetError(
            f"{notebook.name} failed in cell {exc.cell_index} (In [{exc.exec_count}], starting "
            f"{first[:80]!r}): {exc.ename}: {exc.evalue}. The executed notebook with the full "
            f"traceback is {out}. Fix the cause and run again (finished training runs are reused)."
        ) from None
    return time.perf_counter() - t0


def reproduce(profile: str = "paper", out: str | Path | None = None, notebooks=None, echo: bool = True,
              device: str = "auto", seeds=None, splits=None, yes: bool = False, study: bool | None = None,
              random_seeds=None) -> dict:
    """Run the course headless with ``profile``; returns the merged metrics.json content.

    ``study``: run notebook 05's cross-validated study (``study=True`` in its parameters cell);
    ``None`` (the default) runs it for the paper and laptop profiles (:func:`runs_study`). Its result
    is ``runs/<profile>/cv/study.json``, which the report reads with :func:`study.load_study`; a study
    asked for but not written by this reproduction is an error, and no report is written.
    ``seeds`` / ``splits`` / ``random_seeds`` shrink the study below the profile's (e.g. ``seeds=[0]``,
    ``splits=["grouped"]``: 20 runs instead of 80 for laptop; ``random_seeds``: the random split's seeds,
    by default the first seed only) when the full study does not fit the time at hand -- the paper
    profile on a CPU. The report says which study it is. A job estimated at over an hour of training
    starts only with ``yes`` or a "y" typed at the terminal (:func:`confirm_long_job`).
    ``out``: a runs folder to use instead of ``$BCDET_RUNS`` / ``runs/`` (results land in
    ``out/<profile>/``; an ``out`` that already ends in the profile's name is taken as that
    folder). ``notebooks``: the notebooks to run, default :func:`course_notebooks` (the tests pass
    their own). ``device`` only steers the estimate; the notebooks pick the best device themselves.
    """
    from .options import check_seed
    from .profiles import get_profile
    from .runinfo import environment_info, write_json

    seeds = [check_seed(s, "--seeds") for s in seeds] if seeds else None  # before notebook 01, not in 05
    random_seeds = [check_seed(s, "--random-seeds") for s in random_seeds] if random_seeds else None
    splits = list(splits) if splits else None
    prof = get_profile(profile, seeds=seeds, splits=splits)  # bad names -> ValueError before anything runs
    with_study = runs_study(prof.name, study)
    from .data.check import require_usable

    require_usable()  # the same refusal as `bcdet train` and the notebooks, before anything runs
    notebooks = [Path(nb) for nb in (notebooks if notebooks is not None else course_notebooks())]
    if not notebooks:
        raise BcdetError(f"No notebooks to run (looked for NN_*.ipynb in {project_root() / 'notebooks'}).")
    from .params import check_reproduce_parameters

    # `study` is checked when it asks for the study (a notebook must declare it, or it would be ignored)
    given = {"profile": prof.name, "seeds": seeds, "splits": splits, "random_seeds": random_seeds,
             "study": True if with_study else None}
    check_reproduce_parameters(notebooks, {k: v for k, v in given.items() if v is not None},
                               optional=("seeds", "splits", "random_seeds", "study"))
    if out is not None:
        out = Path(out).expanduser().resolve()
        out = out.parent if out.name == prof.name else out
    with use_runs_dir(out):
        folder = runs_dir(prof.name)
        from .runinfo import device_info
        from .train import choose_device

        dev = choose_device(device)
        info = device_info(dev)
        print(f"Device: {dev}" + (f" ({info['gpu']})" if info.get("gpu") else
                                  f" ({info['cpu']}, {info['torch_threads']} torch threads; no CUDA GPU found)"))
        print("Estimating the training time ...", flush=True)
        est = estimate(prof, dev, study=with_study, random_seeds=random_seeds)
        print_estimate(est)
        confirm_long_job(est, yes)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"Results go to {folder}\n")
        set_aside_previous(folder)

        t_all = time.perf_counter()
        started = time.time()
        wall = {}
        for nb in notebooks:
            target = folder / "notebooks" / nb.name
            print(f"=== {nb.name} (profile {prof.name!r}) -> {target}", flush=True)
            wall[nb.name] = round(run_notebook(nb, target, prof.name, echo=echo, seeds=seeds, splits=splits,
                                               random_seeds=random_seeds, study=True if with_study else None), 2)
            print(f"=== {nb.name} done in {_fmt_duration(wall[nb.name])}\n", flush=True)
        total = time.perf_counter() - t_all
        cv = load_reproduced_study(folder, started) if with_study else None

        metrics_path = folder / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        metrics["notebooks"] = {
            name: {"wall_time_s": s, "executed": f"notebooks/{name}"} for name, s in wall.items()
        }
        metrics["reproduce"] = {
            "profile": prof.name,
            "total_wall_time_s": round(total, 2),
            "estimate": est,
            "device": device_info(dev),
            "environment": environment_info(dev),
            "study": {"run": with_study, "folder": "cv" if with_study else None,
                      "seeds": list(prof.seeds), "splits": list(prof.splits), "schedules": list(prof.schedules),
                      "folds": prof.folds, "seeds_by_kind": study_seeds(prof, random_seeds),
                      "runs": len(study_runs(prof, random_seeds)) if with_study else 0,
                      "complete": None if cv is None else cv.complete,
                      "smaller_than_profile": bool(seeds or splits or random_seeds)},
            "command": reproduce_command(prof.name, seeds, splits, random_seeds, study),
        }
        metrics.setdefault("profile", prof.name)
        write_json(metrics_path, metrics)
        report = write_report(metrics, folder, study=cv)
        for previous in PREVIOUS.values():  # superseded by the files just written
            (folder / previous).unlink(missing_ok=True)
        print(f"Done in {_fmt_duration(total)}. Report: {report}  Metrics: {metrics_path}")
        return metrics


def load_reproduced_study(folder: Path, started: float):
    """The :class:`~bcdet_helpers.study.Study` notebook 05 wrote in ``folder/cv`` during this
    reproduction (``started``: its start, as ``time.time()``). A missing, older or incomplete
    ``study.json`` is an error: the report must not describe another study than the one asked for."""
    from .study import load_study

    path = folder / "cv" / "study.json"
    if not path.exists():
        raise BcdetError(f"The study was asked for, but notebook 05 wrote no {path}. Run notebook 05 with "
                         "study=True (bcdet reproduce runs it so for the paper and laptop profiles; --study for "
                         "others) -- is its parameters cell up to date?")
    if path.stat().st_mtime < started:
        raise BcdetError(f"{path} was written before this reproduction started: notebook 05 did not run the "
                         "study. No report was written.")
    cv = load_study(path)
    if not cv.complete:
        missing = [f"{c.arm}/{c.kind}/seed {c.seed}" for c in cv.coverage if not c.complete]
        raise BcdetError(f"{path} is incomplete (out-of-fold predictions missing for {', '.join(missing[:5])}). "
                         "Run the reproduction again: finished runs are reused.")
    return cv


# what a finished reproduction leaves -> where it goes while the next one runs
PREVIOUS = {"report.md": "report.previous.md", "metrics.json": "metrics.previous.json"}


def set_aside_previous(folder: Path) -> None:
    """Rename the last reproduction's ``report.md`` and ``metrics.json`` to ``*.previous.*``.

    They are rewritten only when every notebook has run, so a reproduction that fails halfway would
    otherwise leave the old report beside new, failed notebooks, looking current -- and ``bcdet
    publish`` would copy it. A success deletes the ``.previous`` files; a failure keeps them to
    compare with.
    """
    moved = []
    for name, previous in PREVIOUS.items():
        if (folder / name).exists():
            (folder / name).replace(folder / previous)
            moved.append(previous)
    if moved:
        print(f"The last reproduction's files are now {' and '.join(moved)} in {folder}; "
              "new ones are written when all notebooks have run.\n", flush=True)


def reproduce_command(profile: str, seeds=None, splits=None, random_seeds=None, study: bool | None = None) -> str:
    """The ``bcdet reproduce`` command line that gives this study (recorded in metrics.json)."""
    cmd = f"bcdet reproduce --profile {profile}"
    if study is not None and bool(study) != runs_study(profile):
        cmd += " --study" if study else " --no-study"
    if seeds:
        cmd += " --seeds " + " ".join(str(s) for s in seeds)
    if random_seeds:
        cmd += " --random-seeds " + " ".join(str(s) for s in random_seeds)
    if splits:
        cmd += " --splits " + " ".join(splits)
    return cmd


# ------------------------------------------------------------------------------------- report
def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _pct(v) -> str:
    return "–" if _missing(v) else f"{100 * v:.1f}%"


def _num(v, digits: int = 3) -> str:
    return "–" if _missing(v) else f"{v:.{digits}f}"


def _ci(ci: dict | None) -> str:
    if not ci or _missing(ci.get("low")) or _missing(ci.get("high")):
        return "–"
    return f"{100 * ci['low']:.1f}–{100 * ci['high']:.1f}%"


def _mean_std(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "–"
    std = d.get("std")
    sd = "" if _missing(std) else f" ± {100 * std:.1f}"
    return f"{100 * d['mean']:.1f}{sd}% (n={d.get('n', len(d.get('values', [])))})"


def smoke_warning(profile: str) -> str | None:
    """For the ``smoke`` profile, why its numbers mean nothing (a report without it reads "ours
    30 % vs the paper 90 %" as a finding); ``None`` for the other profiles."""
    if profile != "smoke":
        return None
    from .profiles import get_profile

    p = get_profile("smoke")
    return (f"Smoke profile: these numbers mean nothing. It trains a {p.width}-channel ResNet9 for "
            f"{p.epochs} epochs on at most {p.max_per_class} images per class at {p.image_size} x "
            f"{p.image_size} px, only to check that every code path runs (make test). Do not compare "
            "them with the paper; the laptop or paper profile gives numbers worth reading.")


def _pts(v) -> str:
    return "–" if _missing(v) else f"{100 * v:+.1f}"


def _iv(iv, signed: bool = False) -> str:
    """An :class:`~bcdet_helpers.stats.Interval` as ``77.7% [70.0, 84.0]`` (or points, ``signed``)."""
    if iv is None or _missing(iv.value):
        return "–"
    if signed:
        return f"{_pts(iv.value)} [{_pts(iv.low)}, {_pts(iv.high)}]"
    return f"{_pct(iv.value)} [{_num(100 * iv.low, 1)}, {_num(100 * iv.high, 1)}]"


def verdict(d, claim: float) -> str:
    """What the difference ``d`` (a :class:`~bcdet_helpers.study.Difference`) and its clustered CI show,
    in plain words, against a difference the size of the paper's ``claim``."""
    iv = d.pooled
    if _missing(iv.low) or _missing(iv.high):
        return "no interval (too few groups or runs)"
    size = f"the paper's {_pts(claim)} points" if (d.a, d.b) == ("switching", "constant") else \
        f"a difference the size of the paper's claim ({_pts(claim)} points)"
    if iv.low > 0 or iv.high < 0:
        text = f"the CI excludes 0: {d.a} is {'better' if iv.low > 0 else 'worse'} than {d.b}"
        if iv.low > claim:
            text += f", by more than {size}"
        elif iv.high < claim and iv.low > 0:
            text += f", but by less than {size} (the CI excludes it)"
        elif iv.low > 0:
            text += f"; the CI includes {size}"
        return text
    text = f"the CI includes 0: the data cannot tell {d.a} from {d.b}"
    text += f", and it excludes {size}" if iv.high < claim else f", nor rule out {size}"
    if not _missing(d.detectable):
        text += (f"; this design detects a true difference of {100 * d.detectable:.1f} points or more with 80% "
                 "power, so a smaller one may exist unseen")
    return text


def _study_sections(study, add, profile_folder: str) -> None:
    """The cross-validated study's part of the report, from the :class:`~bcdet_helpers.study.Study`."""
    from .evaluate import PUBLISHED

    kind = "grouped" if "grouped" in study.kinds else study.kinds[0]
    add("## Headline: pooled out-of-fold accuracy, ours vs the paper\n")
    add(f"Study `{profile_folder}`: {len(study.arms)} arms x {study.folds.get(kind)} folds x seeds "
        + ", ".join(f"{k}: {', '.join(map(str, v))}" for k, v in study.seeds.items())
        + f"; every image is a test image once per seed. {study.n_scored} of {study.n_images} images scored "
        f"({len(study.conflicts)} label-conflict images {'included' if study.include_conflicts else 'left out'}); "
        f"weights: `{study.weights}.pt` (final). 95% CIs from {study.n_boot} bootstrap resamples of "
        "near-duplicate groups.\n")
    add("| | split | accuracy [95% CI] | macro-F1 [95% CI] | malignant recall [95% CI] | seeds |")
    add("| --- | --- | --- | --- | --- | --- |")
    for k in study.kinds:
        for arm in study.arms:
            try:
                s = study.score(arm, k)
            except KeyError:
                continue
            label = "leak-free grouped folds" if k == "grouped" else "random folds (paper-like, leak near-duplicates)"
            add(f"| ours, {arm} | {label} | {_iv(s.accuracy)} | {_iv(s.macro_f1)} | "
                f"{_iv(s.recall.get('malignant'))} | {s.n_seeds} |")
    for key in ("paper_switching", "paper_constant"):
        ref = PUBLISHED[key]
        add(f"| {ref['source']} | not stated | {_pct(ref['accuracy'])} (no CI) | – | – | – |")
    add("")
    add(f"## The verdict: paired differences ({kind} split)\n")
    add("Pooled out-of-fold difference in accuracy (percentage points), its 95% CI from a paired bootstrap "
        "over near-duplicate groups, the Nadeau–Bengio corrected t-test over the (fold, seed) pairs, the "
        "smallest difference the design detects with 80% power, and the power against the paper's "
        f"{_pts(study.claim)} points.\n")
    add("| comparison | question | ours, points [95% CI] | corrected t-test | detectable | power at the claim |")
    add("| --- | --- | --- | --- | --- | --- |")
    rows = [d for d in study.differences if d.kind == kind and d.metric == "accuracy" and d.weights == study.weights]
    for d in rows:
        add(f"| {d.a} − {d.b} | {d.question} | {_iv(d.pooled, signed=True)} | "
            f"{d.test.n} pairs, p = {_num(d.test.p)} | {_num(100 * d.detectable, 1) if not _missing(d.detectable) else '–'} | "
            f"{_pct(d.power_at_claim)} |")
    add("")
    for d in rows:
        paper = (f" The paper reports {_pts(study.claim)} points ({_pct(PUBLISHED['paper_switching']['accuracy'])} vs "
                 f"{_pct(PUBLISHED['paper_constant']['accuracy'])}, one run each)."
                 if (d.a, d.b) == ("switching", "constant") else "")
        add(f"- **{d.a} − {d.b}** ({d.question}): {_pts(d.pooled.value)} points — {verdict(d, study.claim)}.{paper}")
    add("")
    leak = [g for g in study.leakage if g.metric == "accuracy" and g.weights == study.weights]
    if leak:
        add("## Leakage gap (random folds minus grouped folds, pooled accuracy)\n")
        for g in leak:
            add(f"- {g.arm}: {_pct(g.random)} vs {_pct(g.grouped)} → {_iv(g.gap, signed=True)} points "
                f"(seeds {', '.join(map(str, g.seeds))}; paired bootstrap over near-duplicate groups)")
        add("")
    ens = [(study.score(a, kind), study.score(a, kind, "ensemble_tta")) for a in study.arms
           if any(s.arm == a and s.kind == kind and s.rows == "ensemble_tta" and s.weights == study.weights
                  for s in study.scores)]
    if ens:
        add("## Seed ensemble + flip TTA\n")
        for pooled, e in ens:
            add(f"- {pooled.arm}: pooled {_pct(pooled.accuracy.value)} → ensemble of {e.n_seeds} seed(s) with "
                f"left-right flip {_iv(e.accuracy)}")
        add("")
    if study.weights_checks:
        add("## The weights rule (final vs best-by-validation, on validation images)\n")
        for w in study.weights_checks:
            add(f"- {w.arm} ({w.kind}, {w.n_runs} runs): last {_pct(w.last_val_accuracy)}, best "
                f"{_pct(w.best_val_accuracy)} (best − last {_pts(w.mean_difference)} points; best higher in "
                f"{w.best_better}, last in {w.last_better}; best epoch {w.mean_best_epoch:.0f} of {w.epochs} on average)")
        add("\n`best` was chosen on these very images, so its side is optimistic.\n")
    add(f"## Label conflicts\n\n{len(study.conflicts)} image(s) whose near-duplicates carry another label"
        + (": " + ", ".join(f"`{c.file}` ({'/'.join(c.other_labels)})" for c in study.conflicts) if study.conflicts else "")
        + ".\n")


def write_report(metrics: dict, folder: str | Path, executed_notebooks: str | None = None, study=None,
                 study_folder: str | None = None) -> Path:
    """``report.md``: one page a reviewer reads without Jupyter, built from ``metrics`` and ``study``.

    ``study``: the cross-validated :class:`~bcdet_helpers.study.Study` (read with
    :func:`study.load_study` by the caller), or None when the reproduction did not run it -- the report
    then says so and shows chapter 04's one-fold runs only. ``study_folder``: where the study's files
    are, for the text (default ``cv/``). ``executed_notebooks``: where the executed notebooks are when
    they are not beside the report (``bcdet publish`` writes the report into ``results/``, without
    them); default: linked from ``notebooks/`` next to it."""
    from .evaluate import PUBLISHED

    folder = Path(folder)
    lines = []
    add = lines.append
    rep = metrics.get("reproduce", {})
    profile = metrics.get("profile", rep.get("profile", "?"))
    dev = rep.get("device", {}) or {}
    dev_text = dev.get("gpu") or f"{dev.get('device', '?')} ({dev.get('cpu', '')}, {dev.get('torch_threads', '?')} threads)"
    add(f"# bcdet reproduction — profile `{profile}`\n")
    add("ResNet9 on BUSI (benign / malignant / normal), reproducing Achyuthanwesh et al. "
        f"Every number below was computed by the executed notebooks in `{executed_notebooks or 'notebooks/'}`"
        + (f" and the study in `{study_folder or 'cv/'}`" if study is not None else "")
        + "; this is a teaching model, not a medical device.\n")
    smoke = smoke_warning(profile)
    if smoke:
        add(f"> **{smoke}**\n")
    add(f"- device: {dev_text}")
    if rep.get("total_wall_time_s") is not None:
        add(f"- wall time: {_fmt_duration(rep['total_wall_time_s'])} in total for this command "
            "(finished training runs are reused, not retrained)")
    trained = [r["train_seconds"] for r in metrics.get("runs", []) if not _missing(r.get("train_seconds"))]
    if trained:
        add(f"- training: {_fmt_duration(sum(trained))} over {len(trained)} runs, when they were trained "
            "(each run's `result.json` has its device, versions and wall time)")
    env = rep.get("environment") or metrics.get("environment") or {}
    if env:
        v = env.get("versions", {})
        add(f"- torch {v.get('torch')}, python {v.get('python')}, commit {env.get('git_commit')}, "
            f"recorded {env.get('recorded_at')}")
    scope = rep.get("study")
    if scope:
        by_kind = scope.get("seeds_by_kind") or {k: scope["seeds"] for k in scope["splits"]}
        n = len(scope["schedules"]) * scope.get("folds", 5) * sum(len(v) for v in by_kind.values())
        design = (f"{n} training runs = arms {', '.join(scope['schedules'])} x {scope.get('folds', 5)} folds x seeds "
                  + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in by_kind.items())
                  + (" (smaller than the profile's own study, to fit the time at hand)"
                     if scope.get("smaller_than_profile") else ""))
        if scope.get("run", True):
            add(f"- cross-validated study: {design}")
        else:
            add(f"- cross-validated study: not run (opt-in for profile `{profile}`: `--study`); it would be {design}")
    add(f"- command: `{rep.get('command', f'bcdet reproduce --profile {profile}')}`\n")

    if study is not None:
        if smoke:
            add("*Smoke profile: the study below checks that the code runs, nothing else.*\n")
        _study_sections(study, add, study_folder or "cv/")
    else:
        add("## Headline: chapter 04's runs, one fold, one seed\n")
        if smoke:
            add("*Smoke profile: the comparison below checks that the code runs, nothing else.*\n")
        add("The cross-validated study did not run in this reproduction, so there is no verdict here: one "
            "fold and one seed per arm cannot carry a difference of a few points. `bcdet reproduce --profile "
            "laptop` runs the study (notebook 05, `study=True`).\n")
        add("| | accuracy [95% CI, clustered] | macro-F1 | note |")
        add("| --- | --- | --- | --- |")
        for r in metrics.get("runs", []):
            ci = (f" [{_num(100 * r['acc_low'], 1)}, {_num(100 * r['acc_high'], 1)}]"
                  if not _missing(r.get("acc_low")) and not _missing(r.get("acc_high")) else "")
            add(f"| ours, {r['schedule']} | {_pct(r.get('accuracy'))}{ci} | {_pct(r.get('macro_f1'))} | "
                f"{r['split']} split, fold {r.get('fold', 0)}, seed {r['seed']}, {r.get('n_test', '?')} test images |")
        for key in ("paper_switching", "paper_constant"):
            ref = PUBLISHED[key]
            add(f"| {ref['source']} | {_pct(ref['accuracy'])} | – | {ref['note']} |")
        add("")
    models = metrics.get("evaluation", {}).get("models", {})
    if models:
        e = metrics["evaluation"]
        add(f"## Chapter 04's models on their test fold ({e.get('split')} split, fold {e.get('fold')}, seed "
            f"{e.get('seed')}, {e.get('weights')} weights)\n")
        add("| arm | accuracy | macro-F1 | weighted-F1 | macro AUC | ECE | n test |")
        add("| --- | --- | --- | --- | --- | --- | --- |")
        for arm, m in models.items():
            add(f"| {arm} | {_pct(m.get('accuracy'))} | {_pct(m.get('macro_f1'))} | {_pct(m.get('weighted_f1'))} | "
                f"{_num(m.get('macro_auc'))} | {_num(m.get('ece'))} | {m.get('n')} |")
        add("")
    cam = metrics.get("gradcam", {})
    if cam.get("mass_in_mask"):
        add("## Where the model looks (Grad-CAM mass inside the lesion mask)\n")
        for cls, v in cam["mass_in_mask"].items():
            area = cam.get("mask_area", {}).get(cls)
            if _missing(v):
                add(f"- {cls}: no lesion mask (normal tissue) — undefined")
            else:
                add(f"- {cls}: {_pct(v)} of the map inside the lesion (the lesion covers {_pct(area)} of the image; "
                    "a map spread evenly would score exactly that)")
        add("")
    nbs = metrics.get("notebooks", {})
    if nbs:
        add("## Notebooks (executed copies)\n")
        if executed_notebooks:
            add(f"The command above leaves the executed notebooks in `{executed_notebooks}`; they are not "
                "committed, as they embed the dataset's images.\n")
        add("| notebook | wall time |")
        add("| --- | --- |")
        for name, info in nbs.items():
            link = name if executed_notebooks else f"[{name}]({info.get('executed', 'notebooks/' + name)})"
            add(f"| {link} | {_fmt_duration(info['wall_time_s'])} |")
        add("")
    figs = [(stem, cap) for stem, cap in REPORT_FIGURES if (folder / "figures" / f"{stem}.png").exists()]
    if study is None:
        figs = [(stem, cap) for stem, cap in figs if stem != "05_forest"]  # a forest plot of another study
    if figs:
        add("## Key figures\n")
        for stem, cap in figs:
            add(f"### {cap}\n\n![{cap}](figures/{stem}.png)\n")
    shown = {stem for stem, _ in figs}
    others = sorted(p.name for p in (folder / "figures").glob("*.png") if p.stem not in shown)
    if others:
        add("Other figures: " + ", ".join(f"[{name}](figures/{name})" for name in others) + "\n")
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_reproduce(args) -> int:
    """``bcdet reproduce --profile P [--study | --no-study] [--seeds N ...] [--random-seeds N ...]
    [--splits S ...] [--out O] [--yes]``."""
    try:
        reproduce(args.profile, out=getattr(args, "out", None), seeds=getattr(args, "seeds", None),
                  splits=getattr(args, "splits", None), yes=getattr(args, "yes", False),
                  study=getattr(args, "study", None), random_seeds=getattr(args, "random_seeds", None))
    except ValueError as exc:  # unknown profile
        raise BcdetError(str(exc)) from None
    return 0
