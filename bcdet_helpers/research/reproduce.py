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

import asyncio
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import BcdetError
from ..paths import project_root, runs_dir, use_runs_dir
from .report import REPORT_FIGURES, smoke_warning, verdict, write_report  # noqa: F401  (re-exported: publish, tests)
from .report import fmt_duration as _fmt_duration
from .long_job import confirm_long_job, print_estimate
from .plan import estimate, runs_study, study_runs, study_seeds

# The kernel papermill runs and every notebook's metadata names: Jupyter's own "python3", which
# inside .venv's Jupyter is .venv's Python. No user-wide kernel is registered (see the Makefile).
KERNEL = "python3"


def course_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The course notebooks ``NN_*.ipynb`` in chapter order."""
    folder = Path(folder) if folder is not None else project_root() / "notebooks"
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


# ------------------------------------------------------------------------------------ running
def run_notebook(notebook: Path, out: Path, profile: str, echo: bool = True, **study) -> float:
    """Execute one notebook with papermill; returns its wall time. A failing cell raises
    :class:`BcdetError` naming the notebook, the cell and the error.

    ``study`` (``study=True``, ``seeds=[0]``, ``kinds=["grouped"]``, ``random_seeds=[0]``, ``ladder=False``) goes only
    to notebooks whose parameters cell declares it (chapter 05); the others get just ``profile``."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    study = {k: v for k, v in study.items() if v is not None}
    declared = pm.inspect_notebook(str(notebook)) if study else {}  # read the notebook only when needed
    parameters = {"profile": profile, **{k: v for k, v in study.items() if k in declared}}
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        with _ctrl_c_kills_the_kernel() as kernel_manager_class:
            pm.execute_notebook(
                str(notebook),
                str(out),
                parameters=parameters,
                kernel_name=KERNEL,
                cwd=str(notebook.parent),
                progress_bar=False,
                stdout_file=sys.stdout if echo else None,
                stderr_file=sys.stderr if echo else None,
                kernel_manager_class=kernel_manager_class,
            )
    except PapermillExecutionError as exc:
        first = next((ln for ln in (exc.source or "").splitlines() if ln.strip()), "")
        raise BcdetError(
            f"{notebook.name} failed in cell {exc.cell_index} (In [{exc.exec_count}], starting "
            f"{first[:80]!r}): {exc.ename}: {exc.evalue}. The executed notebook with the full "
            f"traceback is {out}. Fix the cause and run again (finished training runs are reused)."
        ) from None
    return time.perf_counter() - t0


@contextmanager
def _ctrl_c_kills_the_kernel():
    """Yield the kernel manager class for papermill; a Ctrl-C inside leaves no kernel and no traceback.

    Ctrl-C raises KeyboardInterrupt in the middle of nbclient's event loop; nbclient then shuts the
    kernel down *gracefully*, and a kernel still busy in a cell answers with a ZMQ traceback of its
    own, while the loop's unfinished tasks end in ``DeadKernelError`` tracebacks that asyncio prints
    at exit -- all after ``bcdet: interrupted``. So a Ctrl-C here kills the kernel at once (its
    manager's ``shutdown_kernel(now=True)``) and the loop's leftover tasks are cancelled and
    awaited before the KeyboardInterrupt goes on to :func:`.cli.main`.
    """
    import signal
    import threading

    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import ensure_event_loop

    interrupted = threading.Event()

    class KernelManager(AsyncKernelManager):
        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            await super().shutdown_kernel(now=now or interrupted.is_set(), restart=restart)

    def on_ctrl_c(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt

    # only Python's own Ctrl-C handler is replaced (signals reach the main thread only; an ignored
    # SIGINT or a caller's own handler is left as it is)
    ours = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield KernelManager
    except KeyboardInterrupt:
        interrupted.set()
        loop = ensure_event_loop()
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftover:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        raise
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def reproduce(profile: str = "paper", out: str | Path | None = None, notebooks=None, echo: bool = True,
              device: str = "auto", seeds=None, kinds=None, yes: bool = False, study: bool | None = None,
              random_seeds=None, ladder: bool = True) -> dict:
    """Run the course headless with ``profile``; returns the merged metrics.json content.

    ``study``: run notebook 05's cross-validated study (``study=True`` in its parameters cell);
    ``None`` (the default) runs it for the paper and laptop profiles (:func:`runs_study`). Its result
    is ``runs/<profile>/cv/study.json``, which the report reads with :func:`study.load_study`; a study
    asked for but not written by this reproduction is an error, and no report is written.
    ``seeds`` / ``kinds`` / ``random_seeds`` shrink the study below the profile's (e.g. ``seeds=[0]``,
    ``kinds=["grouped"]``: 20 runs instead of 80 for laptop; ``random_seeds``: the random split's seeds,
    by default the first seed only) when the full study does not fit the time at hand -- the paper
    profile on a CPU. ``ladder=False`` (``--no-ladder``) leaves out the leakage ladder's extra runs
    (notebook 05's ``ladder`` parameter): the verdict is the same, the ladder then shows the rungs
    those runs would measure as not measured. The report says which study it is. A job estimated at over an hour of training
    starts only with ``yes`` or a "y" typed at the terminal (:func:`confirm_long_job`).
    ``out``: a runs folder to use instead of ``$BCDET_RUNS`` / ``runs/`` (results land in
    ``out/<profile>/``; an ``out`` that already ends in the profile's name is taken as that
    folder). ``notebooks``: the notebooks to run, default :func:`course_notebooks` (the tests pass
    their own). ``device`` only steers the estimate; the notebooks pick the best device themselves.
    """
    from ..options import check_seed
    from ..profiles import get_profile
    from ..runinfo import environment_info, write_json

    seeds = [check_seed(s, "--seeds") for s in seeds] if seeds else None  # before notebook 01, not in 05
    random_seeds = [check_seed(s, "--random-seeds") for s in random_seeds] if random_seeds else None
    kinds = list(kinds) if kinds else None
    prof = get_profile(profile, seeds=seeds, kinds=kinds)  # bad names -> ValueError before anything runs
    with_study = runs_study(prof.name, study)
    study_only(prof.name, with_study, study, {"--seeds": seeds, "--kinds": kinds, "--random-seeds": random_seeds,
                                              "--no-ladder": not ladder})
    from ..data.check import require_usable

    require_usable()  # the same refusal as `bcdet train` and the notebooks, before anything runs
    notebooks = [Path(nb) for nb in (notebooks if notebooks is not None else course_notebooks())]
    if not notebooks:
        raise BcdetError(f"No notebooks to run (looked for NN_*.ipynb in {project_root() / 'notebooks'}).")
    from ..params import check_reproduce_parameters

    # `study` is checked when it asks for the study (a notebook must declare it, or it would be ignored)
    no_ladder = False if with_study and not ladder else None  # passed only when it changes something
    given = {"profile": prof.name, "seeds": seeds, "kinds": kinds, "random_seeds": random_seeds,
             "study": True if with_study else None, "ladder": no_ladder}
    check_reproduce_parameters(notebooks, {k: v for k, v in given.items() if v is not None},
                               optional=("seeds", "kinds", "random_seeds", "study", "ladder"))
    if out is not None:
        out = Path(out).expanduser().resolve()
        out = out.parent if out.name == prof.name else out
    with use_runs_dir(out):
        folder = runs_dir(prof.name)
        from ..runinfo import device_info
        from ..device import choose_device

        dev = choose_device(device)
        info = device_info(dev)
        print(f"Device: {dev}" + (f" ({info['gpu']})" if info.get("gpu") else
                                  f" ({info['cpu']}, {info['torch_threads']} torch threads; no CUDA GPU found)"))
        print("Estimating the training time ...", flush=True)
        est = estimate(prof, dev, study=with_study, random_seeds=random_seeds, ladder=ladder)
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
            wall[nb.name] = round(run_notebook(nb, target, prof.name, echo=echo, seeds=seeds, kinds=kinds,
                                               random_seeds=random_seeds, study=True if with_study else None,
                                               ladder=no_ladder), 2)
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
                      # record keys from before issue #32: "splits" are the kinds, "schedules" the arms
                      "seeds": list(prof.seeds), "splits": list(prof.kinds), "schedules": list(prof.arms),
                      "folds": prof.folds, "seeds_by_kind": study_seeds(prof, random_seeds),
                      "arms": list(prof.study_arms), "partitions": prof.partitions,
                      "runs": len(study_runs(prof, random_seeds, ladder)) if with_study else 0,
                      "complete": None if cv is None else cv.complete,
                      "smaller_than_profile": bool(seeds or kinds or random_seeds)},
            "command": reproduce_command(prof.name, seeds, kinds, random_seeds, study, ladder),
        }
        metrics.setdefault("profile", prof.name)
        write_json(metrics_path, metrics)
        report = write_report(metrics, folder, study=cv)
        for previous in PREVIOUS.values():  # superseded by the files just written
            (folder / previous).unlink(missing_ok=True)
        print(f"Done in {_fmt_duration(total)}. Report: {report}  Metrics: {metrics_path}")
        return metrics


def study_only(profile: str, with_study: bool, study: bool | None, options: dict) -> None:
    """Refuse the options (``{"--seeds": [0], ...}``) that only shape notebook 05's study when the study
    does not run: they would be ignored, and the report would still describe a smaller study."""
    given = [name for name, value in options.items() if value]
    if given and not with_study:
        why = "--no-study turns off" if study is False else f"profile {profile!r} does not run by default"
        raise BcdetError(f"{' and '.join(given)} only shape{'s' if len(given) == 1 else ''} the cross-validated study "
                         f"of notebook 05, which {why}: add --study to run it, or leave "
                         f"{'it' if len(given) == 1 else 'them'} out. Nothing was run.")


def load_reproduced_study(folder: Path, started: float):
    """The :class:`~bcdet_helpers.research.study.Study` notebook 05 wrote in ``folder/cv`` during this
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


def reproduce_command(profile: str, seeds=None, kinds=None, random_seeds=None, study: bool | None = None,
                      ladder: bool = True) -> str:
    """The ``bcdet reproduce`` command line that gives this study (recorded in metrics.json)."""
    cmd = f"bcdet reproduce --profile {profile}"
    if study is not None and bool(study) != runs_study(profile):
        cmd += " --study" if study else " --no-study"
    if seeds:
        cmd += " --seeds " + " ".join(str(s) for s in seeds)
    if random_seeds:
        cmd += " --random-seeds " + " ".join(str(s) for s in random_seeds)
    if kinds:
        cmd += " --kinds " + " ".join(kinds)
    if not ladder and runs_study(profile, study):
        cmd += " --no-ladder"
    return cmd
