"""The extras :func:`~bcdet_helpers.train.fit` calls at fixed points of its loop.

The loop itself (notebook 04 writes it by hand) is: for each epoch, maybe switch the optimizer,
train on the batches, validate. Everything else a long, real run needs is one small object here,
called at the same few points -- the callback pattern of fastai, kept to what we use:

* :class:`Batches`      the data on the device once; each epoch a seeded order and augmentation
* :class:`Precision`    bfloat16 autocast (fp16 + GradScaler on older GPUs) on CUDA, float32 elsewhere
* :class:`BestWeights`  the best-by-validation weights (macro-F1, then lower loss)
* :class:`Checkpointer` a complete checkpoint + history.csv after every epoch; resume from it
* :class:`Progress`     one bar (Jupyter/terminal) or one line per epoch (logs)
* :class:`WeightAverage` the mean of the last epochs' weights (SWA; ``Profile.swa_epochs``, issue #31)
* :class:`TestRecord`   the study only: the test fold's predictions after every epoch, a record of
                        what a tutorial would pick its epoch from (the leakage ladder, issue #19)
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .checkpoints import CHECKPOINT_VERSION, BackgroundSaver, atomic_csv, atomic_save, load_training_checkpoint, to_cpu
from .data.preprocess import standardize, to_unit
from .errors import BcdetError

# channels_last on every device: on a 2-core CPU a width-16 ResNet9 step took 579 ms vs 803 ms
# contiguous (issue #17); on CUDA it is what the tensor cores want. benchmarks/throughput.py flips it
# to measure the difference.
MEMORY_FORMAT = torch.channels_last

HISTORY_COLUMNS = [
    "epoch", "phase", "optimizer", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "seconds",
]


class Batches:
    """All training and validation images on ``device`` once (a few MB of uint8).

    :meth:`train` yields one epoch of normalised (and augmented) batches in a seeded random order;
    the order and the augmentation draw from one CPU ``torch.Generator`` seeded with ``seed``, so a
    seed gives the same batches on any device. The last, partial batch is kept (``drop_last=False``):
    with ~540 training images and batch 128, dropping it would throw away 6 % of the data per epoch.

    ``augment``: ``False`` (none), ``True`` (the default parameters, ``data.augment.AUGMENT``) or a
    mapping of augmentation parameters -- a profile's :attr:`~bcdet_helpers.profiles.Profile.augmentation`.
    """

    def __init__(self, data, batch_size: int, seed: int, device: torch.device, augment: bool | Mapping):
        x, y = data.part("train")
        xv, yv = data.part("val")
        if len(x) == 0 or len(xv) == 0:
            raise BcdetError(f"fit needs training and validation images; got {len(x)} train, {len(xv)} val.")
        self.x, self.y, self.x_val, self.y_val = x.to(device), y.to(device), xv.to(device), yv.to(device)
        self.mean, self.std = float(data.mean), float(data.std)
        self.classes = len(data.classes)
        self.batch_size, self.augment, self.device = batch_size, bool(augment), device
        self.augment_params = dict(augment) if isinstance(augment, Mapping) else None  # None: the defaults
        self.steps = math.ceil(len(x) / batch_size)
        self.gen = torch.Generator().manual_seed(seed)

    def prepare(self, x_uint8: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """uint8 -> float in [0, 1] -> (augmented) -> normalised, in :data:`MEMORY_FORMAT` layout
        (the two halves of :func:`~bcdet_helpers.data.preprocess.normalize`, augmentation between)."""
        x = to_unit(x_uint8)
        if augment:
            from .data.augment import augment_batch

            x = augment_batch(x, self.gen, self.augment_params)
        x = standardize(x, self.mean, self.std)
        return x.contiguous(memory_format=MEMORY_FORMAT)

    def train(self):
        perm = torch.randperm(len(self.x), generator=self.gen).to(self.device, non_blocking=True)
        for s in range(self.steps):
            idx = perm[s * self.batch_size:(s + 1) * self.batch_size]
            yield self.prepare(self.x[idx], self.augment), self.y[idx]

    def val(self, chunk: int = 1024):
        for s in range(0, len(self.x_val), chunk):
            yield self.prepare(self.x_val[s:s + chunk]), self.y_val[s:s + chunk]


class Precision:
    """Mixed precision where it pays: bfloat16 autocast on CUDA (float16 + GradScaler on GPUs
    without bfloat16); plain float32 on the CPU and MPS."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.dtype = torch.bfloat16 if self.cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.cuda and self.dtype == torch.float16 else None
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype) if self.cuda else torch.autocast("cpu", enabled=False)

    def backward_step(self, loss: torch.Tensor, optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


@dataclass
class BestWeights:
    """The weights of the best epoch by validation macro-F1 (lower validation loss breaks ties).
    Only validation images decide; the test part is never looked at."""

    state: dict | None = None
    epoch: int | None = None
    f1: float = -1.0
    loss: float = float("inf")

    def update(self, row: dict, model: torch.nn.Module) -> None:
        if row["val_f1"] > self.f1 or (row["val_f1"] == self.f1 and row["val_loss"] < self.loss):
            self.state, self.epoch = to_cpu(model.state_dict()), row["epoch"]
            self.f1, self.loss = row["val_f1"], row["val_loss"]


class WeightAverage:
    """Stochastic weight averaging (Izmailov et al., *Averaging weights leads to wider optima and better
    generalization*, UAI 2018) over the last ``epochs`` epochs of a run: after each of them the weights join a
    running mean (``torch.optim.swa_utils.AveragedModel``); at the end :meth:`apply` puts the mean into the
    model and recomputes its batch-norm statistics on the training images (``update_bn``: the mean of weights
    has no running statistics of its own). Averaging happens under the arm's own learning-rate schedule -- no
    separate SWA rate -- so the arm is still the arm; the weights of the last epochs wander around a minimum,
    and their mean tends to sit nearer its flat centre, which is what generalises. The mean is part of every
    checkpoint, so a resumed run averages exactly what an uninterrupted one does."""

    def __init__(self, model: torch.nn.Module, epochs: int, total_epochs: int):
        from torch.optim.swa_utils import AveragedModel

        self.first = max(0, total_epochs - int(epochs))  # 0-based: the first epoch whose end weights join
        self.average = AveragedModel(model)

    def update(self, epoch: int, model: torch.nn.Module) -> None:
        """After epoch ``epoch`` (0-based) has trained: add its weights when it is one of the last epochs."""
        if epoch >= self.first:
            self.average.update_parameters(model)

    def state_dict(self) -> dict:
        return to_cpu(self.average.state_dict())

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)

    @torch.no_grad()
    def apply(self, model: torch.nn.Module, batches: "Batches") -> None:
        """Put the mean weights into ``model`` and recompute its batch-norm statistics on every training image
        (plain, not augmented: the images the model is then validated and tested like)."""
        from torch.optim.swa_utils import update_bn

        for mean, param in zip(self.average.module.parameters(), model.parameters()):
            param.copy_(mean)
        chunks = [batches.prepare(batches.x[s:s + batches.batch_size])
                  for s in range(0, len(batches.x), batches.batch_size)]
        update_bn(chunks, model, device=batches.device)


@dataclass
class TrainState:
    """Everything a checkpoint holds besides the model: where the run is and what it has seen."""

    optimizer: torch.optim.Optimizer | None = None
    scheduler: object = None
    history: list = field(default_factory=list)
    best: BestWeights = field(default_factory=BestWeights)
    epoch: int = 0  # epochs finished
    wall_before: float = 0.0  # seconds of training in earlier (resumed) calls
    opt_state: dict | None = None  # loaded optimizer / scheduler state, consumed when building them
    sched_state: dict | None = None
    average: WeightAverage | None = None  # weight averaging (SWA), when the run uses it
    average_state: dict | None = None  # its loaded state, consumed when building it


class Checkpointer:
    """After every epoch: ``checkpoint.pt`` (everything the next epoch depends on) and
    ``history.csv`` in ``run_dir``, written in the background. Without ``run_dir`` it does nothing."""

    def __init__(self, run_dir, phases, seed: int, batch_size: int):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.path = self.run_dir / "checkpoint.pt" if self.run_dir is not None else None
        self.phases, self.seed, self.batch_size = list(phases), seed, batch_size
        self.saver, self.saved_epoch = BackgroundSaver(), 0
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    def restore(self, model, gen, precision) -> TrainState | None:
        """The state of the last checkpoint (loaded into ``model``, ``gen`` and the RNGs), or None."""
        if self.path is None or not self.path.exists():
            return None
        ck = load_training_checkpoint(self.path, self.phases, self.seed, self.batch_size)
        model.load_state_dict(ck["model"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["rng"])
        if precision.cuda and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        if precision.scaler is not None and ck.get("scaler"):
            precision.scaler.load_state_dict(ck["scaler"])
        self.saved_epoch = ck["epoch"]
        return TrainState(history=ck["history"], best=BestWeights(**ck["best"]), epoch=ck["epoch"],
                          wall_before=ck["wall_time"], opt_state=ck["optimizer"], sched_state=ck["scheduler"],
                          average_state=ck.get("average"))  # a checkpoint from before weight averaging has none

    def save(self, st: TrainState, model, gen, precision, wall: float, wait: bool = False) -> None:
        """Checkpoint the finished epochs (in the background; ``wait=True``: now, and wait for it)."""
        epochs = len(st.history)
        if self.path is None or epochs == self.saved_epoch:
            self.saver.wait()
            return
        state = {
            "version": CHECKPOINT_VERSION, "epoch": epochs, "phase": st.history[-1]["phase"],
            "phases": [asdict(p) for p in self.phases], "seed": self.seed, "batch_size": self.batch_size,
            "model": to_cpu(model.state_dict()),
            "optimizer": to_cpu(st.optimizer.state_dict()),
            "scheduler": st.scheduler.state_dict() if st.scheduler is not None else None,
            "scaler": precision.scaler.state_dict() if precision.scaler is not None else None,
            "generator": gen.get_state(), "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if precision.cuda else None,
            "history": [dict(r) for r in st.history],
            "best": asdict(st.best),
            "wall_time": wall,
            **({"average": st.average.state_dict()} if st.average is not None else {}),
        }
        atomic_csv(pd.DataFrame(st.history, columns=HISTORY_COLUMNS), self.run_dir / "history.csv")
        if wait:
            self.saver.wait()
            atomic_save(state, self.path)
        else:
            self.saver.save(state, self.path)
        self.saved_epoch = epochs

    def close(self, st: TrainState, model, gen, precision, wall: float, consistent: bool) -> None:
        """At the end of :func:`fit`, however it ends: the last finished epoch on disk -- unless the
        model is mid-epoch (``consistent=False``; then the epoch before is what the disk keeps) -- and
        no background write left running."""
        if consistent:
            self.save(st, model, gen, precision, wall, wait=True)
        self.saver.wait()


class Progress:
    """One bar per run, one tick per epoch (a tqdm bar in Jupyter or a terminal; one printed line
    per epoch in logs -- papermill, ``> file`` -- so logs stay short)."""

    def __init__(self, total: int, done: int, desc: str, enabled: bool, header: str = ""):
        self.enabled, self.total, self.done, self.bar = enabled, total, done, None
        self.t0, self.start_done = time.perf_counter(), done
        if not enabled:
            return
        if header:
            print(header, flush=True)
        interactive = "ipykernel" in sys.modules or sys.stderr.isatty()
        if interactive:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit="epoch", mininterval=1.0)
        else:
            print(f"{desc}: {total} epochs" + (f", resuming after epoch {done}" if done else ""), flush=True)

    def update(self, row: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        post = {"phase": row["phase"], "opt": row["optimizer"], "lr": f"{row['lr']:.2g}",
                "val_acc": f"{row['val_acc']:.3f}", "val_f1": f"{row['val_f1']:.3f}"}
        if self.bar is not None:
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
            return
        rate = (time.perf_counter() - self.t0) / max(1, self.done - self.start_done)
        eta = rate * (self.total - self.done)
        print(f"epoch {self.done}/{self.total} " + " ".join(f"{k}={v}" for k, v in post.items())
              + f" train_loss={row['train_loss']:.3f} {row['seconds']:.1f}s ETA {eta:.0f}s", flush=True)

    def interrupted(self) -> bool:
        """Say what Ctrl-C did (the checkpoint of the last finished epoch is kept) and how to go on, in a
        notebook and on the command line -- the one line ``bcdet train`` prints about it; returns True."""
        if self.enabled:
            when = f"after epoch {self.done}, which is checkpointed" if self.done else \
                "in the first epoch (nothing checkpointed yet)"
            print(f"\nInterrupted (Ctrl-C) {when}. To go on: resume=True (bcdet train: the same command plus "
                  "--resume).", flush=True)
        return True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


TEST_RECORD = "test-by-epoch.csv"


class TestRecord:
    """What the test fold scored after every epoch -- recorded, never used.

    A tutorial habit is to report the epoch with the best *test* accuracy. To measure how much that
    inflates a number (rung 3 of the leakage ladder, :mod:`bcdet_helpers.study.ladder`), the study's
    runs keep the test images' predicted classes after each epoch in ``test-by-epoch.csv``: one row
    per test image (``file``, ``y``), one column per epoch (``e1``, ``e2``, ... the predicted class
    index). Nothing in training reads it: :class:`BestWeights` chooses on validation images, and the
    study scores ``last.pt``. Predicting changes no weight, batch-norm statistic or random stream,
    so a run trained with the record is the same run as one without.
    """

    def __init__(self, path: Path, data, model: torch.nn.Module, device, resume: bool):
        x, y = data.part("test")
        self.path, self.model, self.device, self.x = Path(path), model, device, x
        self.mean, self.std = float(data.mean), float(data.std)
        table = pd.read_csv(self.path) if resume and self.path.exists() else None
        if table is None or table["file"].tolist() != list(data.files_of("test")):
            table = pd.DataFrame({"file": data.files_of("test"), "y": y.numpy().astype(int)})
        self.table = table

    def update(self, row: dict) -> None:
        from .evaluate import predict_proba

        pred = predict_proba(self.model, self.x, self.mean, self.std, device=self.device).argmax(1)
        epoch = int(row["epoch"])
        keep = [c for c in self.table.columns if not c.startswith("e") or int(c[1:]) < epoch]
        self.table = self.table[keep].assign(**{f"e{epoch}": pred.astype(int)})
        atomic_csv(self.table, self.path)
