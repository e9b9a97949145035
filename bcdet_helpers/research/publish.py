"""``bcdet publish``: copy a finished reproduction's small outputs into ``results/<profile>/``.

``runs/<profile>/`` holds everything a reproduction leaves -- checkpoints, caches, executed
notebooks that embed the dataset's images -- and is never committed. ``results/<profile>/`` is
the part that is: what the README's results table and ``tests/test_recorded_results.py`` read.

What is copied (nothing else, so no weights and no patient images beyond the small figures):

* ``metrics.json`` and a fresh ``report.md`` built from it (links point inside ``results/``); chapter 06's
  ``external.json`` (its runs scored on BUS-BRA) when it ran
* ``figures/*.png``                       -- chapters 04 and 05's figures
* ``splits/<kind>-fold<F>-seed<N>.csv``   -- which file went to train / val / test, per split of the runs
* ``runs/<run>/{config.json,history.csv,result.json}`` -- each run notebook 05 scored in detail
  (chapter 04's arms on one fold): its exact configuration, per-epoch history and final numbers
  (device, versions, wall time included)

and, when the reproduction ran the cross-validated study, ``runs/<profile>/cv/`` goes to
``results/<profile>-cv/``: ``folds.csv``, ``design.json``, ``runs.csv``, ``oof/*.csv``, ``val/*.csv``, ``inflation/*.csv``
and ``study.json`` -- small CSV/JSON, no weights -- which :func:`study.evaluate_study` can re-evaluate
anywhere and notebook 05 shows as "recorded, not re-run" -- with every study run's
``runs/<run>/{config.json,history.csv,result.json}`` (each number traces to its run's commit, versions,
device and wall time, and a fresh machine can restore the study from them) and a README. The report is rebuilt from
``metrics.json`` and the study read with :func:`study.load_study`.

A study trained without the notebooks (``study.run_study`` alone, e.g. on a lent GPU) is published by
``bcdet publish --study-only`` (:func:`publish_study`): the same ``results/<profile>-cv/``, no report.

The destination is rebuilt in a staging folder and swapped in at the end, so an interrupted
publish leaves the previous results untouched. It replaces only folders that publish wrote before
(:mod:`.outputs`: a marker file) or new or empty ones, and never committed results without ``force``
(``--force``), so a wrong ``--dest`` cannot delete a user's files (issue #27).

Over 350 lines on purpose: the three ways to publish (:func:`publish`, :func:`publish_study`,
:func:`publish_partial`) share the claiming, staging and swap-in steps below them, which keep an interrupted
publish from leaving half a folder.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import BcdetError
from .outputs import claim, mark
from ..paths import project_root, runs_dir
from ..runkey import RunKey

RUN_FILES = ("config.json", "history.csv", "result.json")
CV_FILES = ("folds.csv", "design.json", "runs.csv", "study.json")  # plus the CSVs of CV_PARTS
CV_PARTS = ("oof", "val", "inflation", "external")  # inflation/: test-by-epoch records, for the leakage ladder
# only; external/: each run's BUS-BRA predictions (gzip CSVs, issue #30)


def study_runs(metrics: dict) -> list[tuple[str, str, int, int]]:
    """``(arm, kind, fold, seed)`` of every run in the study that ``metrics.json`` describes (whose rows
    name the arm ``schedule`` and the kind ``split``, the keys from before issue #32)."""
    return [(r["schedule"], r["split"], int(r.get("fold", 0)), int(r["seed"])) for r in metrics.get("runs", [])]


def require_finished(src: Path, metrics: dict, profile: str) -> None:
    """Refuse a ``metrics.json`` that a finished ``bcdet reproduce`` did not write last.

    reproduce adds its ``reproduce`` section only after every notebook ran; without it the file
    comes from notebook 05 alone or from a reproduction that stopped. An executed notebook newer
    than the file means a later reproduction re-ran (and failed or is still running): the numbers
    no longer describe the notebooks beside them.
    """
    again = f"Run `bcdet reproduce --profile {profile}` to the end (finished runs are reused), then publish."
    if "reproduce" not in metrics:
        raise BcdetError(f"{src / 'metrics.json'} is incomplete: it has no 'reproduce' section, so no "
                         f"`bcdet reproduce` finished with it (notebook 05 ran alone, or the run stopped). {again}")
    written = (src / "metrics.json").stat().st_mtime_ns
    newer = sorted(nb.name for nb in (src / "notebooks").glob("*.ipynb") if nb.stat().st_mtime_ns > written)
    study = (metrics["reproduce"].get("study") or {})
    cv_json = src / (study.get("folder") or "cv") / "study.json"
    if study.get("run") and cv_json.exists() and cv_json.stat().st_mtime_ns > written:
        newer.append(f"{cv_json.parent.name}/study.json")
    if newer:
        raise BcdetError(f"{src / 'metrics.json'} is stale: {', '.join(newer)} in {src} ran after "
                         f"it was written (a later reproduction failed or is still running). {again}")


def finished_study(src: Path, metrics: dict, profile: str):
    """The cross-validated :class:`~bcdet_helpers.research.study.Study` the reproduction ran (``None`` when it ran
    none), read with :func:`study.load_study`; refused when missing or incomplete."""
    scope = metrics["reproduce"].get("study") or {}
    if not scope.get("run"):
        return None
    folder = src / (scope.get("folder") or "cv")
    again = f"Run `bcdet reproduce --profile {profile}` to the end (finished runs are reused), then publish."
    if not (folder / "study.json").exists():
        raise BcdetError(f"{src / 'metrics.json'} says the study ran, but {folder / 'study.json'} is missing. {again}")
    return _complete_study(folder, again)


def _complete_study(folder: Path, again: str):
    """The study of ``folder`` (:func:`study.load_study`), refused when incomplete; ``again`` says what to do."""
    from .study import load_study

    study = load_study(folder)
    if not study.complete:
        raise BcdetError(f"{folder / 'study.json'} is incomplete: some arm, kind or seed lacks out-of-fold "
                         f"predictions for every image. {again}")
    return study


def publish(profile: str, dest: str | Path | None = None, force: bool = False) -> Path:
    """Copy the committed part of ``runs/<profile>/`` to ``dest`` (default ``results/<profile>/``);
    ``force`` lets it replace a folder it did not write, or committed results (:func:`outputs.claim`)."""
    from .report import write_report
    from ..runs import run_dir_for

    src = runs_dir(profile)
    metrics_path = src / "metrics.json"
    if not metrics_path.exists():
        raise BcdetError(f"No {metrics_path}: run `bcdet reproduce --profile {profile}` first; "
                         "publish copies what that run left.")
    metrics = json.loads(metrics_path.read_text())
    require_finished(src, metrics, profile)
    cv = finished_study(src, metrics, profile)
    runs = study_runs(metrics)
    if not runs:
        raise BcdetError(f"{metrics_path} lists no training runs (notebook 05 did not finish?). "
                         f"Run `bcdet reproduce --profile {profile}` again; finished runs are reused.")
    run_dirs = [run_dir_for(profile, arm, kind, fold=fold, seed=seed) for arm, kind, fold, seed in runs]
    missing = [run for run in run_dirs if not (run / "result.json").exists()]
    if missing:
        raise BcdetError(f"Runs listed in {metrics_path} are not finished: {', '.join(map(str, missing))}. "
                         "Run the reproduction again (it resumes them) before publishing.")

    dest = Path(dest) if dest is not None else project_root() / "results" / profile
    cv_dest = dest.with_name(dest.name + "-cv")
    _claim([dest, *([cv_dest] if cv is not None else [])], force, partial=cv is not None)
    command = f"bcdet publish --profile {profile}"
    stage = _fresh(dest.with_name(dest.name + ".publishing"), command)
    (stage / "figures").mkdir()
    shutil.copy2(metrics_path, stage / "metrics.json")
    if (src / "external.json").exists():  # chapter 06: the runs on BUS-BRA (when a copy was there)
        shutil.copy2(src / "external.json", stage / "external.json")
    for fig in sorted((src / "figures").glob("*.png")):
        shutil.copy2(fig, stage / "figures" / fig.name)
    for kind, fold, seed in sorted({(kind, fold, seed) for _, kind, fold, seed in runs}):
        csv = src / "splits" / f"{kind}-fold{fold}-seed{seed}.csv"
        if csv.exists():
            (stage / "splits").mkdir(exist_ok=True)
            shutil.copy2(csv, stage / "splits" / csv.name)
    for run in run_dirs:
        (stage / "runs" / run.name).mkdir(parents=True)
        for name in RUN_FILES:
            if (run / name).exists():
                shutil.copy2(run / name, stage / "runs" / run.name / name)
    cv_stage = cv_dest.with_name(cv_dest.name + ".publishing")
    if cv is not None:
        _fresh(cv_stage, command)
        _stage_study(profile, src / (metrics["reproduce"]["study"].get("folder") or "cv"), cv_stage, cv_dest, cv,
                     origin=f"`{metrics['reproduce'].get('command', '')}` and `bcdet publish --profile {profile}`",
                     report=f"the report that reads it is `results/{profile}/report.md`, ")
    write_report(metrics, stage, executed_notebooks=f"runs/{profile}/notebooks/", study=cv,
                 study_folder=f"{cv_dest.parent.name}/{cv_dest.name}/" if cv is not None else None)

    _swap_in(stage, dest)
    if cv is not None:
        _swap_in(cv_stage, cv_dest)
        _drop_partial(cv_dest)
    return dest


def publish_study(profile: str, dest: str | Path | None = None, study: str | Path | None = None,
                  force: bool = False) -> Path:
    """``bcdet publish --study-only``: a finished cross-validated study *without* a reproduction -- one
    trained by :func:`study.run_study` alone, e.g. on a lent GPU where the notebooks did not run -- to
    ``dest`` (default ``results/<profile>-cv/``), the folder notebook 05 shows as "recorded, not re-run"
    and ``bcdet ladder`` reads. The same files as a full ``bcdet publish`` writes there; no report (that
    needs the notebooks). Refused unless ``study.json`` covers every run and was evaluated after the
    last one finished. ``force`` as in :func:`publish`."""
    from .study.cv import recorded_run_dirs

    study = Path(study) if study is not None else runs_dir(profile) / "cv"
    again = f"Finish the study first (`bcdet reproduce --profile {profile}`, or `study.run_study`): it evaluates and writes study.json."
    if not (study / "study.json").exists():
        raise BcdetError(f"No {study / 'study.json'}: the study in {study} has not finished. {again}")
    runs_csv = study / "runs.csv"
    if runs_csv.exists() and runs_csv.stat().st_mtime_ns > (study / "study.json").stat().st_mtime_ns:
        raise BcdetError(f"{study / 'study.json'} is stale: runs.csv changed after it was evaluated. {again}")
    cv = _complete_study(study, again)
    calls = cv.design.get("calls", [])
    where = ", ".join(sorted({f"{c.get('device')} (commit {c.get('commit')})" for c in calls})) or "unrecorded"
    gpus = sorted({json.loads((run / "result.json").read_text()).get("environment", {}).get("gpu") or ""
                   for run in recorded_run_dirs(profile, study).values() if (run / "result.json").exists()} - {""})
    where += f"; the runs' GPU: {', '.join(gpus)}" if gpus else ""
    dest = Path(dest) if dest is not None else project_root() / "results" / f"{profile}-cv"
    _claim([dest], force, partial=True)
    stage = _fresh(dest.with_name(dest.name + ".publishing"), f"bcdet publish --profile {profile} --study-only")
    _stage_study(profile, study, stage, dest, cv,
                 origin=f"`study.run_study` alone ({len(calls)} call(s) in `design.json`, on {where}; no notebooks "
                        f"ran) and `bcdet publish --profile {profile} --study-only`",
                 report="no report reads it (that needs a full `bcdet reproduce`); ")
    _swap_in(stage, dest)
    _drop_partial(dest)
    return dest


def _stage_study(profile: str, src: Path, stage: Path, dest: Path, cv, *, origin: str, report: str) -> None:
    """A finished study ``src`` (evaluated as ``cv``) into ``stage``, to become ``dest``: its small files, its
    runs' records and the README that says where it came from (``origin``) and what reads it (``report``)."""
    _copy_study(src, stage, CV_FILES)
    n_runs = _copy_study_runs(profile, src, stage)
    (stage / "README.md").write_text(CV_README.format(
        profile=profile, folder=dest.name, n_runs=n_runs, commit=cv.commit, at=cv.created_at, origin=origin,
        report=report, restore=_restore(profile, dest.name, stage)))


def _drop_partial(cv_dest: Path) -> None:
    """Delete the snapshot ``bcdet publish --partial`` took while the study ran: the finished one supersedes it
    (:func:`_claim` checked first that it is one)."""
    shutil.rmtree(_partial(cv_dest), ignore_errors=True)


def _partial(cv_dest: Path) -> Path:
    return cv_dest.with_name(cv_dest.name + "-partial")


def _claim(finals: list[Path], force: bool, partial: bool = False) -> None:
    """Check, before anything is written, every folder a publish replaces or deletes (:func:`outputs.claim`):
    the destinations, their staging and ``.old`` folders, and (``partial``) the ``-cv-partial`` snapshot
    beside the study that it drops. The snapshot and the side folders are replaced by design, so
    committing them does not protect them; a folder publish did not write always does."""
    for final in finals:
        claim(final, force=force)
        for side in (".publishing", ".old"):
            claim(final.with_name(final.name + side), force=force, records=False)
    if partial:
        claim(_partial(finals[-1]), force=force, records=False)


def _fresh(stage: Path, command: str) -> Path:
    """An empty staging folder carrying the marker of ``command`` (which the published folder keeps)."""
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    mark(stage, command)
    return stage


def publish_partial(profile: str, dest: str | Path | None = None, study: str | Path | None = None,
                    force: bool = False) -> Path:
    """``bcdet publish --partial``: a snapshot of a cross-validated study *while it runs* -- its CSVs
    (no ``study.json``: not a result) and every finished run's ``config.json`` / ``history.csv`` /
    ``result.json`` -- to ``dest`` (default ``results/<profile>-cv-partial/``), with a README that says
    how many runs it holds and how to restore it on a fresh machine, where ``runs/`` is gone:
    :func:`study.run_study` then uses the recorded predictions of runs without weights. A full
    ``bcdet publish`` of the finished study deletes the snapshot. ``force`` as in :func:`publish` (a snapshot
    it wrote before is replaced without it, committed or not: snapshots are replaced by design)."""
    import time

    import pandas as pd

    study = Path(study) if study is not None else runs_dir(profile) / "cv"
    if not (study / "folds.csv").exists():
        raise BcdetError(f"{study} holds no study yet (no folds.csv): start it with `bcdet reproduce --profile {profile}`.")
    dest = Path(dest) if dest is not None else project_root() / "results" / f"{profile}-cv-partial"
    for folder in (dest, dest.with_name(dest.name + ".publishing"), dest.with_name(dest.name + ".old")):
        claim(folder, force=force, records=False)
    stage = _fresh(dest.with_name(dest.name + ".publishing"), f"bcdet publish --profile {profile} --partial")
    _copy_study(study, stage, [f for f in CV_FILES if f != "study.json"])
    n_runs = _copy_study_runs(profile, study, stage)
    n_study = len(pd.read_csv(study / "runs.csv")) if (study / "runs.csv").exists() else 0
    (stage / "README.md").write_text(PARTIAL_README.format(
        profile=profile, n_runs=n_runs, n_study=n_study, at=time.strftime("%Y-%m-%d %H:%M %Z"),
        folder=dest.name, restore=_restore(profile, dest.name, stage)))
    _swap_in(stage, dest)
    return dest


PARTIAL_README = """# results/{folder} -- a study while it runs (NOT a result)

A snapshot of the cross-validated `{profile}` study taken while it trains (`bcdet publish --profile
{profile} --partial`, {at}), so that its finished runs are on record if the machine is lost:
**{n_runs} finished run folders, {n_study} of them in `runs.csv`** (the leakage ladder's runs with
test copies are recorded in `inflation/` only). There is no `study.json` on purpose: nothing here
is a verdict, and no notebook or README number is read from it. When the study is finished,
`bcdet reproduce --profile {profile}` and `bcdet publish --profile {profile}` write
`results/{profile}-cv/` and delete this folder.

Files: `folds.csv`, `design.json` (every call that added runs: arms, seeds, commit, device),
`runs.csv`, `oof/` (test predictions), `val/`, `inflation/` (test-by-epoch records, for the
leakage ladder only), and `runs/<run>/` with each finished run's `config.json`, `history.csv` and
`result.json` (its commit, versions, device and wall time). No checkpoints (too big for git).

{restore}"""

CV_README = """# results/{folder} -- the cross-validated `{profile}` study

Written by {origin} (study evaluated {at}, commit `{commit}`); {report}notebook 05 shows it as
"recorded, not re-run", and `bcdet ladder --profile {profile}` climbs the leakage ladder from it.

Files: `study.json` (the evaluated study: scores, paired differences, leakage gaps, weights check;
`bcdet_helpers.research.study.load_study`), `folds.csv`, `design.json` (every call that added runs: arms, seeds,
commit, device), `runs.csv`, `oof/` (each run's test predictions), `val/`, `inflation/` (test-by-epoch
records, for the leakage ladder only), and `runs/<run>/` with each of the {n_runs} runs' `config.json`,
`history.csv` and `result.json` (its commit, versions, device and wall time). No weights (too big for git):
`study.evaluate_study("results/{folder}")` re-evaluates everything from these files.

{restore}"""


def _copy_study_runs(profile: str, study: Path, stage: Path) -> int:
    """Each finished run of ``study``: its ``config.json`` / ``history.csv`` / ``result.json`` into
    ``stage/runs/``. Returns how many."""
    from .study.cv import recorded_run_dirs

    n = 0
    for run in recorded_run_dirs(profile, study).values():  # the ladder's augmented runs: -testcopies<k>
        if not (run / "result.json").exists():
            continue
        (stage / "runs" / run.name).mkdir(parents=True)
        for f in RUN_FILES:
            if (run / f).exists():
                shutil.copy2(run / f, stage / "runs" / run.name / f)
        n += 1
    return n


def _restore(profile: str, folder: str, stage: Path) -> str:
    """How to put a recorded study back into ``runs/`` on a fresh machine (the README's last section)."""
    keys = {p.name: RunKey.find(p.name) for p in (stage / "runs").iterdir()} if (stage / "runs").exists() else {}
    # notebook 04's runs (grouped fold 0, seed 0, one per arm) need their weights: retrained
    first = sorted(n for n, k in keys.items() if k is not None and (k.kind, k.fold, k.seed) == ("grouped", 0, 0))
    return f"""**On a fresh machine** the finished runs need not be trained again: restore the record and go on.
The study takes runs without weights from their recorded predictions, after checking each run's
config against today's settings (it refuses a stale one and says which). Notebook 04's runs need
their weights, so they are left out and retrained:

```bash
mkdir -p runs/{profile}/cv
cp -r results/{folder}/{{{",".join(["folds.csv", "design.json", "runs.csv", *(p for p in CV_PARTS if (stage / p).exists())])}}} runs/{profile}/cv/
cp -r results/{folder}/runs/* runs/{profile}/
rm -rf {" ".join(f"runs/{profile}/{r}" for r in first) or "(none)"}
bcdet reproduce --profile {profile} --yes   # trains what is missing, then runs the notebooks
```
"""


def _copy_study(src: Path, stage: Path, files) -> None:
    """A study folder's small files (``files``) and the CSVs of :data:`CV_PARTS`, into ``stage``."""
    stage.mkdir(parents=True, exist_ok=True)
    for name in files:
        if (src / name).exists():
            shutil.copy2(src / name, stage / name)
    for part in CV_PARTS:
        csvs = sorted([*(src / part).glob("*.csv"), *(src / part).glob("*.csv.gz")])
        if csvs or part != "external":  # external/ only where BUS-BRA was scored
            (stage / part).mkdir()
        for csv in csvs:
            shutil.copy2(csv, stage / part / csv.name)


def _swap_in(staged: Path, final: Path) -> None:
    """Replace ``final`` by the fully written ``staged`` folder, so an interrupted publish leaves the
    previous results untouched."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)
