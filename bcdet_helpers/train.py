"""Training: the paper's optimizer switching as data, and one short fit loop.

Taught in notebook 04. The paper (Achyuthanwesh et al.) trained ResNet9 with batch 128 for 50
epochs "changing the optimizers between Adam and SGD simultaneously with the change in learning
rates". We write that as a list of :class:`~bcdet_helpers.profiles.Phase` (``profiles.schedule``);
:func:`fit` walks the phases and creates a *new* optimizer where the optimizer changes (Adam's
moment estimates and SGD's momentum buffer do not survive a switch -- they belong to the old
optimizer); where only the rate steps down, the optimizer carries on with the new rate
(:func:`next_optimizer`).

:func:`fit` is the loop a student writes in notebook 04, step for step under the same names --
``phase_of_epochs``, ``next_optimizer`` and ``make_scheduler`` where a phase starts,
:func:`train_epoch` (forward, loss, backward, step), :func:`validate` -- plus its extras as
:class:`~bcdet_helpers.callbacks.Callback` objects called at a few fixed events (checkpoints,
progress, weight averaging; ``fit(..., callbacks=[...])`` adds more). Why it is fast and exact:

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

Run folders (``train_run``, ``load_run``) live in :mod:`bcdet_helpers.runs`, checkpoints in
:mod:`bcdet_helpers.checkpoints`, the device choice in :mod:`bcdet_helpers.device`, ``bcdet train`` in
:mod:`bcdet_helpers.research.commands`; this module does not re-export them.

Over 350 lines on purpose: the phases and the loop notebook 04 teaches stay in one file, so a student
reads :func:`fit` beside every helper it names.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from . import batches as data_path  # MEMORY_FORMAT is read when fit runs (benchmarks/throughput.py flips it)
from .batches import Batches, Precision
from .callbacks import HISTORY_COLUMNS, BestWeights, Callback, Checkpointer, Progress, WeightAverage
from .device import choose_device, keep_freed_memory
from .losses import class_counts, training_loss
from .metrics import macro_f1_from_confusion
from .profiles import DEFAULTS, Phase
from .profiles import schedule as schedule_phases

__all__ = [
    "FitResult", "Loop", "fit", "train_epoch", "validate", "phase_table", "phase_stability", "phase_of_epochs",
    "make_optimizer", "next_optimizer", "make_scheduler",
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
def phase_table(arms=("constant", "decay", "switching", "onecycle"), epochs: int = DEFAULTS.epochs,
                profile=None) -> pd.DataFrame:
    """The phases of one or more arms as a table (what notebook 04 shows).

    ``arms`` is a name, a list of names, or a ``{name: [Phase, ...]}`` dict; with ``profile`` the
    arms use that profile's tuned values (``profiles.TUNED``).
    """
    if isinstance(arms, str):
        arms = [arms]
    if not isinstance(arms, dict):
        arms = {name: schedule_phases(name, epochs, profile) for name in arms}
    rows = []
    for name, phases in arms.items():
        start = 1
        for i, p in enumerate(phases):
            rows.append({
                "schedule": name,  # the arm; the column keeps its recorded name (results/*/metrics.json)
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
    """A new optimizer of the phase's kind with the phase's numbers (no running averages yet)."""
    if phase.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=phase.lr, weight_decay=phase.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=phase.lr, momentum=phase.momentum, weight_decay=phase.weight_decay
    )


def next_optimizer(phase: Phase, previous: Phase | None, optimizer, model):
    """The optimizer ``phase`` starts with -- the paper's whole method (exercise 04.2 has a student write
    it). A *new* one when the optimizer changes (the switch: Adam's moments and SGD's momentum belong to
    the old optimizer) or the phase asks for a fresh start (``restart``: the matched arm's Adam where
    switching starts SGD); otherwise the same one, its running averages kept, at the phase's rate and
    weight decay (a step of the rate, as in ``decay``)."""
    if optimizer is None or previous is None or previous.optimizer != phase.optimizer or phase.restart:
        return make_optimizer(phase, model)
    for group in optimizer.param_groups:
        group["lr"], group["weight_decay"] = phase.lr, phase.weight_decay
    return optimizer


def make_scheduler(phase: Phase, optimizer, steps_per_epoch: int):
    """A one-cycle rate for one-cycle phases; linear warm-up (if any) for the others. It starts from the
    optimizer's rate now, also for an optimizer carried over from the phase before (an earlier scheduler's
    ``initial_lr`` would otherwise bring back the old phase's rate)."""
    for group in optimizer.param_groups:
        group.pop("initial_lr", None)
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
@dataclass
class Loop:
    """The run in progress: what :func:`fit` keeps and hands every callback event (fastai's ``Learner``, our
    size). A callback reads what it needs and writes only what it owns: the ``Checkpointer`` what it
    restores (``start``, ``history``, ``best``, ``wall_before``, ``restored``), ``WeightAverage`` ``averaged``."""

    model: torch.nn.Module
    batches: Batches
    precision: Precision
    phases: list[Phase]
    seed: int
    epochs: int  # of the whole run, every phase
    callbacks: list[Callback] = field(default_factory=list)
    start: int = 0  # epochs finished before this call (a resumed run)
    optimizer: torch.optim.Optimizer | None = None
    scheduler: object = None  # the phase's rate schedule (warm-up, one-cycle), or None
    history: list[dict] = field(default_factory=list)  # one row per finished epoch (HISTORY_COLUMNS)
    best: BestWeights = field(default_factory=BestWeights)
    restored: dict | None = None  # the checkpoint this call resumed from: optimizer, scheduler, callbacks' states
    wall_before: float = 0.0  # seconds of training in earlier (resumed) calls
    started: float = field(default_factory=time.perf_counter)
    mid_epoch: bool = False  # the model has moved on from the history's last row: no checkpoint of it now
    ctrl_c: bool = False
    interrupted: bool = False  # set before after_fit: the run does not have all its epochs
    averaged: dict | None = None  # validate()'s numbers for averaged weights (WeightAverage)

    @property
    def epoch(self) -> int:
        """The (0-based) epoch in progress: as many as have finished."""
        return len(self.history)

    def wall(self) -> float:
        """Seconds of training, summed over resumed pieces."""
        return self.wall_before + time.perf_counter() - self.started

    def validate(self) -> dict:
        return validate(self.model, self.batches, self.precision)

    def event(self, name: str, *args) -> None:
        """Event ``name`` of every callback, in list order."""
        for cb in self.callbacks:
            getattr(cb, name)(self, *args)


def fit(model: torch.nn.Module, data, phases: list[Phase], *, batch_size: int, seed: int, device="auto",
        augment=True, run_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
        stop_after: int | None = None, callbacks: Sequence[Callback] = (),
        loss_weighting: str = DEFAULTS.loss_weighting, logit_adjust_tau: float = DEFAULTS.logit_adjust_tau,
        swa_epochs: int = DEFAULTS.swa_epochs) -> FitResult:
    """Train ``model`` on ``data`` (:class:`~bcdet_helpers.data.SplitData`) through ``phases``,
    validating after every epoch; ``best_state`` holds the best-by-validation weights. ``augment``:
    True (the defaults), False, or a profile's ``augmentation`` (its numbers; ``train_run`` passes it).

    ``loss_weighting`` / ``logit_adjust_tau``: the training loss (:func:`~bcdet_helpers.losses.training_loss`:
    plain, class-weighted or logit-adjusted, from the training part's class counts); validation loss stays
    plain cross-entropy.

    The extras are :mod:`~bcdet_helpers.callbacks`, added by the arguments that ask for them, then
    ``callbacks`` (the study's ``TestRecord``): ``run_dir`` a ``Checkpointer`` (a checkpoint and
    ``history.csv`` every epoch; ``resume=True`` continues from them), ``swa_epochs > 0`` a
    ``WeightAverage`` (the model ends with the mean weights of the last ``swa_epochs`` epochs,
    ``FitResult.averaged`` their validation numbers; the history keeps the epochs' own), ``progress`` a
    ``Progress``. ``stop_after=k`` stops after ``k`` epochs of this call (as if interrupted). Ctrl-C returns
    ``interrupted=True`` with the last finished epoch checkpointed (resume, or use ``best_state``: the
    model is mid-epoch).
    """
    device, epoch_phase = choose_device(device), phase_of_epochs(phases)
    batches, precision = Batches(data, batch_size, seed, device, augment), Precision(device)
    model.to(device, memory_format=data_path.MEMORY_FORMAT)  # channels_last, CPU too (issue #17)
    if device.type == "cpu":
        keep_freed_memory()  # no page faults for the big activations (issue #17)
    asked = [Checkpointer(run_dir, resume)] if run_dir is not None else []  # first: the others see what it restores
    asked += [WeightAverage(swa_epochs)] if swa_epochs else []
    asked += [Progress(Path(run_dir).name if run_dir is not None else "fit")] if progress else []
    loop = Loop(model, batches, precision, list(phases), seed, len(epoch_phase), [*asked, *callbacks])
    loop.event("before_fit")
    if loop.start == 0:
        torch.manual_seed(seed)  # dropout draws from the global RNG
    loss_fn = training_loss(loss_weighting, class_counts(batches.y, batches.classes), logit_adjust_tau)
    stop, finished = loop.epochs if stop_after is None else min(loop.epochs, loop.start + stop_after), False
    try:
        for epoch in range(loop.start, stop):
            p, phase = epoch_phase[epoch], phases[epoch_phase[epoch]]
            loop.mid_epoch = True
            if epoch == loop.start:  # this call's first epoch: a fresh optimizer, or the checkpoint's
                loop.optimizer, loop.scheduler = _first_optimizer(loop, epoch_phase)
            elif p != epoch_phase[epoch - 1]:  # a phase starts: the switch (or a step of the rate)
                loop.optimizer = next_optimizer(phase, phases[epoch_phase[epoch - 1]], loop.optimizer, model)
                loop.scheduler = make_scheduler(phase, loop.optimizer, batches.steps)
            t0 = time.perf_counter()
            trained = train_epoch(model, batches, loop.optimizer, loop.scheduler, loss_fn, precision)
            loop.event("after_train")
            row = {"epoch": epoch + 1, "phase": p, "optimizer": phase.optimizer, **trained,
                   **validate(model, batches, precision), "seconds": time.perf_counter() - t0}
            loop.history.append(row)
            loop.best.update(row, model)
            loop.mid_epoch = False
            loop.event("after_epoch", row)
        finished = True
    except KeyboardInterrupt:
        loop.ctrl_c = True
    finally:
        loop.interrupted = not finished or len(loop.history) < loop.epochs
        loop.event("after_fit")
    return FitResult(history=pd.DataFrame(loop.history, columns=HISTORY_COLUMNS), best_state=loop.best.state,
                     best_epoch=loop.best.epoch, device=str(device), wall_time=loop.wall(),
                     interrupted=loop.interrupted, run_dir=Path(run_dir) if run_dir is not None else None,
                     averaged=loop.averaged)


def train_epoch(model: torch.nn.Module, batches: Batches, optimizer, scheduler=None, loss_fn=F.cross_entropy,
                precision: Precision | None = None) -> dict:
    """One pass over the training batches -- forward, loss, backward, step, then the rate's next step --
    as notebook 04 writes it; returns the rate of the last update and the epoch's training loss and
    accuracy. Loss and correct counts are summed on the device and read once at the end (no host sync
    per step); ``precision`` adds mixed precision on a GPU (float32 elsewhere)."""
    precision = precision or Precision(batches.device)
    model.train()
    loss_sum = torch.zeros((), device=batches.device)
    correct = torch.zeros((), device=batches.device, dtype=torch.long)
    for xb, yb in batches.train():
        with precision.autocast():
            logits = model(xb)
            loss = loss_fn(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        precision.backward_step(loss, optimizer)
        lr = optimizer.param_groups[0]["lr"]  # the rate of this update
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach().float() * len(yb)
        correct += (logits.detach().argmax(1) == yb).sum()
    n = len(batches.y)
    return {"lr": float(lr), "train_loss": float(loss_sum) / n, "train_acc": int(correct) / n}


def _first_optimizer(loop: Loop, epoch_phase: list[int]):
    """The optimizer and rate schedule of this call's first epoch: fresh, or as the checkpoint left them
    (mid-phase exactly as saved; at a rate step carried on by :func:`next_optimizer`, as uninterrupted)."""
    phases, model, saved = loop.phases, loop.model, (loop.restored or {}).get("optimizer")
    now = epoch_phase[loop.start]
    before = epoch_phase[loop.start - 1] if loop.start > 0 else None
    optimizer = make_optimizer(phases[now], model)
    if saved is not None and before not in (None, now) \
            and phases[before].optimizer == phases[now].optimizer:  # resumed right at a rate step
        optimizer.load_state_dict(saved)
        optimizer = next_optimizer(phases[now], phases[before], optimizer, model)
    scheduler = make_scheduler(phases[now], optimizer, loop.batches.steps)
    if saved is not None and before == now:  # mid-phase: optimizer and rate exactly as saved
        optimizer.load_state_dict(saved)  # after the scheduler, which resets rate and momentum
        if scheduler is not None and loop.restored.get("scheduler") is not None:
            scheduler.load_state_dict(loop.restored["scheduler"])
    return optimizer, scheduler


@torch.inference_mode()
def validate(model, batches: Batches, precision: Precision | None = None) -> dict:
    """Validation loss, accuracy and macro-F1 of ``model`` (one sync, at the end). The loss is plain
    cross-entropy of the plain logits whatever the run trains with (:mod:`~bcdet_helpers.losses`), so
    validation losses compare across runs."""
    precision = precision or Precision(batches.device)
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
