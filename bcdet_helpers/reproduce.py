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
    ("05_confusion_matrices", "Confusion matrices (test split, best-by-validation)"),
    ("05_schedule_comparison", "Switching vs constant, per seed and split"),
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


def _fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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


def write_report(metrics: dict, folder: str | Path, executed_notebooks: str | None = None) -> Path:
    """``report.md``: one page a reviewer reads without Jupyter, built only from ``metrics``.

    ``executed_notebooks``: where the executed notebooks are when they are not beside the report
    (``bcdet publish`` writes the report into ``results/``, without them); default: linked from
    ``notebooks/`` next to it."""
    folder = Path(folder)
    lines = []
    add = lines.append
    rep = metrics.get("reproduce", {})
    profile = metrics.get("profile", rep.get("profile", "?"))
    dev = rep.get("device", {}) or {}
    dev_text = dev.get("gpu") or f"{dev.get('device', '?')} ({dev.get('cpu', '')}, {dev.get('torch_threads', '?')} threads)"
    add(f"# bcdet reproduction — profile `{profile}`\n")
    add("ResNet9 on BUSI (benign / malignant / normal), reproducing Achyuthanwesh et al. "
        f"Every number below was computed by the executed notebooks in `{executed_notebooks or 'notebooks/'}`; "
        "this is a teaching model, not a medical device.\n")
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
        n = len(scope["schedules"]) * len(scope["seeds"]) * len(scope["splits"])
        add(f"- study: {n} training runs = schedules {', '.join(scope['schedules'])} x seeds "
            f"{', '.join(map(str, scope['seeds']))} x splits {', '.join(scope['splits'])}"
            + (" (smaller than the profile's own study, to fit the time at hand)" if scope.get("smaller_than_profile") else ""))
    add(f"- command: `{rep.get('command', f'bcdet reproduce --profile {profile}')}`\n")

    ev = metrics.get("evaluation", {})
    study = metrics.get("study", {})
    add("## Headline: test accuracy, ours vs the paper\n")
    if smoke:
        add("*Smoke profile: the comparison below checks that the code runs, nothing else.*\n")
    add("| | accuracy | macro-F1 | 95% CI (accuracy, one model) | note |")
    add("| --- | --- | --- | --- | --- |")
    models = ev.get("models", {})
    runs = metrics.get("runs", [])
    for split in ("grouped", "random"):
        for sched in ("switching", "constant"):
            s = study.get(split, {}).get(sched)
            if not s:
                continue
            first = next((r for r in runs if r.get("split") == split and r.get("schedule") == sched), {})
            ci = {"low": first.get("acc_low"), "high": first.get("acc_high")}
            label = "leak-free grouped split" if split == "grouped" else "random split (paper-like, leaks near-duplicates)"
            add(f"| ours, {sched} | {_mean_std(s.get('accuracy'))} | {_mean_std(s.get('macro_f1'))} | "
                f"{_ci(ci)} | {label} |")
    for row in metrics.get("comparison_table", []):
        if row.get("source", "").startswith("ours"):
            continue
        add(f"| {row.get('source')} | {_pct(row.get('accuracy'))} | {_pct(row.get('macro_f1'))} | – | "
            f"{row.get('note', '')} |")
    add("")
    add("Mean ± std over seeds; n = number of seeds. The CI is a 95% percentile bootstrap over the test "
        "images of the first seed's best-by-validation model.\n")

    add("## Does switching beat constant?\n")
    for split in ("grouped", "random"):
        paired = study.get(split, {}).get("paired_accuracy")
        if paired:
            add(f"- **{split} split**: {paired.get('verdict')}")
    add("")
    gap = metrics.get("leakage_gap", {})
    if gap:
        add("## Leakage gap (random split minus grouped split, mean test accuracy)\n")
        for sched, g in gap.items():
            add(f"- {sched}: {_pct(g.get('random'))} vs {_pct(g.get('grouped'))} → gap "
                f"{100 * g['gap']:+.1f} points" if g.get("gap") is not None else f"- {sched}: –")
        n_seeds = min((d.get("accuracy", {}).get("n", 0) for sp in study.values() for k, d in sp.items()
                       if isinstance(d, dict) and "accuracy" in d), default=0)
        add(f"\nThe two splits have different test sets; with {n_seeds} seed(s) per split, read the gap "
            "against the seed-to-seed spread in the headline table"
            + (" -- with a single seed it is not a measurement of leakage yet." if n_seeds < 2 else "."))
        add("")
    if models:
        add("## Best-by-validation models on the test split (first seed, grouped split)\n")
        add("| schedule | accuracy | macro-F1 | weighted-F1 | macro AUC | ECE | n test |")
        add("| --- | --- | --- | --- | --- | --- | --- |")
        for sched, m in models.items():
            add(f"| {sched} | {_pct(m.get('accuracy'))} ({_ci(m.get('ci', {}).get('accuracy'))}) | "
                f"{_pct(m.get('macro_f1'))} ({_ci(m.get('ci', {}).get('macro_f1'))}) | {_pct(m.get('weighted_f1'))} | "
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
    """``bcdet reproduce --profile P [--seeds N ...] [--splits S ...] [--out O] [--yes]``."""
    try:
        reproduce(args.profile, out=getattr(args, "out", None), seeds=getattr(args, "seeds", None),
                  splits=getattr(args, "splits", None), yes=getattr(args, "yes", False))
    except ValueError as exc:  # unknown profile
        raise BcdetError(str(exc)) from None
    return 0
