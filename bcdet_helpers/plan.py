"""What a reproduction will run and how long it will take -- and asking before a long one.

``bcdet reproduce`` prints :func:`estimate` first (runs x epochs x seconds per epoch, from finished
runs of the profile on this device type, else timed now) and, for a job over
:data:`LONG_JOB_SECONDS`, asks on a terminal (default no, naming the faster choices) or, without
one, refuses unless ``--yes`` / ``YES=1`` says so (:func:`confirm_long_job`).
"""
from __future__ import annotations

import json
import math
import sys
import time

from .busi import CLASSES
from .errors import BcdetError
from .paths import runs_dir
from .report import fmt_duration as _fmt_duration

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


def _recorded_seconds_per_epoch(profile: str, device_type: str, threads: int | None = None) -> float | None:
    """Median seconds/epoch of finished runs of this profile on the same device type (and, given
    ``threads``, trained with that many torch threads), if any."""
    values = []
    for result in runs_dir(profile).glob("*/result.json"):
        try:
            info = json.loads(result.read_text())
        except (OSError, ValueError):
            continue
        env = info.get("environment", {})
        if str(env.get("device", "")).split(":")[0] == device_type and threads in (None, env.get("torch_threads")):
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


def planned_runs(prof, study: bool = True, random_seeds=None, ladder: bool = True) -> list[tuple[str, str, int, int]]:
    """``(schedule, split, seed, fold)`` of every training run a reproduction of ``prof`` starts.

    Notebook 04's runs (the profile's *own* arms on its first split and seed, fold 0 -- notebook 04
    gets only ``profile``, so a smaller study such as ``--seeds 1 --splits random`` does not change
    them; notebook 05 scores these same runs) plus, when ``study``, notebook 05's cross-validated
    study: arms x folds x the seeds of each split kind (:func:`study_seeds`), and the leakage ladder's
    extra runs unless ``ladder`` is False.
    """
    from .profiles import get_profile

    try:
        own = get_profile(prof.name)
    except ValueError:  # a Profile built by hand, not one of PROFILES
        own = prof
    chapter04 = [(s, own.splits[0], own.seeds[0], 0) for s in own.schedules]
    return list(dict.fromkeys((study_runs(prof, random_seeds, ladder) if study else []) + chapter04))


def study_runs(prof, random_seeds=None, ladder: bool = True) -> list[tuple[str, str, int, int]]:
    """``(schedule, split, seed, fold)`` of the cross-validated study: 5 folds x arms x seeds per kind,
    plus :func:`ladder_runs` (``ladder=False``, ``--no-ladder``: without them -- the verdict needs none of
    them, and for ``laptop`` they are 25 of 105 runs, about 30 % of the training)."""
    runs = [(s, kind, seed, fold) for kind, seeds in study_seeds(prof, random_seeds).items() for seed in seeds
            for fold in range(prof.folds) for s in prof.schedules]
    return runs + (ladder_runs(prof, random_seeds) if ladder else [])


def ladder_runs(prof, random_seeds=None) -> list[tuple[str, str, int, int]]:
    """The leakage ladder's extra runs in the study: its arm on more random-split seeds, and on every
    random-split seed again with copies of the test images trained on (split ``"augmented"``;
    :func:`study.ladder_extra_runs`), as ``(schedule, split, seed, fold)``."""
    from .study.ladder import ladder_extra_runs

    extra = ladder_extra_runs(prof, study_seeds(prof, random_seeds))
    return [(arm, kind, seed, fold) for arm, by_kind in extra.items() for kind, seeds in by_kind.items()
            for seed in seeds for fold in range(prof.folds)]


def estimate(profile="paper", device="auto", study: bool | None = None, random_seeds=None,
             ladder: bool = True) -> dict:
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
    from .device import auto_jobs, worker_threads
    from .study.cv import study_run_dir, test_copies_of
    from .train import choose_device

    prof = get_profile(profile)
    dev = choose_device(device)
    with_study = runs_study(prof.name, study)
    runs = planned_runs(prof, with_study, random_seeds, ladder)
    chapter04 = planned_runs(prof, False)
    cv = study_runs(prof, random_seeds, ladder) if with_study else []
    todo = [sp for s, sp, seed, fold in runs if not (study_run_dir(prof, s, sp, fold, seed) / "result.json").exists()]
    done = len(runs) - len(todo)
    n_train = _n_train_images(prof)
    # a run that also trains on k copies of its test fold (the ladder's "augmented" runs) does
    # 1 + k / ((folds - 1) x (1 - val_fraction)) times the work: a test fold is that share of the training part
    work = sum(1 + test_copies_of(prof, sp) / ((prof.folds - 1) * (1 - prof.val_fraction)) for sp in todo)
    # the study trains `jobs` runs at once (run_study's workers): with seconds/epoch recorded by such
    # workers, its runs take 1/jobs of the wall time; otherwise (one run's pace) no credit is taken
    jobs = auto_jobs(dev) if with_study else 1
    spe = _recorded_seconds_per_epoch(prof.name, dev.type, worker_threads(jobs)) if jobs > 1 else None
    source = f"recorded (median of finished runs of this profile trained {jobs} at a time here, 1/{jobs} of it each)"
    if spe is None:
        jobs = 1
        spe = _recorded_seconds_per_epoch(prof.name, dev.type)
        source = "recorded (median of finished runs of this profile on this device type)"
    if spe is None:
        spe = _measure_seconds_per_epoch(prof, dev, n_train)
        source = "measured now (a few training steps of this profile's ResNet9)"
    epochs = round(work * prof.epochs)
    return {
        "profile": prof.name,
        "device": str(dev),
        "runs": len(runs),
        "runs_chapter04_only": len(set(chapter04) - set(cv)),
        "runs_study": len(cv),
        "study": with_study,
        "study_seeds": study_seeds(prof, random_seeds) if with_study else {},
        "runs_ladder": len(ladder_runs(prof, random_seeds)) if with_study and ladder else 0,
        "folds": prof.folds,
        "runs_done": done,
        "epochs_per_run": prof.epochs,
        "epochs_to_train": epochs,
        "n_train_images": n_train,
        "seconds_per_epoch": spe,
        "seconds_per_epoch_source": source,
        "training_seconds": epochs * spe / jobs,
        "jobs": jobs,
    }


def print_estimate(est: dict) -> None:
    extra = est.get("runs_chapter04_only", 0)
    if est.get("study"):
        seeds = ", ".join(f"{k}: {len(v)} seed(s)" for k, v in est.get("study_seeds", {}).items())
        what = (f"(notebook 05's cross-validated study: {est['folds']} folds x arms x seeds per split kind "
                f"[{seeds}]" + (f" + {est['runs_ladder']} runs of the leakage ladder's arm (more random-split seeds, "
                                  "and its runs with test copies trained on)"
                                if est.get("runs_ladder") else "") + f" = {est['runs_study']} runs"
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
    no_ladder = len(planned_runs(prof, True, ladder=False))
    small = len(planned_runs(get_profile(profile, seeds=prof.seeds[:1], splits=["grouped"]), True))
    if no_ladder < full:
        text += (f"The whole verdict without the leakage ladder's extra runs trains {no_ladder} runs instead of "
                 f"{full}: --no-ladder. ")
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


