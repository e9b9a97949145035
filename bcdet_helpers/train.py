"""Training: the paper's optimizer switching as data, and one short fit loop.

Taught in notebook 04. The paper (Achyuthanwesh et al.) trained ResNet9 with batch 128 for 50
epochs "changing the optimizers between Adam and SGD simultaneously with the change in learning
rates". We write that as a list of :class:`~bcdet_helpers.profiles.Phase` (``profiles.schedule``);
:func:`fit` walks the phases and creates a *new* optimizer where the optimizer changes (Adam's
moment estimates and SGD's momentum buffer do not survive a switch -- they belong to the old
optimizer); where only the rate steps down, the optimizer carries on with the new rate.

:func:`fit` is the loop a student writes in notebook 04 -- epochs, phases, batches, forward, loss,
backward, step, validate -- plus a few named extras at fixed points (``callbacks``: the data on
the device, mixed precision, best weights, checkpoints, progress). Why it is fast and exact:

* **The data path is free.** All images (a few MB of uint8) are moved to the device once; each
  epoch slices seeded batches out of that tensor and normalises and augments them on the device.
* **No host sync in the inner loop.** Loss and correct counts are summed as device tensors and
  read once per epoch. ``channels_last`` everywhere; bfloat16 autocast on CUDA; on a CPU, freed
  memory is kept for reuse (``device.keep_freed_memory``: no page faults every step).
* **One seed fixes everything**: the split, the initial weights (``torch.manual_seed`` before
  ``build_model``), dropout (the global RNG, seeded here) and batch order + augmentation (a
  ``torch.Generator`` seeded from the same seed). The same seed twice on a CPU gives the same
  history, number for number -- and ``resume=True`` after an interruption ends with exactly the
  weights of an uninterrupted run.

Run folders (``run_dir_for``, ``train_run``, ``load_run``) live in :mod:`bcdet_helpers.runs`,
checkpoints (``load_checkpoint``) in :mod:`bcdet_helpers.checkpoints`, the device choice
(``choose_device``) in :mod:`bcdet_helpers.device` and ``bcdet train`` in :mod:`bcdet_helpers.commands`;
import them from there -- this module does not re-export them.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from . import callbacks
from .callbacks import HISTORY_COLUMNS, Batches, Checkpointer, Precision, Progress, TrainState
from .device import choose_device, describe_device, keep_freed_memory
from .losses import class_counts, training_loss
from .metrics import macro_f1_from_confusion
from .profiles import DEFAULTS, Phase
from .profiles import schedule as schedule_phases

__all__ = [
    "FitResult", "fit", "validate", "phase_table", "phase_stability", "phase_of_epochs", "make_optimizer",
    "enter_phase", "make_scheduler",
]


@dataclass
class FitResult:
    """What a training run leaves: its per-epoch history and the best-by-validation weights."""

    history: pd.DataFrame
    best_state: dict | None  # state_dict (CPU tensors) of the best-by-validation epoch
    best_epoch: int | None
    device: str
    wall_time: float  # seconds of training, summed over resumed pieces
    interrupted: bool = False
    run_dir: Path | None = None
    info: dict = field(default_factory=dict)  # result.json of a finished run (train_run / load_run)
    # weight averaging (swa_epochs > 0): validate()'s numbers for the averaged weights the model ends with
    averaged: dict | None = None

    @property
    def best(self) -> dict:
        """The history row of the best epoch (validation metrics), as a dict."""
        if self.best_epoch is None:
            return {}
        return self.history.set_index("epoch").loc[self.best_epoch].to_dict() | {"epoch": self.best_epoch}

    @property
    def seconds_per_epoch(self) -> float:
        return float(self.history["seconds"].mean()) if len(self.history) else float("nan")


# ---------------------------------------------------------------------------------------- phases
def phase_table(schedules=("constant", "decay", "switching", "onecycle"), epochs: int = DEFAULTS.epochs,
                profile=None) -> pd.DataFrame:
    """The phases of one or more arms as a table (what notebook 04 shows).

    ``schedules`` is a name, a list of names, or a ``{name: [Phase, ...]}`` dict; with ``profile``
    the arms use that profile's tuned values (``profiles.TUNED``).
    """
    if isinstance(schedules, str):
        schedules = [schedules]
    if not isinstance(schedules, dict):
        schedules = {name: schedule_phases(name, epochs, profile) for name in schedules}
    rows = []
    for name, phases in schedules.items():
        start = 1
        for i, p in enumerate(phases):
            rows.append({
                "schedule": name,
                "phase": i,
                "epochs": f"{start}-{start + p.epochs - 1}",
                "optimizer": "Adam" if p.optimizer == "adam" else "SGD + momentum",
                "lr": p.lr,
                "lr rule": ("one-cycle (peak lr)" if p.scheduler == "onecycle"
                            else f"warm-up {p.warmup:g} ep., then constant" if p.warmup else "constant"),
                "momentum": p.momentum if p.optimizer == "sgd" else None,
                "weight_decay": p.weight_decay,
            })
            start += p.epochs
    return pd.DataFrame(rows)


def phase_of_epochs(phases: list[Phase]) -> list[int]:
    """Phase index of each (0-based) epoch."""
    out = []
    for i, p in enumerate(phases):
        out += [i] * p.epochs
    return out


def make_optimizer(phase: Phase, model: torch.nn.Module) -> torch.optim.Optimizer:
    if phase.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=phase.lr, weight_decay=phase.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=phase.lr, momentum=phase.momentum, weight_decay=phase.weight_decay
    )


def enter_phase(phase: Phase, previous: Phase | None, optimizer, model):
    """The optimizer for ``phase``: a *new* one when the optimizer changes (the paper's switch --
    Adam's moments and SGD's momentum belong to the old optimizer) or the phase asks for a fresh start
    (``restart``: the matched arm's Adam where switching starts SGD), otherwise the same one with the
    phase's rate and weight decay (a step of the rate, as in ``decay``)."""
    if optimizer is None or previous is None or previous.optimizer != phase.optimizer or phase.restart:
        return make_optimizer(phase, model)
    for group in optimizer.param_groups:
        group["lr"], group["weight_decay"] = phase.lr, phase.weight_decay
        group.pop("initial_lr", None)  # else a new scheduler would start from the old phase's rate
    return optimizer


def make_scheduler(phase: Phase, optimizer, steps_per_epoch: int):
    """A one-cycle rate for one-cycle phases; linear warm-up (if any) for the others."""
    total = phase.epochs * steps_per_epoch
    if phase.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=phase.lr, total_steps=total,
                                                   pct_start=phase.pct_start)
    warm = min(total, math.ceil(phase.warmup * steps_per_epoch))
    if warm <= 0:
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (warm + 1)))


def phase_stability(history: pd.DataFrame, classes: int = 3) -> list[dict]:
    """Per phase: the loss it was entered with, its peak training loss, and their ratio.

    The entry loss of the first phase is ln(classes) (what a fresh, well-conditioned model scores);
    of a later phase, the last epoch's training loss before it. A ratio well above 1 means the
    phase's start undid training (a rate too large for a fresh optimizer); issue #13 asks for
    <= 2 in every phase of a tuned arm.
    """
    rows, entry = [], math.log(classes)
    for phase, g in history.groupby("phase", sort=True):
        peak = float(g["train_loss"].max())
        rows.append({"phase": int(phase), "optimizer": str(g["optimizer"].iloc[0]),
                     "entry_loss": entry, "peak_loss": peak, "ratio": peak / entry})
        entry = float(g["train_loss"].iloc[-1])
    return rows


# ------------------------------------------------------------------------------------------ fit
def fit(model: torch.nn.Module, data, phases: list[Phase], *, batch_size: int, seed: int, device="auto",
        augment=True, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
        stop_after: int | None = None, on_epoch_end=None, loss_weighting: str = DEFAULTS.loss_weighting,
        logit_adjust_tau: float = DEFAULTS.logit_adjust_tau, swa_epochs: int = DEFAULTS.swa_epochs) -> FitResult:
    """Train ``model`` on ``data`` (:class:`~bcdet_helpers.data.SplitData`) through ``phases``,
    validating after every epoch; ``best_state`` holds the best-by-validation weights. ``augment``:
    True (the defaults), False, or a profile's ``augmentation`` (its numbers; ``train_run`` passes it).

    ``loss_weighting`` / ``logit_adjust_tau``: the training loss (:func:`~bcdet_helpers.losses.training_loss`:
    plain, class-weighted or logit-adjusted, from the training part's class counts); validation loss stays
    plain cross-entropy. ``swa_epochs > 0``: the model ends with the mean of the weights of the last
    ``swa_epochs`` epochs (:class:`~bcdet_helpers.callbacks.WeightAverage`), ``FitResult.averaged`` its
    validation numbers (the history's rows are the epochs' own weights).

    With ``run_dir``, a checkpoint and ``history.csv`` are written every epoch and ``resume=True``
    continues from them. ``stop_after=k`` stops after ``k`` epochs of this call (as if interrupted);
    ``on_epoch_end(row)`` runs after each epoch. Ctrl-C returns ``interrupted=True`` with the last
    finished epoch checkpointed (resume, or use ``best_state``: the model is mid-epoch).
    """
    device, epoch_phase = choose_device(device), phase_of_epochs(phases)
    batches, precision = Batches(data, batch_size, seed, device, augment), Precision(device)
    model.to(device, memory_format=callbacks.MEMORY_FORMAT)  # channels_last, CPU too (issue #17)
    if device.type == "cpu":
        keep_freed_memory()  # no page faults for the big activations (issue #17)
    ckpt = Checkpointer(run_dir, phases, seed, batch_size)
    st = _start(model, ckpt, batches, precision, phases, epoch_phase, seed, resume)
    criterion = training_loss(loss_weighting, class_counts(batches.y, batches.classes), logit_adjust_tau)
    if swa_epochs:
        st.average = callbacks.WeightAverage(model, swa_epochs, len(epoch_phase))
        if st.average_state is not None:
            st.average.load_state_dict(st.average_state)
    start, t_call, interrupted, consistent = st.epoch, time.perf_counter(), False, True
    bar = Progress(len(epoch_phase), start, ckpt.run_dir.name if ckpt.run_dir else "fit", progress,
                   f"Training on {describe_device(device)}: {len(batches.y)} train / {len(batches.y_val)} val "
                   f"images, batch {batch_size}, {len(epoch_phase)} epochs in {len(phases)} phase(s)")
    try:
        for epoch in range(start, len(epoch_phase) if stop_after is None else min(len(epoch_phase), start + stop_after)):
            p, phase = epoch_phase[epoch], phases[epoch_phase[epoch]]
            if epoch > start and p != epoch_phase[epoch - 1]:  # a phase boundary: maybe a new optimizer
                st.optimizer = enter_phase(phase, phases[epoch_phase[epoch - 1]], st.optimizer, model)
                st.scheduler = make_scheduler(phase, st.optimizer, batches.steps)
            t0, consistent = time.perf_counter(), False
            model.train()
            loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)
            for xb, yb in batches.train():
                with precision.autocast():
                    logits = model(xb)
                    loss = criterion(logits, yb)
                st.optimizer.zero_grad(set_to_none=True)
                precision.backward_step(loss, st.optimizer)
                lr_used = st.optimizer.param_groups[0]["lr"]  # the rate of this update
                if st.scheduler is not None:
                    st.scheduler.step()
                loss_sum += loss.detach().float() * len(yb)
                correct += (logits.detach().argmax(1) == yb).sum()
            row = {"epoch": epoch + 1, "phase": p, "optimizer": phase.optimizer, "lr": float(lr_used),
                   "train_loss": float(loss_sum) / len(batches.y), "train_acc": int(correct) / len(batches.y),
                   **validate(model, batches, precision), "seconds": time.perf_counter() - t0}
            st.history.append(row)
            st.best.update(row, model)
            if st.average is not None:
                st.average.update(epoch, model)
            consistent = True
            ckpt.save(st, model, batches.gen, precision, st.wall_before + time.perf_counter() - t_call)
            bar.update(row)
            if on_epoch_end is not None:
                on_epoch_end(row)
    except KeyboardInterrupt:
        interrupted = bar.interrupted()
    finally:
        bar.close()
        ckpt.close(st, model, batches.gen, precision, st.wall_before + time.perf_counter() - t_call, consistent)
    interrupted = interrupted or len(st.history) < len(epoch_phase)
    averaged = None
    if st.average is not None and not interrupted:  # after the checkpoint: it keeps the last epoch's own weights
        st.average.apply(model, batches)
        averaged = validate(model, batches, precision)
    return FitResult(history=pd.DataFrame(st.history, columns=HISTORY_COLUMNS), best_state=st.best.state,
                     best_epoch=st.best.epoch, device=str(device), wall_time=st.wall_before + time.perf_counter() - t_call,
                     interrupted=interrupted, run_dir=ckpt.run_dir, averaged=averaged)


def _start(model, ckpt: Checkpointer, batches: Batches, precision: Precision, phases, epoch_phase, seed: int,
           resume: bool) -> TrainState:
    """The state training starts from: the checkpoint's (``resume``) or a fresh one."""
    st = (ckpt.restore(model, batches.gen, precision) if resume else None) or TrainState()
    if st.epoch == 0:
        torch.manual_seed(seed)  # dropout draws from the global RNG
    _resume_optimizer(st, phases, epoch_phase, model, batches.steps)
    return st


def _resume_optimizer(st: TrainState, phases, epoch_phase, model, steps: int) -> None:
    """The optimizer and rate schedule the next epoch (``st.epoch``) starts with: fresh, carried on
    from the checkpoint mid-phase, or carried across a rate step (same optimizer, new rate)."""
    if st.epoch >= len(epoch_phase):
        return
    p_now = epoch_phase[st.epoch]
    p_before = epoch_phase[st.epoch - 1] if st.epoch > 0 else None
    st.optimizer = make_optimizer(phases[p_now], model)
    if st.opt_state is not None and p_before not in (None, p_now) \
            and phases[p_before].optimizer == phases[p_now].optimizer:  # resumed right at a rate step
        st.optimizer.load_state_dict(st.opt_state)
        st.optimizer = enter_phase(phases[p_now], phases[p_before], st.optimizer, model)
    st.scheduler = make_scheduler(phases[p_now], st.optimizer, steps)
    if st.opt_state is not None and p_before == p_now:  # mid-phase: optimizer and rate exactly as saved
        st.optimizer.load_state_dict(st.opt_state)  # after the scheduler, which resets rate and momentum
        if st.scheduler is not None and st.sched_state is not None:
            st.scheduler.load_state_dict(st.sched_state)


@torch.inference_mode()
def validate(model, batches: Batches, precision: Precision) -> dict:
    """Validation loss, accuracy and macro-F1 of ``model`` (one sync, at the end). The loss is plain
    cross-entropy of the plain logits whatever the run trains with (:mod:`~bcdet_helpers.losses`), so
    validation losses compare across runs."""
    model.eval()
    k = batches.classes
    loss = torch.zeros((), device=batches.device)
    conf = torch.zeros(k * k, device=batches.device, dtype=torch.long)
    for xb, yb in batches.val():
        with precision.autocast():
            logits = model(xb)
        loss += F.cross_entropy(logits.float(), yb, reduction="sum")
        conf += torch.bincount(yb * k + logits.argmax(1), minlength=k * k)
    conf = conf.view(k, k).cpu()
    n = len(batches.y_val)
    return {"val_loss": float(loss) / n, "val_acc": float(conf.diag().sum()) / n,
            "val_f1": macro_f1_from_confusion(conf.numpy())}
