"""Run folders: one reproducible training run per folder, trained once and loaded after that.

``runs/<profile>/<arm>-<kind>-fold<fold>-seed<seed>/`` holds ``config.json`` (everything that
shaped the run, and the commit it started from), ``history.csv``, ``checkpoint.pt`` (every epoch),
``best.pt`` / ``last.pt`` (best-by-validation and final weights, with what prediction needs) and
``result.json`` (summary, per-phase stability, environment). A finished folder is loaded, never
retrained, as long as the fields that shape a run (``profiles.RUN_FIELDS``, arm, phases, seed,
kind, fold) are unchanged -- notebook 05 and the study reuse notebook 04's runs that way. One process
at a time works in a folder (:func:`run_lock`).
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from . import train
from .callbacks import TEST_RECORD, TestRecord
from .checkpoints import atomic_csv, atomic_save, to_cpu
from .device import choose_device
from .errors import BcdetError
from .options import check_seed
from .paths import runs_dir
from .runkey import RunKey
from .profiles import (KINDS, RUN_FIELDS, Profile, get_profile, partition_profile, recorded_phases,
                       recorded_run_fields)
from .profiles import schedule as schedule_phases
from .runinfo import environment_info, git_commit, write_json
from .train import FitResult, phase_stability

__all__ = ["config_differences", "run_dir_for", "run_lock", "train_run", "load_run"]

LOCK = ".lock"  # in a run folder while a process trains in it: the holder's PID and host


def run_dir_for(profile_name: str, arm: str, kind: str = "grouped", *, fold: int = 0, seed: int = 0,
                test_copies: int = 0, partition: int = 0) -> Path:
    """``runs/<profile>/<arm>-<kind>-fold<fold>-seed<seed>``: where :func:`train_run` keeps one run
    (``...-testcopies<k>`` for the leakage ladder's runs that train on copies of their test images); the
    name is :class:`~bcdet_helpers.runkey.RunKey`'s. ``fold`` and ``seed`` are keywords: a call cannot
    swap them."""
    return RunKey.of_run(arm, kind, fold, seed, test_copies, partition).run_dir(profile_name, test_copies)


def _run_config(prof: Profile, arm: str, phases, kind: str, fold: int, seed: int, test_copies: int = 0,
                partition: int = 0) -> dict:
    # the record's keys predate the words arm and kind (issue #32): "schedule" is the arm, "split" the kind
    config = {
        "profile": prof.to_dict(),
        "schedule": arm,
        "phases": [asdict(p) for p in phases],
        "seed": seed,
        "split": kind,
        "fold": fold,
    }
    # fields only a ladder or a second-partition run has: older configs stay equal
    return {**config, **({"test_copies": test_copies} if test_copies else {}),
            **({"partition": partition} if partition else {})}


def _same_config(a: dict, b: dict) -> list[str]:
    """What differs between two run configs: the profile fields that shape a run
    (:data:`~bcdet_helpers.profiles.RUN_FIELDS`; a field an older config predates counts with the
    value every older run used, :func:`~bcdet_helpers.profiles.recorded_run_fields`), arm (``schedule``),
    phases, seed, kind (``split``), fold, test copies. The device does not count, and JSON round-trips tuples to lists."""
    norm = lambda v: json.loads(json.dumps(v, default=str))  # noqa: E731
    pa, pb = recorded_run_fields(a.get("profile") or {}), recorded_run_fields(b.get("profile") or {})
    differs = [f"profile.{f}" for f in RUN_FIELDS if pa[f] != pb[f]]
    a, b = ({**c, "phases": recorded_phases(c.get("phases"))} for c in (a, b))  # fields older phases predate
    return differs + [k for k in ("schedule", "phases", "seed", "split", "fold") if norm(a.get(k)) != norm(b.get(k))] \
        + [k for k in ("test_copies", "partition") if a.get(k, 0) != b.get(k, 0)]


def config_differences(run_dir: str | Path, profile: str | Profile, arm: str, kind: str, *, fold: int, seed: int,
                       test_copies: int = 0, partition: int = 0) -> list[str]:
    """What differs (see :func:`_same_config`) between the run recorded in ``run_dir/config.json`` and
    the one these settings would train with the arm's default (or tuned) values: ``[]`` when it is
    that run."""
    prof = partition_profile(get_profile(profile), partition)
    config = _run_config(prof, arm, schedule_phases(arm, prof.epochs, prof), kind, fold, seed, test_copies, partition)
    return _same_config(json.loads((Path(run_dir) / "config.json").read_text()), config)


def train_run(
    profile: str | Profile,
    arm: str = "switching",
    *,
    kind: str = "grouped",
    fold: int = 0,
    seed: int = 0,
    epochs: int | None = None,
    device="auto",
    resume: bool = False,
    progress: bool = True,
    params: dict | None = None,
    run_dir: str | Path | None = None,
    record_test: bool = False,
    test_copies: int = 0,
    partition: int = 0,
) -> FitResult:
    """One reproducible training run in its own folder (see :func:`run_dir_for`).

    Fold ``fold`` of the folds of kind ``kind`` is the test part (never looked at here); ``params``
    overrides the arm's numbers (:func:`~bcdet_helpers.profiles.arm_params`; ``bcdet tune`` uses
    it, with its own ``run_dir``). ``record_test`` (the study only) also keeps the test fold's
    predictions after every epoch (:class:`~bcdet_helpers.callbacks.TestRecord`): a record for
    measuring what choosing an epoch on test would inflate, never read by training.
    ``test_copies`` (the leakage ladder only) adds that many augmented copies of every test image
    to the training part (:meth:`~bcdet_helpers.data.SplitData.with_test_copies`): the leak of
    augmenting before splitting. Such a run lives in its own folder and is never a study result.
    ``partition`` (the study's second fold partition and on) draws the folds with ``fold_seed +
    partition`` (:func:`~bcdet_helpers.profiles.partition_profile`), in a folder of its own.

    Writes ``config.json``, ``history.csv``, ``checkpoint.pt`` (every epoch), ``best.pt`` (the
    best-by-validation weights + what :func:`load_checkpoint` needs), ``last.pt`` (the final
    weights, same format) and ``result.json``. A folder
    that already holds the finished run is loaded, not retrained -- notebook 05 reuses notebook
    04's runs that way. A folder with an unfinished run needs ``resume=True`` (or deleting).
    """
    if kind not in KINDS:
        raise BcdetError(f"Unknown kind {kind!r}. Choose 'grouped' (leak-free) or 'random' (paper-like).")
    if epochs is not None and epochs < 1:
        raise BcdetError(f"--epochs must be at least 1, got {epochs}.")
    check_seed(seed, "seed")
    try:
        prof = partition_profile(get_profile(profile, epochs=epochs), partition)
        phases = schedule_phases(arm, prof.epochs, prof, params)
    except ValueError as exc:  # unknown profile / arm: the message lists the valid names
        raise BcdetError(str(exc)) from None
    if not isinstance(fold, int) or not 0 <= fold < prof.folds:
        raise BcdetError(f"--fold must be 0..{prof.folds - 1} (profile {prof.name!r} has {prof.folds} folds), got {fold!r}.")
    if not isinstance(test_copies, int) or test_copies < 0:
        raise BcdetError(f"test_copies must be a whole number >= 0, got {test_copies!r}.")
    if not isinstance(partition, int) or partition < 0:
        raise BcdetError(f"partition must be a whole number >= 0, got {partition!r}.")
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(prof.name, arm, kind, fold=fold, seed=seed,
                                                                    test_copies=test_copies, partition=partition)
    config = _run_config(prof, arm, phases, kind, fold, seed, test_copies, partition)
    go = partial(_train_or_load, prof, arm, phases, config, run_dir, kind=kind, fold=fold, seed=seed,
                 test_copies=test_copies, device=device, resume=resume, progress=progress, record_test=record_test)
    if (run_dir / "result.json").exists() and (run_dir / "config.json").exists():
        return go()  # finished: only read (result.json is written last), so readers need no lock
    fresh = not run_dir.exists()
    try:
        with run_lock(run_dir):
            return go()
    finally:
        if fresh:
            _drop_if_nothing_trained(run_dir)


def _drop_if_nothing_trained(run_dir: Path) -> None:
    """Remove a run folder this call created when it holds nothing worth resuming -- only its lock and
    config (a start that failed, or a Ctrl-C before the first epoch ended) -- so no half-made run is left
    behind to be refused as "unfinished" next time."""
    import shutil

    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOCK, "config.json"}:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def run_lock(run_dir: Path):
    """Hold ``<run_dir>/.lock`` while this process works in the run folder; a second process is refused
    with the holder's PID (issue #27: two ``bcdet train`` in one folder overwrote each other's
    checkpoints, and one crashed on the other's ``checkpoint.pt.tmp``). An OS lock (``flock``), so a
    crashed or killed holder releases it, and a resumed run simply takes it again. Where there is no
    ``fcntl`` (Windows) or the file system has no locks, runs go unlocked, as before."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise BcdetError(f"{run_dir} is in use: another process (PID {holder}) is training in it. Wait for it to "
                             "end (a finished run is then loaded, an interrupted one resumed with --resume), or stop "
                             "it: two processes in one run folder overwrite each other's checkpoints.") from None
        except OSError:  # a file system without locks: as before this lock existed
            pass
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _train_or_load(prof: Profile, arm: str, phases, config: dict, run_dir: Path, *, kind: str, fold: int, seed: int,
                   test_copies: int, device, resume: bool, progress: bool, record_test: bool) -> FitResult:
    """The rest of :func:`train_run`: load the finished run in ``run_dir``, or train it (holding its lock)."""
    recorded = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    if recorded:
        differs = _same_config(recorded, config)
        if differs:
            raise BcdetError(
                f"{run_dir} holds a run with different settings ({', '.join(differs)} differ, e.g. another "
                f"--epochs). Delete that folder to train with the new settings, or set BCDET_RUNS to another folder."
            )
        if (run_dir / "result.json").exists():
            if progress:
                print(f"Loaded the finished run {run_dir} (delete the folder to train it again).")
            return load_run(run_dir)
        if not resume:
            raise BcdetError(
                f"{run_dir} holds an unfinished run. Pass resume=True (bcdet train ... --resume) to continue "
                "it, or delete the folder to start over."
            )

    from .data import load_split_data
    from .model import build_model

    dev = choose_device(device)
    data = load_split_data(prof, kind=kind, seed=seed, fold=fold)
    if test_copies:
        data = data.with_test_copies(test_copies, prof.augment_params, seed=seed)
    torch.manual_seed(seed)
    model = build_model(prof)
    run_dir.mkdir(parents=True, exist_ok=True)
    # the commit the run *started* from (result.json records the one at its end; a resumed run keeps
    # its first start), so a code change during a long run shows up as two different commits
    started = recorded.get("started") or {"git_commit": git_commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(run_dir / "config.json", {**config, "device": str(dev), "started": started})

    record = [TestRecord(run_dir / TEST_RECORD, data)] if record_test else []
    res = train.fit(model, data, phases, batch_size=prof.batch_size, seed=seed, device=dev, augment=prof.augmentation,
              run_dir=run_dir, resume=resume, progress=progress, callbacks=record,
              loss_weighting=prof.loss_weighting, logit_adjust_tau=prof.logit_adjust_tau, swa_epochs=prof.swa_epochs)
    if res.interrupted:
        return res

    meta = {
        "image_size": data.image_size, "channels": data.channels, "resize": prof.resize, "width": prof.width,
        "logit_scale": prof.logit_scale,
        "mean": float(data.mean), "std": float(data.std), "classes": tuple(data.classes),
        "profile": prof.name, "schedule": arm, "split": kind, "fold": fold, "seed": seed,  # record keys: see _run_config
        "best_epoch": res.best_epoch,
    }
    atomic_save({"model": res.best_state, "meta": meta}, run_dir / "best.pt")
    # the weights at the end of training: the study's weights rule (no selection on a noisy curve)
    atomic_save({"model": to_cpu(model.state_dict()), "meta": {**meta, "epoch": len(res.history)}},
                 run_dir / "last.pt")
    atomic_csv(res.history, run_dir / "history.csv")
    best_row = res.history.set_index("epoch").loc[res.best_epoch]
    info = {
        "profile": prof.name, "schedule": arm, "split": kind, "fold": fold, "seed": seed,
        "epochs": len(res.history),
        "best_epoch": res.best_epoch,
        "best_val": {k: float(best_row[k]) for k in ("val_loss", "val_acc", "val_f1")},
        "final_val": {k: float(res.history[k].iloc[-1]) for k in ("val_loss", "val_acc", "val_f1")},
        # rows: true class, columns: predicted (``classes`` order), final weights: "does every class get
        # predicted?" is a question about the model a chapter uses, not about one number (#29)
        "final_val_confusion": _val_confusion(model, data, dev),
        "phase_stability": phase_stability(res.history, len(data.classes)),
        "wall_time_s": res.wall_time,
        "seconds_per_epoch": res.seconds_per_epoch,
        # weight averaging: last.pt holds the averaged weights, and these are their validation numbers
        **({"averaged_val": res.averaged} if res.averaged is not None else {}),
        "n_train": int((data.parts == "train").sum()), "n_val": int((data.parts == "val").sum()),
        "environment": environment_info(dev),
    }
    write_json(run_dir / "result.json", info)
    res.info = info
    return res


def _val_confusion(model, data, device) -> list[list[int]]:
    """The confusion matrix of ``model`` on ``data``'s validation images (rows true, columns predicted)."""
    from .evaluate import predict_proba
    from .metrics import confusion

    val = data.mask("val")
    proba = predict_proba(model, data.images[torch.as_tensor(val)], data.mean, data.std, device=device)
    return confusion(data.labels[torch.as_tensor(val)].numpy(), proba.argmax(1), len(data.classes)).tolist()


def load_run(run_dir: str | Path) -> FitResult:
    """A finished run's history, best weights and result.json, from its folder."""
    run_dir = Path(run_dir)
    result = run_dir / "result.json"
    if not result.exists():
        raise BcdetError(
            f"{run_dir} holds no finished run (no result.json). Train it with train_run(...) or "
            "`bcdet train` (add --resume to continue an interrupted one)."
        )
    info = json.loads(result.read_text())
    if not (run_dir / "best.pt").exists():
        raise BcdetError(
            f"{run_dir} holds a finished run's record (result.json) but not its weights (best.pt): a folder "
            "restored from a committed snapshot, or weights deleted. Delete the folder to train the run again."
        )
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    history = pd.read_csv(run_dir / "history.csv")
    return FitResult(
        history=history,
        best_state=best["model"],
        best_epoch=info["best_epoch"],
        device=info["environment"].get("device", "?"),
        wall_time=info["wall_time_s"],
        interrupted=False,
        run_dir=run_dir,
        info=info,
        averaged=info.get("averaged_val"),  # the run averaged its last epochs' weights: their validation numbers
    )
