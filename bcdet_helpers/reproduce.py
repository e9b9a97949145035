"""``make reproduce`` / ``bcdet reproduce``: the whole course, headless, with one profile.

Papermill executes notebooks 01 -> 05 in order, each with ``{"profile": profile}`` injected into
its ``parameters`` cell and ``notebooks/`` as working directory, exactly as a student would run
them top to bottom. What it leaves under ``runs/<profile>/``:

* ``notebooks/NN_*.ipynb`` -- the executed notebooks, outputs included
* ``figures/*.png``        -- written by the notebooks themselves
* ``metrics.json``         -- written by notebook 05; we add the wall time of every notebook
* ``report.md``            -- one page, readable without Jupyter: ours vs the paper, the
  switching-vs-constant verdict, the leakage gap, device, wall time, links to the key figures
  (written by :mod:`.report`)

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
from .busi import CLASSES
from .paths import project_root, runs_dir, use_runs_dir
from .report import REPORT_FIGURES, smoke_warning, write_report  # noqa: F401  (re-exported: publish, tests)
from .report import fmt_duration as _fmt_duration

# The kernel papermill runs and every notebook's metadata names: Jupyter's own "python3", which
# inside .venv's Jupyter is .venv's Python. No user-wide kernel is registered (see the Makefile).
KERNEL = "python3"


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


def planned_runs(prof) -> list[tuple[str, str, int]]:
    """``(schedule, split, seed)`` of every training run a reproduction of ``prof`` starts.

    Notebook 05's study (schedules x seeds x splits) plus notebook 04's runs: notebook 04 gets only
    ``profile``, so it always trains the profile's *own* first seed and split, even when a smaller
    study (``--seeds 1 --splits random``) leaves them out of chapter 05.
    """
    from .profiles import get_profile

    try:
        own = get_profile(prof.name)
    except ValueError:  # a Profile built by hand, not one of PROFILES
        own = prof
    study = [(s, sp, seed) for sp in prof.splits for s in prof.schedules for seed in prof.seeds]
    chapter04 = [(s, own.splits[0], own.seeds[0]) for s in own.schedules]
    return list(dict.fromkeys(study + chapter04))


def estimate(profile="paper", device="auto") -> dict:
    """How long the training in the course will take on ``device``, and where the number comes from.

    Runs = :func:`planned_runs` (notebook 05's study plus notebook 04's runs, each counted once),
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
    runs = planned_runs(prof)
    done = sum((run_dir_for(prof.name, s, sp, seed) / "result.json").exists() for s, sp, seed in runs)
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
        "runs_chapter04_only": len(runs) - len(prof.splits) * len(prof.schedules) * len(prof.seeds),
        "runs_done": done,
        "epochs_per_run": prof.epochs,
        "epochs_to_train": epochs,
        "n_train_images": n_train,
        "seconds_per_epoch": spe,
        "seconds_per_epoch_source": source,
        "training_seconds": epochs * spe,
    }


def print_estimate(est: dict) -> None:
    extra = est.get("runs_chapter04_only", 0)
    print(
        f"Profile {est['profile']!r}: {est['runs']} training runs x {est['epochs_per_run']} epochs "
        + (f"(including notebook 04's {extra} run(s) with the profile's own seed and split) " if extra else "")
        + f"({est['runs_done']} already finished and reused), ~{est['n_train_images']} training images per epoch."
    )
    print(
        f"Estimated training time: ~{_fmt_duration(est['training_seconds'])} "
        f"({est['seconds_per_epoch']:.2f} s/epoch, {est['seconds_per_epoch_source']}); "
        "data preparation, notebook 03's experiment and evaluation come on top."
    )
    if est["device"].startswith("cpu") and est["training_seconds"] > 1800:
        print(f"No GPU found: this will take a while on the CPU. {faster_choices(est['profile'])} "
              "A CUDA GPU does 'paper' in minutes.")
    sys.stdout.flush()


# ------------------------------------------------------------------------ starting a long job
LONG_JOB_SECONDS = 3600  # above this, nobody starts a reproduction by accident


def faster_choices(profile: str) -> str:
    """What to run instead of a long reproduction: a lighter profile, and a smaller study."""
    text = ""
    if profile == "paper":
        text = ("The 'laptop' profile is the CPU-friendly one: bcdet reproduce --profile laptop "
                "(make reproduce PROFILE=laptop). ")
    return text + ("A smaller study trains 2 runs instead of 12: --seeds 0 --splits grouped "
                   "(make reproduce ARGS=\"--seeds 0 --splits grouped\").")


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
        print(f"\nThis reproduction trains for ~{took} on {est['device']}. {faster_choices(est['profile'])}")
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
        f"purpose, {opt_in}. {faster_choices(est['profile'])}")


# ------------------------------------------------------------------------------------ running
def run_notebook(notebook: Path, out: Path, profile: str, echo: bool = True, **study) -> float:
    """Execute one notebook with papermill; returns its wall time. A failing cell raises
    :class:`BcdetError` naming the notebook, the cell and the error.

    ``study`` (``seeds=[0]``, ``splits=["grouped"]``) goes only to notebooks whose parameters cell
    declares it (chapter 05); the others get just ``profile``."""
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
              device: str = "auto", seeds=None, splits=None, yes: bool = False) -> dict:
    """Run the course headless with ``profile``; returns the merged metrics.json content.

    ``seeds`` / ``splits`` shrink chapter 05's study below the profile's (e.g. ``seeds=[0]``,
    ``splits=["grouped"]``: two runs instead of twelve) when the full study does not fit the time
    at hand -- the paper profile on a CPU. The report says which study it is. A job estimated at
    over an hour of training starts only with ``yes`` or a "y" typed at the terminal
    (:func:`confirm_long_job`).
    ``out``: a runs folder to use instead of ``$BCDET_RUNS`` / ``runs/`` (results land in
    ``out/<profile>/``; an ``out`` that already ends in the profile's name is taken as that
    folder). ``notebooks``: the notebooks to run, default :func:`course_notebooks` (the tests pass
    their own). ``device`` only steers the estimate; the notebooks pick the best device themselves.
    """
    from .profiles import get_profile
    from .runinfo import environment_info, write_json

    from .options import check_seed

    seeds = [check_seed(s, "--seeds") for s in seeds] if seeds else None  # before notebook 01, not in 05
    splits = list(splits) if splits else None
    prof = get_profile(profile, seeds=seeds, splits=splits)  # bad names -> ValueError before anything runs
    from .data.check import require_usable

    require_usable()  # the same refusal as `bcdet train` and the notebooks, before anything runs
    notebooks = [Path(nb) for nb in (notebooks if notebooks is not None else course_notebooks())]
    if not notebooks:
        raise BcdetError(f"No notebooks to run (looked for NN_*.ipynb in {project_root() / 'notebooks'}).")
    from .params import check_reproduce_parameters

    given = {"profile": prof.name, "seeds": seeds, "splits": splits}
    check_reproduce_parameters(notebooks, {k: v for k, v in given.items() if v is not None},
                               optional=("seeds", "splits"))
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
        est = estimate(prof, dev)
        print_estimate(est)
        confirm_long_job(est, yes)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"Results go to {folder}\n")
        set_aside_previous(folder)

        t_all = time.perf_counter()
        wall = {}
        for nb in notebooks:
            target = folder / "notebooks" / nb.name
            print(f"=== {nb.name} (profile {prof.name!r}) -> {target}", flush=True)
            wall[nb.name] = round(run_notebook(nb, target, prof.name, echo=echo, seeds=seeds, splits=splits), 2)
            print(f"=== {nb.name} done in {_fmt_duration(wall[nb.name])}\n", flush=True)
        total = time.perf_counter() - t_all

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
            "study": {"seeds": list(prof.seeds), "splits": list(prof.splits), "schedules": list(prof.schedules),
                      "smaller_than_profile": bool(seeds or splits)},
            "command": reproduce_command(prof.name, seeds, splits),
        }
        metrics.setdefault("profile", prof.name)
        write_json(metrics_path, metrics)
        report = write_report(metrics, folder)
        for previous in PREVIOUS.values():  # superseded by the files just written
            (folder / previous).unlink(missing_ok=True)
        print(f"Done in {_fmt_duration(total)}. Report: {report}  Metrics: {metrics_path}")
        return metrics


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


def reproduce_command(profile: str, seeds=None, splits=None) -> str:
    """The ``bcdet reproduce`` command line that gives this study (recorded in metrics.json)."""
    cmd = f"bcdet reproduce --profile {profile}"
    if seeds:
        cmd += " --seeds " + " ".join(str(s) for s in seeds)
    if splits:
        cmd += " --splits " + " ".join(splits)
    return cmd




def __getattr__(name):  # cli_reproduce moved to bcdet_helpers.commands; the old name still works
    if name in ("cli_reproduce",):
        import importlib

        return getattr(importlib.import_module("bcdet_helpers.commands"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
