"""Running the study: every (arm, kind, fold, seed) run and its out-of-fold predictions
(:func:`run_study`), on the folds and label conflicts of :mod:`~bcdet_helpers.research.study.folds` (split from
here by job, issue #32). See :mod:`bcdet_helpers.research.study`."""
from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ...busi import CLASSES
from ...errors import BcdetError
from ...profiles import Profile, partition_profile
from .design import StudyDesign, study_design
from .evaluation import evaluate_study
from .external import record_external
from ...runkey import AUGMENTED, RunKey, fold_kind_of
from .files import (KEY_COLUMNS, PREDICTION_COLUMNS, PROBA_DECIMALS, RUN_COLUMNS, external_csv, key_columns, key_rows,
                    read_folds, with_partition)
from .folds import study_dir, write_folds
from .result import Study, WEIGHTS, WEIGHTS_RULE
from ...runinfo import write_atomic
from ..workers import in_workers


# ------------------------------------------------------------------------------------ predictions
def predict_run(run_dir: str | Path, data, device="cpu", groups: dict | None = None,
                partition: int = 0) -> dict[str, pd.DataFrame]:
    """The predictions of one finished run on its test and validation images, for both weights
    (``last.pt``, ``best.pt``), plain and flipped left-right: ``{"test": df, "val": df}`` with
    :data:`PREDICTION_COLUMNS`. ``data`` is the run's :class:`SplitData`."""
    import torch

    from ...checkpoints import load_checkpoint
    from ...evaluate import predict_proba

    run_dir = Path(run_dir)
    parts = ("test", "val")
    xs = [data.part(part) for part in parts]
    x = torch.cat([xi for xi, _ in xs])
    batch = torch.cat([x, torch.flip(x, dims=[-1])])  # plain and flipped left-right, one pass
    out = {part: [] for part in parts}
    for weights in WEIGHTS:
        model, meta = load_checkpoint(run_dir / f"{weights}.pt", device=device)
        epoch = meta.get("epoch") if weights == "last" else meta.get("best_epoch")
        proba = predict_proba(model, batch, meta["mean"], meta["std"], device=device)
        plain, flipped = proba[: len(x)], proba[len(x):]
        start = 0
        for part, (_, y) in zip(parts, xs):
            # rounded once, here: the CSV is the record, and `pred` is the arg-max of what it holds
            p = np.round(plain[start:start + len(y)], PROBA_DECIMALS)
            pf = np.round(flipped[start:start + len(y)], PROBA_DECIMALS)
            start += len(y)
            files = data.files_of(part)
            df = pd.DataFrame({
                "file": files, "label": [CLASSES[int(k)] for k in y], "y": y.numpy().astype(int),
                "group": [(groups or {}).get(f, -1) for f in files], "kind": data.kind, "fold": data.fold,
                "seed": data.seed, "arm": meta["schedule"], "weights": weights, "epoch": epoch, "part": part,
                "partition": partition,
            })
            for k, c in enumerate(CLASSES):
                df[f"p_{c}"] = p[:, k]
            for k, c in enumerate(CLASSES):
                df[f"p_{c}_hflip"] = pf[:, k]
            df["pred"] = [CLASSES[int(k)] for k in p.argmax(1)]
            out[part].append(df)
    return {part: pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS] for part, frames in out.items()}


def run_study(profile: str | Profile | StudyDesign, arms=None, kinds=None, seeds=None, folds=None, *, device="auto",
              resume: bool = True, include_conflicts: bool = False, out: str | Path | None = None,
              progress: bool = True, n_boot: int | None = None, jobs: int | None = None,
              extra: dict | None = None, only=None, partitions=None, record_test: bool = True) -> Study | None:
    """Train (or load) every run of a study design, write its predictions, and evaluate.

    ``profile``: a :class:`~bcdet_helpers.research.study.design.StudyDesign`, or a profile whose design
    :func:`~bcdet_helpers.research.study.design.study_design` builds -- ``run_study(profile)`` alone is the very
    study ``bcdet reproduce`` estimates (the ladder's runs included); ``arms``, ``kinds``, ``seeds``
    (a list for every kind, or ``{"grouped": [0, 1, 2], "random": [0]}``), ``folds`` (a subset gives a
    partial study: :attr:`Study.complete` is then False), ``partitions`` (fold partitions; the profile's own
    when nothing else is asked, else the first only) and ``extra`` (runs of single arms,
    ``{arm: {kind: [seeds]}}``, e.g. the ladder's: the ladder-only kind ``"augmented"`` leaves only its
    test record in ``inflation/``) ask for a smaller or another one. Runs live in their usual folders
    (:meth:`RunKey.run_dir`), so finished runs are loaded, not retrained, and ``resume=True`` continues
    an interrupted one. Order: :meth:`StudyDesign.runs`.

    ``only``: indices into :meth:`StudyDesign.runs` (``bcdet study --run K``): train just those runs and
    write their predictions, nothing shared -- several processes or machines (a job array) can run
    different indices at once; a later call without ``only`` collects them, writes ``runs.csv`` and
    evaluates. Returns ``None`` then.

    ``jobs`` runs at once (default :func:`~bcdet_helpers.device.auto_jobs`: one single-thread
    worker per CPU core, up to 4 workers on a big CUDA GPU). Each run stays its own -- its seed fixes its
    initialisation, data order and augmentation whichever worker trains it -- so a run trained by a
    worker equals the same run trained alone with the same number of threads (tested). A run of the first
    fold partition also keeps its test fold's predictions after every epoch in ``inflation/`` (for the
    leakage ladder only; see :class:`~bcdet_helpers.callbacks.TestRecord` and :func:`records_test`;
    ``record_test=False``: none). Workers are spawned processes: a
    script that calls this with ``jobs > 1`` needs Python's ``if __name__ == "__main__":`` guard
    (notebooks and ``bcdet reproduce`` do not).
    Returns :func:`evaluate_study`'s result and saves it as ``study.json`` in ``out``.
    """
    from ...device import auto_jobs, choose_device, worker_threads
    from ...runinfo import git_commit, write_json

    if isinstance(profile, StudyDesign):
        design = profile
    else:
        bare = all(x is None for x in (arms, kinds, seeds, folds, extra, partitions))
        design = study_design(profile, arms=arms, kinds=kinds, seeds=seeds, folds=folds, extra=extra, ladder=bare,
                              partitions=partitions if partitions is not None or bare else [0])
    prof = design.profile
    out = Path(out) if out is not None else study_dir(prof)
    keys = design.runs()
    if only is not None:
        bad = [k for k in only if not 0 <= k < len(keys)]
        if bad:
            raise BcdetError(f"Run index {bad[0]} is not in this study: it has {len(keys)} runs, 0..{len(keys) - 1} "
                             f"(bcdet study --profile {prof.name} --list).")
        keys = [keys[k] for k in only]
    if only is None or not (out / "folds.csv").exists():
        write_folds(prof, design.kinds, out, partitions=design.partitions)
    table = read_folds(out)
    groups = dict(zip(table["file"], table["group"].astype(int)))
    dev = choose_device(device)
    for part in ("oof", "val", "inflation"):
        (out / part).mkdir(parents=True, exist_ok=True)
    if only is None:
        # design.json: the profile, and every call that added runs to this folder (a study may be run in
        # pieces, e.g. the random split with fewer seeds); "arms" orders the arms of the result
        design_path = out / "design.json"
        calls = json.loads(design_path.read_text()).get("calls", []) if design_path.exists() else []
        calls.append({**design.to_dict(), "include_conflicts": include_conflicts, "device": str(dev),
                      "commit": git_commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        write_json(design_path, {"profile": prof.to_dict(), "weights_rule": WEIGHTS_RULE,
                                 "arms": list(dict.fromkeys(a for c in calls for a in c["arms"])), "calls": calls})
    fold_of = {pk: g.set_index("file")["fold"] for pk, g in table.groupby(["partition", "kind"])}
    tasks = []
    for key in keys:
        folds_here = fold_of[(key.partition, key.fold_kind)]
        if key.fold > int(folds_here.max()):  # a tiny subset has fewer folds than the profile asks
            continue
        test = sorted(folds_here.index[folds_here.to_numpy() == key.fold])
        tasks.append((prof, key, dev, resume, out, groups, test, records_test(key, record_test)))
    if only is not None:
        for task in tasks:
            _study_run(*task, progress=progress)
        return None
    if jobs is not None and jobs < 1:
        raise BcdetError(f"jobs must be at least 1, got {jobs}.")
    # finished runs: their recorded predictions, or loaded and predicted here (seconds), not in a worker
    finished = [t for t in tasks if (study_run_dir(prof, t[1]) / "result.json").exists()]
    tasks = [t for t in tasks if t not in finished]
    jobs = max(1, min(len(tasks), auto_jobs(dev) if jobs is None else jobs))
    run_rows = []
    recorded = with_partition(pd.read_csv(out / "runs.csv")) if (out / "runs.csv").exists() \
        else pd.DataFrame(columns=RUN_COLUMNS)
    from_record = without_weights = 0
    for task in finished:
        key = task[1]
        row = _recorded_row(prof, key, out, recorded, task[-1])
        if row is not None:
            from_record += 1
            without_weights += not (study_run_dir(prof, key) / "last.pt").exists()
            if key.kind != AUGMENTED and not external_csv(out, key).exists():
                record_external(prof, key, study_run_dir(prof, key), out, device=dev)  # recorded before #30
        run_rows.append(row if row is not None else _study_run(*task, progress=progress))
    _write_runs(out, run_rows)
    if progress and from_record:
        print(f"{from_record} finished run(s) taken from this study's record (their predictions are here and newer "
              f"than the run; {without_weights} of them without weights, restored from a snapshot).", flush=True)
    if progress and len(tasks) > 1:
        print(f"{len(tasks)} runs to train, one at a time on {dev}" if jobs == 1 else
              f"{len(tasks)} runs to train, {jobs} at a time ({jobs} workers x {worker_threads(jobs)} thread(s) on {dev}; "
              "the faster way here, issue #17); one line per finished run", flush=True)
    t0 = time.perf_counter()
    # N workers x 1 thread: on a 2-core CPU, 1.10x the runs per hour of one run at a time (issue #17). One at a
    # time, a run prints its own epochs; in workers, one line each as it finishes. runs.csv is rewritten after
    # every finished run, so an interrupted study keeps what it trained.
    train_one = partial(_study_task, progress=progress and jobs == 1)
    for i, row in enumerate(in_workers(train_one, tasks, jobs), 1):
        run_rows.append(row)
        _write_runs(out, run_rows)
        if progress and jobs > 1:
            print(f"[{i}/{len(tasks)}] {row['run']}: {row['wall_time_s']:.0f} s of training "
                  f"({time.perf_counter() - t0:.0f} s since the start)", flush=True)
    study = evaluate_study(out, include_conflicts=include_conflicts, n_boot=n_boot or prof.bootstrap)
    study.save(out / "study.json")
    return study


def _study_task(task: tuple, progress: bool = False) -> dict:
    return _study_run(*task, progress=progress)


def records_test(key: RunKey, record_test: bool = True) -> bool:
    """Does this run keep its test fold's predictions after every epoch (``inflation/``)? Only the leakage ladder
    reads them (:mod:`~.ladder`, :mod:`~.ladder_orders`), and only on the first fold partition -- the one the
    random split shares -- so a run of a further partition, or of a study that asks for none
    (``record_test=False``: the improvement ladder's), skips the record and the ~8 % of its training time the
    record costs on a CPU (the test fold predicted after every epoch: 1.5 s of 18.8 s in a 4-epoch laptop run).
    The ladder's ``augmented`` runs are nothing but their record. Predicting changes no weight, so a run is the
    same with or without it."""
    return key.kind == AUGMENTED or (record_test and key.partition == 0)


def _study_run(prof: Profile, key: RunKey, dev, resume: bool, out: Path, groups: dict, test: list[str],
               record: bool = True, progress: bool = True) -> dict:
    """One run of the study: train (or load) it, check its test images are its fold of
    ``folds.csv``, write its predictions (``oof/``, ``val/``, ``external/``) and, with ``record``
    (:func:`records_test`), its test record (``inflation/``); returns its row of ``runs.csv``. Runs in the
    calling process or in a worker."""
    import shutil

    from ...callbacks import TEST_RECORD
    from ...data import load_split_data
    from ...runs import train_run

    name = key.name
    res = train_run(prof, key.arm, kind=key.fold_kind, fold=key.fold, seed=key.seed, device=dev, resume=resume,
                    progress=progress, record_test=record, test_copies=key.test_copies(prof.ladder_test_copies),
                    partition=key.partition)
    if res.interrupted:
        raise BcdetError(f"The study stopped during {name} (interrupted). Run the same call again to resume: "
                         "finished runs are loaded, not retrained.")
    data = load_split_data(partition_profile(prof, key.partition), kind=key.fold_kind, seed=key.seed, fold=key.fold)
    test_files = set(data.files_of("test"))
    if test_files != set(test):
        raise BcdetError(f"{name}: the run's test images are not fold {key.fold} of folds.csv "
                         f"({len(test_files ^ set(test))} differ) -- the split code changed?")
    record_file = Path(res.run_dir) / TEST_RECORD
    if key.kind == AUGMENTED:  # the ladder's leaky run: its test record only, never a prediction of the study
        shutil.copy(record_file, out / "inflation" / f"{name}.csv")
        return {**key_columns(key), "wall_time_s": res.wall_time, "run": Path(res.run_dir).name}
    pred = predict_run(res.run_dir, data, device=dev, groups=groups, partition=key.partition)
    for part, folder in (("test", "oof"), ("val", "val")):  # atomic: a killed study leaves no half record
        write_atomic(out / folder / f"{name}.csv", lambda tmp, df=pred[part]: df.to_csv(tmp, index=False))
    record_external(prof, key, Path(res.run_dir), out, device=dev)  # BUS-BRA, when it is here (#30)
    if record and record_file.exists():  # a run trained before the record existed has none (the ladder says so)
        shutil.copy(record_file, out / "inflation" / f"{name}.csv")
    info = res.info or {}
    ratios = [p.get("ratio", math.nan) for p in info.get("phase_stability", [])]
    return {
        **key_columns(key),
        "n_train": int((data.parts == "train").sum()), "n_val": int((data.parts == "val").sum()),
        "n_test": int((data.parts == "test").sum()), "epochs": len(res.history),
        "best_epoch": res.best_epoch, "max_phase_ratio": max(ratios) if ratios else math.nan,
        "wall_time_s": res.wall_time, "seconds_per_epoch": res.seconds_per_epoch,
        "run": Path(res.run_dir).name,
    }


def _recorded_row(prof: Profile, key: RunKey, out: Path, recorded: pd.DataFrame, record: bool = True) -> dict | None:
    """The ``runs.csv`` row of a finished run whose predictions and test record this study folder
    already holds, so that it is not loaded and predicted again (a long study restarted, ``bcdet
    reproduce`` after it: seconds per run, minutes for a hundred). ``None``: predict it -- its
    weights are here and its record is missing, older than the run (trained again since), or was
    made with other settings.

    A run *without* weights -- its folder restored from a committed snapshot (``config.json``,
    ``history.csv``, ``result.json``; checkpoints are too big for git) on a fresh machine -- can only
    come from its record: refused, with the fix, when the record is missing or its config is not
    the run these settings would train. ``record``: does the run keep a test record (:func:`records_test`)?"""
    from ...runs import config_differences

    run_dir, name = study_run_dir(prof, key), key.name
    record_file = out / "inflation" / f"{name}.csv"
    made = [record_file] if key.kind == AUGMENTED else [out / p / f"{name}.csv" for p in ("oof", "val")]  # by the study
    need = list(dict.fromkeys([*([record_file] if record else []), *made]))
    row = key_rows(recorded, key)
    missing = [str(p.relative_to(out)) for p in need if not p.exists()] \
        + ([] if key.kind == AUGMENTED or row.any() else ["runs.csv row"])
    differs = config_differences(run_dir, prof, key.arm, key.fold_kind, fold=key.fold, seed=key.seed,
                                 test_copies=key.test_copies(prof.ladder_test_copies), partition=key.partition)
    if (run_dir / "last.pt").exists():
        trained = (run_dir / "result.json").stat().st_mtime
        if missing or differs or any(p.stat().st_mtime < trained for p in made):
            return None
    elif missing or differs:
        raise BcdetError(f"{run_dir} holds a finished run without its weights, and {out} "
                         + (f"lacks its {', '.join(missing)}" if missing else f"was made with other settings ({', '.join(differs)})")
                         + ": the study cannot use its record. Delete that run folder to train it again.")
    if key.kind == AUGMENTED:
        info = json.loads((run_dir / "result.json").read_text())
        return {**key_columns(key), "wall_time_s": info["wall_time_s"], "run": run_dir.name}
    return recorded[row].iloc[0].to_dict()


def study_run_dir(prof: Profile, key: RunKey) -> Path:
    """The run folder of one run of a study (:meth:`RunKey.run_dir`; the ladder's ``"augmented"`` runs
    are the random split's, with ``-testcopies<k>``)."""
    return key.run_dir(prof.name, prof.ladder_test_copies)


def recorded_run_dirs(profile_name: str, study: Path) -> dict[str, Path]:
    """Every run a study folder records -- in ``runs.csv``, or with a test record in ``inflation/``
    (written when a run finishes, the leakage ladder's runs that ``runs.csv`` leaves out included) --
    mapped to its run folder, with the test copies its ``design.json`` recorded."""
    names = {p.stem for p in (study / "inflation").glob("*.csv")}
    if (study / "runs.csv").exists():
        names |= set(pd.read_csv(study / "runs.csv").get("run", pd.Series(dtype=str)).dropna())
    design = json.loads((study / "design.json").read_text()) if (study / "design.json").exists() else {}
    copies = int((design.get("profile") or {}).get("ladder_test_copies") or 0)
    keys = {name: RunKey.find(name) for name in sorted(names)}
    return {name: key.run_dir(profile_name, copies) for name, key in keys.items() if key is not None}


def _write_runs(out: Path, rows: list[dict]) -> None:
    """``runs.csv``: this call's runs merged into the ones already recorded (same key replaced); the
    ladder's ``augmented`` runs are not study runs and stay out of it."""
    path = out / "runs.csv"
    new = pd.DataFrame([r for r in rows if r["kind"] != AUGMENTED], columns=RUN_COLUMNS)
    key = list(KEY_COLUMNS)
    if path.exists():
        old = with_partition(pd.read_csv(path))
        if len(new):
            merged = old.merge(new[key], on=key, how="left", indicator=True)
            old = old[(merged["_merge"] == "left_only").to_numpy()]
        new = pd.concat([old, new], ignore_index=True) if len(new) else old
    write_atomic(path, lambda tmp: new.sort_values(key).to_csv(tmp, index=False))
