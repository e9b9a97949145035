"""What a reproduction will run and how long it will take -- and asking before a long one.

``bcdet reproduce`` prints :func:`estimate` first (runs x epochs x seconds per epoch: from finished
runs of the profile on this machine, else from the committed reference runs under ``results/``
recorded on the same kind of machine, else timed now on warmed-up training steps -- the estimate
names which) and, for a job over :data:`LONG_JOB_SECONDS`, asks on a terminal (default no) or,
without one, refuses unless ``--yes`` / ``YES=1`` says so (:func:`confirm_long_job`); either way it
names the cheaper choices once, each with its own estimate (:func:`faster_choices`).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time

from .busi import CLASSES
from .errors import BcdetError
from .paths import project_root, runs_dir
from .report import fmt_duration as _fmt_duration
from .runkey import AUGMENTED, RunKey

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


def _machine(device) -> dict:
    """What a recorded run must share with this machine for its pace to count here: the device type;
    on a CPU the number of cores, on a CUDA GPU its name."""
    dev = str(device)
    kind = dev.split(":")[0]
    if kind == "cuda":
        try:
            import torch

            return {"device": kind, "gpu": torch.cuda.get_device_name(torch.device(dev))}
        except Exception:  # no CUDA here (a test asking about "cuda"): the device type alone
            return {"device": kind}
    return {"device": kind, "cpu_count": os.cpu_count()} if kind == "cpu" else {"device": kind}


def _describe_machine(machine: dict) -> str:
    if machine.get("gpu"):
        return f"the GPU {machine['gpu']}"
    if machine.get("cpu_count"):
        return f"a {machine['cpu_count']}-core CPU"
    return machine["device"]


def _recorded_values(folders, profile: str, machine: dict, threads: int | None = None) -> dict:
    """Seconds per epoch of the finished runs of ``profile`` in ``folders`` (``<folder>/*/result.json``)
    recorded on ``machine`` (:func:`_machine`; only the keys it has are compared) and, given ``threads``,
    trained with that many torch threads: folder -> values. The leakage ladder's runs that also train on
    copies of their test images are left out: an epoch of theirs is longer, and :func:`estimate` counts
    that separately."""
    out = {}
    for folder in folders:
        for result in sorted(folder.glob("*/result.json")):
            key = RunKey.find(result.parent.name)
            if key is None or key.kind == AUGMENTED:  # not a run of the table (a tuning trial), or a ladder one
                continue
            try:
                info = json.loads(result.read_text())
            except (OSError, ValueError):
                continue
            env = info.get("environment", {})
            if info.get("profile", profile) != profile or str(env.get("device", "")).split(":")[0] != machine["device"]:
                continue
            if (any(env.get(k) != v for k, v in machine.items() if k != "device")
                    or threads not in (None, env.get("torch_threads"))):
                continue
            spe = info.get("seconds_per_epoch")
            if spe and math.isfinite(spe):
                out.setdefault(folder, []).append(float(spe))
    return out


def reference_run_folders(profile: str) -> list:
    """Where the committed reference runs live: ``results/<x>/runs/`` and ``results/history/<x>/runs/``
    (which of their runs are ``profile``'s, their records say)."""
    results = project_root() / "results"
    return sorted(p for p in [*results.glob("*/runs"), *results.glob("history/*/runs")] if p.is_dir())


def _recorded_seconds_per_epoch(profile: str, device, threads: int | None = None) -> tuple[float, str] | None:
    """Median seconds/epoch of finished runs of ``profile`` on this kind of machine and where it comes
    from, or None: this machine's own runs (``runs/<profile>/``, the same device type) first, else the
    committed reference runs (:func:`reference_run_folders`) recorded on the same kind of machine (the
    same number of CPU cores, or the same GPU). ``threads``: only runs trained with that many torch
    threads (the study's workers)."""
    here = _machine(device)
    own = _recorded_values([runs_dir(profile)], profile, {"device": here["device"]}, threads)
    if own:
        values = [v for vs in own.values() for v in vs]
        return statistics.median(values), f"{_n_runs(len(values))} of this profile finished in {runs_dir(profile)}"
    refs = _recorded_values(reference_run_folders(profile), profile, here, threads)
    if not refs:
        return None
    values = [v for vs in refs.values() for v in vs]
    root = project_root()
    where = ", ".join(f"{p.parent.relative_to(root)}/" for p in refs)
    return statistics.median(values), f"{_n_runs(len(values))} on {_describe_machine(here)} in {where}"


def _n_runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _steady_seconds(step, warmup: int = 2, repeats: int = 5, budget_s: float = 8.0, clock=time.perf_counter) -> float:
    """Median seconds of one call of ``step`` once it is warm: ``warmup`` untimed calls first (the first
    steps allocate memory and pick kernels, and take several times longer), then up to ``repeats`` timed
    one by one -- at least three, fewer than ``repeats`` once ``budget_s`` has passed. The median, so that
    one step slowed by something else on the machine does not move the estimate."""
    for _ in range(warmup):
        step()
    times, start = [], clock()
    while len(times) < repeats and (len(times) < 3 or clock() - start < budget_s):
        t0 = clock()
        step()
        times.append(clock() - t0)
    return statistics.median(times)


_PER_IMAGE: dict = {}  # measured seconds per training image, per model shape and device (one process)


def _cpu_load() -> tuple[float, int] | None:
    """``(1-minute load average, cores)`` when other work keeps at least 3/4 of this machine's cores
    busy, else None. Timing on such a CPU is what made the ``class`` estimate say ~31 min once and 83 s
    on a retry (issue #27): PyTorch's threads wait on each other while other processes hold the cores,
    and small steps (``class``'s) slow down ten-fold and more, unevenly."""
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None
    return (load, cores) if load >= 0.75 * cores else None


def _measure_seconds_per_epoch(prof, device, n_train: int) -> float:
    """Time real training steps (forward + backward + Adam) of this profile's ResNet9, as ``fit`` runs
    them (``channels_last``; on a CPU with freed memory kept, :func:`device.keep_freed_memory`), on warmed
    steps (:func:`_steady_seconds`), and scale to an epoch's images plus its validation pass.

    On the CPU the cost grows linearly with the number of images, so we time batches of 32 and scale; on
    a GPU full batches (small ones would overestimate). On a busy CPU (:func:`_cpu_load`) the steps are
    timed with one torch thread too and the faster pace is kept: one thread is hardly slowed by other
    processes, several are, unevenly. Measured once per model shape and device in a process.
    """
    import torch
    import torch.nn.functional as F

    from .callbacks import MEMORY_FORMAT
    from .device import keep_freed_memory
    from .model import build_model

    batch = prof.batch_size if device.type != "cpu" else min(prof.batch_size, 32)
    key = (prof.image_size, prof.channels, prof.width, batch, str(device))
    if key not in _PER_IMAGE:
        if device.type == "cpu":
            keep_freed_memory()
        torch.manual_seed(0)
        model = build_model(prof).to(device, memory_format=MEMORY_FORMAT).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(batch, prof.channels, prof.image_size, prof.image_size, device=device)
        x = x.contiguous(memory_format=MEMORY_FORMAT)
        y = torch.randint(0, len(CLASSES), (batch,), device=device)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        seconds = _steady_seconds(step)
        threads = torch.get_num_threads()
        if device.type == "cpu" and threads > 1 and _cpu_load() is not None:
            torch.set_num_threads(1)
            try:
                seconds = min(seconds, _steady_seconds(step, warmup=1, budget_s=4.0))  # the model is warm
            finally:
                torch.set_num_threads(threads)
        _PER_IMAGE[key] = seconds / batch
    # + validation (a forward pass over ~val/train as many images, ~1/3 of a training step each)
    val_share = prof.val_fraction / (1 - prof.val_fraction)
    return _PER_IMAGE[key] * n_train * (1 + val_share / 3)


def _busy_cpu() -> str:
    """A note for the estimate when the CPU is busy (:func:`_cpu_load`)."""
    busy = _cpu_load()
    return (f"; the CPU was busy (load average {busy[0]:.1f} on {busy[1]} cores): timed with one thread too, the "
            "faster kept, but a busy CPU slows the training itself" if busy else "")


STUDY_PROFILES = ("paper", "laptop")  # `bcdet reproduce` runs the cross-validated study for these by default


def runs_study(profile: str, study: bool | None = None) -> bool:
    """Does a reproduction of ``profile`` run notebook 05's cross-validated study? ``study`` (``--study`` /
    ``--no-study``) decides when given; else yes for :data:`STUDY_PROFILES` (researchers get the full
    study; ``class`` and ``smoke`` keep it opt-in)."""
    return bool(study) if study is not None else profile in STUDY_PROFILES


def study_seeds(prof, random_seeds=None) -> dict[str, list[int]]:
    """Seeds per split kind of the study (:func:`study.design.default_seeds`)."""
    from .study.design import default_seeds

    return default_seeds(prof, random_seeds)


def planned_runs(prof, study: bool = True, random_seeds=None, ladder: bool = True) -> list[RunKey]:
    """Every training run (a :class:`~bcdet_helpers.runkey.RunKey`) a reproduction of ``prof`` starts.

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
    chapter04 = [RunKey(s, own.splits[0], 0, own.seeds[0]) for s in own.schedules]
    return list(dict.fromkeys((study_runs(prof, random_seeds, ladder) if study else []) + chapter04))


def study_runs(prof, random_seeds=None, ladder: bool = True) -> list[RunKey]:
    """The runs of the cross-validated study: :func:`study.study_design`'s -- 5 folds x arms x seeds per
    kind (x fold partitions on the grouped split), plus :func:`ladder_runs` (``ladder=False``,
    ``--no-ladder``: without them -- the verdict needs none of them)."""
    from .study.design import study_design

    return study_design(prof, random_seeds=random_seeds, ladder=ladder).runs()


def ladder_runs(prof, random_seeds=None) -> list[RunKey]:
    """The leakage ladder's extra runs in the study (its arm on more random-split seeds, and on every
    random-split seed again with copies of the test images trained on: kind ``"augmented"``): the design's
    runs less those of the design without the ladder."""
    without = set(study_runs(prof, random_seeds, ladder=False))
    return [r for r in study_runs(prof, random_seeds) if r not in without]


def _pace(prof, dev, n_train: int, jobs: int) -> tuple[float, int, str]:
    """``(seconds per epoch, runs at once, where the number comes from)`` for :func:`estimate`.

    The study trains ``jobs`` runs at once (``run_study``'s workers): with seconds/epoch recorded by such
    workers (``worker_threads(jobs)`` torch threads each) its runs take 1/jobs of the wall time; otherwise
    one run's pace counts and no credit is taken. Recorded runs first (:func:`_recorded_seconds_per_epoch`:
    this machine's, else the committed ones of the same kind of machine): a whole run's pace, the same on
    every call. Else warmed steps timed now (:func:`_measure_seconds_per_epoch`).
    """
    from .device import worker_threads

    if jobs > 1:
        found = _recorded_seconds_per_epoch(prof.name, dev, worker_threads(jobs))
        if found is not None:
            return found[0], jobs, f"recorded: median of {found[1]}, trained {jobs} at a time (1/{jobs} of it each)"
    found = _recorded_seconds_per_epoch(prof.name, dev)
    if found is not None:
        return found[0], 1, f"recorded: median of {found[1]}"
    note = _busy_cpu() if dev.type == "cpu" else ""
    return (_measure_seconds_per_epoch(prof, dev, n_train), 1,
            f"measured now: median of warmed training steps of this profile's ResNet9{note}")


def estimate(profile="paper", device="auto", study: bool | None = None, random_seeds=None,
             ladder: bool = True) -> dict:
    """How long the training in the course will take on ``device``, and where the number comes from.

    Runs = :func:`planned_runs` (notebook 04's runs, plus notebook 05's cross-validated study when it
    runs -- :func:`runs_study`: by default for the paper and laptop profiles -- each counted once),
    minus runs already finished in ``runs/<profile>/``. ``profile`` is a name or a
    :class:`~bcdet_helpers.profiles.Profile` (e.g. one with fewer seeds). Seconds per epoch: :func:`_pace`
    (recorded runs when there are some, else warmed steps timed now; ``seconds_per_epoch_source`` says
    which). Notebook 03's small depth experiment, data preparation and evaluation come on top (minutes
    on a CPU).
    """
    from .device import auto_jobs, choose_device
    from .profiles import get_profile
    from .study.cv import study_run_dir

    prof = get_profile(profile)
    dev = choose_device(device)
    with_study = runs_study(prof.name, study)
    runs = planned_runs(prof, with_study, random_seeds, ladder)
    chapter04 = planned_runs(prof, False)
    cv = study_runs(prof, random_seeds, ladder) if with_study else []
    todo = [k for k in runs if not (study_run_dir(prof, k) / "result.json").exists()]
    done = len(runs) - len(todo)
    n_train = _n_train_images(prof)
    # a run that also trains on k copies of its test fold (the ladder's "augmented" runs) does
    # 1 + k / ((folds - 1) x (1 - val_fraction)) times the work: a test fold is that share of the training part
    work = sum(1 + k.test_copies(prof.ladder_test_copies) / ((prof.folds - 1) * (1 - prof.val_fraction)) for k in todo)
    spe, jobs, source = _pace(prof, dev, n_train, auto_jobs(dev) if with_study else 1)
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
    """The estimate in words. On a CPU, a job of over half an hour that starts without asking (up to
    :data:`LONG_JOB_SECONDS`) also names the cheaper choices; a longer one leaves them to
    :func:`confirm_long_job`, so they are printed once."""
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
    if est["device"].startswith("cpu") and 1800 < est["training_seconds"] <= LONG_JOB_SECONDS:
        choices = faster_choices(est["profile"], est.get("study"), est["device"], est)
        print(f"No GPU found: this will take a while on the CPU.\n{choices}")
    sys.stdout.flush()


# ------------------------------------------------------------------------ starting a long job
LONG_JOB_SECONDS = 3600  # above this, nobody starts a reproduction by accident

# What a long reproduction of a profile suggests instead, cheapest first (never `smoke`: its numbers mean nothing)
LIGHTER = {"paper": ("class", "laptop"), "laptop": ("class",)}
PROFILE_NOTES = {
    "class": "each notebook in minutes at teaching scale; no cross-validated study, so no verdict",
    "laptop": "the cross-validated study at width 16, the profile made for a CPU",
}


def _make_form(profile: str, args: str = "") -> str:
    """The ``make reproduce`` line that runs ``bcdet reproduce --profile profile args``."""
    return "make reproduce" + (f" PROFILE={profile}" if profile != "paper" else "") + (f' ARGS="{args}"' if args else "")


def _recorded_course(profile: str, device) -> str:
    """How long a whole recorded reproduction of ``profile`` took, when ``results/<profile>/metrics.json``
    records one that trained every run itself on this kind of machine; else ''."""
    path = project_root() / "results" / profile / "metrics.json"
    try:
        rec = json.loads(path.read_text()).get("reproduce", {})
    except (OSError, ValueError):
        return ""
    env, here = rec.get("device", {}), _machine(device)
    same = str(env.get("device", "")).split(":")[0] == here["device"] and all(
        env.get(k) == v for k, v in here.items() if k != "device")
    if not same or (rec.get("estimate") or {}).get("runs_done", 1) or not rec.get("total_wall_time_s"):
        return ""
    return (f"; the whole course, notebooks included, took {_fmt_duration(rec['total_wall_time_s'])} on "
            f"{_describe_machine(here)} ({path.relative_to(project_root())})")


def cheaper_choices(profile: str, study: bool | None = None, device=None, est: dict | None = None) -> list[dict]:
    """What to run instead of a long reproduction of ``profile``: the lighter profiles (:data:`LIGHTER`),
    then -- when the reproduction runs the cross-validated study (``study``, default :func:`runs_study`) --
    the same study without the leakage ladder, a smaller one, or none. Each a dict: ``args`` (for
    ``bcdet reproduce``), ``make`` (the ``make reproduce`` line), ``what``, and, given ``device``, the
    ``estimate`` of its training (:func:`estimate`); then a choice estimated to take no less than ``est``
    (the estimate of the job asked for) is left out."""
    from .profiles import get_profile

    choices = [{"profile": p, "args": f"--profile {p}", "make": _make_form(p), "what": PROFILE_NOTES[p],
                "prof": p, "study": None, "ladder": True} for p in LIGHTER.get(profile, ())]
    try:
        prof = get_profile(profile)
    except ValueError:
        prof = None
    if prof is not None and runs_study(profile, study):
        full = len(planned_runs(prof, True))
        no_ladder = len(planned_runs(prof, True, ladder=False))
        small = get_profile(profile, seeds=prof.seeds[:1], splits=["grouped"])
        n_small = len(planned_runs(small, True))
        chapter04 = len(planned_runs(prof, False))
        if no_ladder < full:
            choices.append({"args": f"--profile {profile} --no-ladder", "make": _make_form(profile, "--no-ladder"),
                            "what": f"the whole verdict without the leakage ladder's extra runs: {no_ladder} runs, "
                                    f"not {full}",
                            "prof": prof, "study": True, "ladder": False})
        if n_small < full:
            args = f"--seeds {prof.seeds[0]} --splits grouped"
            choices.append({"args": f"--profile {profile} {args}", "make": _make_form(profile, args),
                            "what": f"a smaller study: {n_small} runs, not {full}", "prof": small, "study": True,
                            "ladder": True})
        choices.append({"args": f"--profile {profile} --no-study", "make": _make_form(profile, "--no-study"),
                        "what": f"notebook 04's {chapter04} runs only, no cross-validated study", "prof": prof,
                        "study": False, "ladder": True})
    out = []
    for c in choices:
        if device is not None:
            c["estimate"] = estimate(c["prof"], device, study=c["study"], ladder=c["ladder"])
            if est is not None and c["estimate"]["training_seconds"] >= est.get("training_seconds", math.inf):
                continue
            if "profile" in c:
                c["what"] += _recorded_course(c["profile"], device)
        out.append({k: v for k, v in c.items() if k not in ("prof", "study", "ladder", "profile")})
    return out


def faster_choices(profile: str, study: bool | None = None, device=None, est: dict | None = None) -> str:
    """:func:`cheaper_choices` in words, one per line; with ``device``, each with its estimated training
    time and where its seconds per epoch come from."""
    choices = cheaper_choices(profile, study, device, est)
    if not choices:
        return ""
    lines = [f"Cheaper choices{f' (estimated training time on {device})' if device is not None else ''}:"]
    for c in choices:
        e = c.get("estimate")
        took = f"~{_fmt_duration(e['training_seconds'])}  " if e else ""
        lines.append(f"  {took}bcdet reproduce {c['args']}  ({c['make']})")
        pace = f" [{e['seconds_per_epoch']:.2f} s/epoch, {e['seconds_per_epoch_source']}]" if e else ""
        lines.append(f"      {c['what']}{pace}")
    if profile == "paper" and device is not None and str(device).startswith("cpu"):
        lines.append("  A CUDA GPU trains 'paper' in minutes.")
    return "\n".join(lines)


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
    choices = faster_choices(est["profile"], est.get("study"), est["device"], est)
    if _interactive():
        print(f"\nThis reproduction trains for ~{took} on {est['device']}.\n{choices}")
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
        f"purpose, {opt_in}.\n{choices}")


