"""The extras of :func:`~bcdet_helpers.train.fit`, as callbacks -- fastai's shape, kept to the four
events we use.

The loop itself (notebook 04 writes it by hand) is: for each epoch, maybe switch the optimizer,
:func:`~bcdet_helpers.train.train_epoch`, validate, keep the best weights (:class:`BestWeights`, not
optional). Everything else a long, real run needs is a :class:`Callback`, which ``fit`` calls at the
same few points of every run. ``fit`` adds the first three from its own arguments; a caller passes
more in ``fit(..., callbacks=[...])``:

* :class:`Checkpointer`  (``run_dir``) a complete checkpoint + history.csv after every epoch; resume from it
* :class:`WeightAverage` (``swa_epochs``) the mean of the last epochs' weights (SWA, issue #31)
* :class:`Progress`      (``progress``) one bar (Jupyter/terminal) or one line per epoch (logs)
* :class:`TestRecord`    the study only: the test fold's predictions after every epoch, a record of
                         what a tutorial would pick its epoch from (the leakage ladder, issue #19)

The data path (:class:`~bcdet_helpers.batches.Batches`, :class:`~bcdet_helpers.batches.Precision`)
lives in :mod:`bcdet_helpers.batches`.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from .checkpoints import CHECKPOINT_VERSION, BackgroundSaver, atomic_csv, atomic_save, load_training_checkpoint, to_cpu

HISTORY_COLUMNS = [
    "epoch", "phase", "optimizer", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "seconds",
]


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


class Callback:
    """One extra of :func:`~bcdet_helpers.train.fit`; a subclass overrides the events it needs.

    Each event is handed the :class:`~bcdet_helpers.train.Loop` -- the run in progress: model, batches,
    optimizer, history, ... -- and ``fit`` calls it for every callback in list order:

    * ``before_fit(loop)``        the model is on the device; with ``resume`` the :class:`Checkpointer`
                                  (always first) has put the checkpoint's state into ``loop``
    * ``after_train(loop)``       epoch ``loop.epoch`` (0-based) has trained, and is not validated yet
    * ``after_epoch(loop, row)``  its history row, validation numbers included, is in ``loop.history``
    * ``after_fit(loop)``         however ``fit`` ends -- finished, ``stop_after``, Ctrl-C or an error;
                                  ``loop.interrupted`` is True unless the run has all its epochs

    Why callbacks: an extra is one class here, and ``fit`` stays the loop notebook 04 writes by hand.
    Why so few events: each is a promise about the loop's order that resuming relies on. A callback
    draws no random numbers (torch's global generator, ``loop.batches.gen``), so a run with it is the
    same run as one without. One whose state a resumed run needs (to end exactly like an uninterrupted
    one) names it ``state_key`` and returns it from :meth:`state_dict`: every checkpoint holds it, and
    after a resume ``loop.restored[state_key]`` gives it back.
    """

    state_key: str | None = None

    def before_fit(self, loop) -> None:
        pass

    def after_train(self, loop) -> None:
        pass

    def after_epoch(self, loop, row: dict) -> None:
        pass

    def after_fit(self, loop) -> None:
        pass

    def state_dict(self) -> dict:
        return {}


class WeightAverage(Callback):
    """Stochastic weight averaging (Izmailov et al., *Averaging weights leads to wider optima and better
    generalization*, UAI 2018) over the last ``epochs`` epochs of a run: after each of them the weights join a
    running mean (``torch.optim.swa_utils.AveragedModel``); at the end :meth:`apply` puts the mean into the
    model and recomputes its batch-norm statistics on the training images (``update_bn``: the mean of weights
    has no running statistics of its own). Averaging happens under the arm's own learning-rate schedule -- no
    separate SWA rate -- so the arm is still the arm; the weights of the last epochs wander around a minimum,
    and their mean tends to sit nearer its flat centre, which is what generalises.

    The mean is part of every checkpoint, so a resumed run averages exactly what an uninterrupted one does:
    an epoch joins in ``after_train``, before the :class:`Checkpointer` writes the epoch; the mean replaces
    the weights in ``after_fit``, after the checkpoint's last write (which keeps the last epoch's own
    weights), and ``loop.averaged`` gets its validation numbers (``FitResult.averaged``)."""

    state_key = "average"

    def __init__(self, epochs: int):
        self.epochs, self.first, self.average = int(epochs), 0, None

    def before_fit(self, loop) -> None:
        from torch.optim.swa_utils import AveragedModel

        self.first = max(0, loop.epochs - self.epochs)  # 0-based: the first epoch whose end weights join
        self.average = AveragedModel(loop.model)
        if (loop.restored or {}).get(self.state_key) is not None:  # a checkpoint from before averaging has none
            self.average.load_state_dict(loop.restored[self.state_key])

    def after_train(self, loop) -> None:
        if loop.epoch >= self.first:
            self.average.update_parameters(loop.model)

    def after_fit(self, loop) -> None:
        if not loop.interrupted:
            self.apply(loop.model, loop.batches)
            loop.averaged = loop.validate()

    def state_dict(self) -> dict:
        return to_cpu(self.average.state_dict())

    @torch.no_grad()
    def apply(self, model: torch.nn.Module, batches) -> None:
        """Put the mean weights into ``model`` and recompute its batch-norm statistics on every training image
        (plain, not augmented: the images the model is then validated and tested like)."""
        from torch.optim.swa_utils import update_bn

        for mean, param in zip(self.average.module.parameters(), model.parameters()):
            param.copy_(mean)
        chunks = [batches.prepare(batches.x[s:s + batches.batch_size])
                  for s in range(0, len(batches.x), batches.batch_size)]
        update_bn(chunks, model, device=batches.device)


class Checkpointer(Callback):
    """After every epoch: ``checkpoint.pt`` (everything the next epoch depends on: weights, optimizer, rate
    schedule, random streams, history, best weights, the callbacks' states) and ``history.csv`` in
    ``run_dir``, written in the background. With ``resume``, :meth:`before_fit` continues from them; ``fit``
    puts this callback first, so every other one starts from the restored state."""

    def __init__(self, run_dir, resume: bool = False):
        self.run_dir, self.resume = Path(run_dir), resume
        self.path = self.run_dir / "checkpoint.pt"
        self.saver, self.saved_epoch = BackgroundSaver(), 0

    def before_fit(self, loop) -> None:
        """With ``resume`` and a checkpoint: its state into ``loop.model``, the RNGs and ``loop`` (history,
        best weights, ``start``; ``restored`` keeps the rest for the optimizer and the callbacks)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume or not self.path.exists():
            return
        ck = load_training_checkpoint(self.path, loop.phases, loop.seed, loop.batches.batch_size)
        loop.model.load_state_dict(ck.pop("model"))
        loop.batches.gen.set_state(ck["generator"])
        torch.set_rng_state(ck["rng"])
        if loop.precision.cuda and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        if loop.precision.scaler is not None and ck.get("scaler"):
            loop.precision.scaler.load_state_dict(ck["scaler"])
        self.saved_epoch = loop.start = ck["epoch"]
        loop.history, loop.best, loop.wall_before = ck["history"], BestWeights(**ck["best"]), ck["wall_time"]
        loop.restored = ck

    def after_epoch(self, loop, row: dict) -> None:
        self.save(loop)

    def after_fit(self, loop) -> None:
        """However ``fit`` ends: the last finished epoch on disk -- unless the model is mid-epoch (then the
        epoch before is what the disk keeps) -- and no background write left running."""
        if not loop.mid_epoch:
            self.save(loop, wait=True)
        self.saver.wait()

    def save(self, loop, wait: bool = False) -> None:
        """Checkpoint the finished epochs (in the background; ``wait=True``: now, and wait for it)."""
        epochs = len(loop.history)
        if epochs == self.saved_epoch:
            self.saver.wait()
            return
        precision, gen = loop.precision, loop.batches.gen
        state = {
            "version": CHECKPOINT_VERSION, "epoch": epochs, "phase": loop.history[-1]["phase"],
            "phases": [asdict(p) for p in loop.phases], "seed": loop.seed, "batch_size": loop.batches.batch_size,
            "model": to_cpu(loop.model.state_dict()),
            "optimizer": to_cpu(loop.optimizer.state_dict()),
            "scheduler": loop.scheduler.state_dict() if loop.scheduler is not None else None,
            "scaler": precision.scaler.state_dict() if precision.scaler is not None else None,
            "generator": gen.get_state(), "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if precision.cuda else None,
            "history": [dict(r) for r in loop.history],
            "best": asdict(loop.best),
            "wall_time": loop.wall(),
            **{cb.state_key: cb.state_dict() for cb in loop.callbacks if cb.state_key},
        }
        atomic_csv(pd.DataFrame(loop.history, columns=HISTORY_COLUMNS), self.run_dir / "history.csv")
        if wait:
            self.saver.wait()
            atomic_save(state, self.path)
        else:
            self.saver.save(state, self.path)
        self.saved_epoch = epochs


class Progress(Callback):
    """One bar per run, one tick per epoch (a tqdm bar in Jupyter or a terminal; one printed line
    per epoch in logs -- papermill, ``> file`` -- so logs stay short). After Ctrl-C it says what was
    kept and how to go on."""

    def __init__(self, desc: str = "fit"):
        self.desc, self.bar = desc, None

    def before_fit(self, loop) -> None:
        from .device import describe_device

        b = loop.batches
        self.total, self.done, self.start_done, self.t0 = loop.epochs, loop.start, loop.start, time.perf_counter()
        print(f"Training on {describe_device(b.device)}: {len(b.y)} train / {len(b.y_val)} val images, batch "
              f"{b.batch_size}, {loop.epochs} epochs in {len(loop.phases)} phase(s)", flush=True)
        if "ipykernel" in sys.modules or sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc=self.desc, unit="epoch", mininterval=1.0)
        else:
            print(f"{self.desc}: {self.total} epochs" + (f", resuming after epoch {self.done}" if self.done else ""),
                  flush=True)

    def after_epoch(self, loop, row: dict) -> None:
        self.done += 1
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

    def after_fit(self, loop) -> None:
        """After Ctrl-C: what it did (the last finished epoch is checkpointed) and how to go on, in a notebook
        and on the command line -- the one line ``bcdet train`` prints about it."""
        if loop.ctrl_c:
            when = f"after epoch {self.done}, which is checkpointed" if self.done else \
                "in the first epoch (nothing checkpointed yet)"
            print(f"\nInterrupted (Ctrl-C) {when}. To go on: resume=True (bcdet train: the same command plus "
                  "--resume).", flush=True)
        if self.bar is not None:
            self.bar.close()


TEST_RECORD = "test-by-epoch.csv"


class TestRecord(Callback):
    """What the test fold scored after every epoch -- recorded, never used.

    A tutorial habit is to report the epoch with the best *test* accuracy. To measure how much that
    inflates a number (rung 3 of the leakage ladder, :mod:`bcdet_helpers.research.study.ladder`), the study's
    runs keep the test images' predicted classes after each epoch in ``test-by-epoch.csv``: one row
    per test image (``file``, ``y``), one column per epoch (``e1``, ``e2``, ... the predicted class
    index). Nothing in training reads it: :class:`BestWeights` chooses on validation images, and the
    study scores ``last.pt``. Predicting changes no weight, batch-norm statistic or random stream,
    so a run trained with the record is the same run as one without.
    """

    def __init__(self, path: Path, data):
        x, y = data.part("test")
        self.path, self.x, self.table = Path(path), x, None
        self.mean, self.std = float(data.mean), float(data.std)
        self.files, self.y = list(data.files_of("test")), y.numpy().astype(int)

    def before_fit(self, loop) -> None:
        """A resumed run keeps the columns of the epochs it has already done."""
        table = pd.read_csv(self.path) if loop.start and self.path.exists() else None
        if table is None or table["file"].tolist() != self.files:
            table = pd.DataFrame({"file": self.files, "y": self.y})
        self.table = table

    def after_epoch(self, loop, row: dict) -> None:
        from .evaluate import predict_proba

        pred = predict_proba(loop.model, self.x, self.mean, self.std, device=loop.batches.device).argmax(1)
        epoch = int(row["epoch"])
        keep = [c for c in self.table.columns if not c.startswith("e") or int(c[1:]) < epoch]
        self.table = self.table[keep].assign(**{f"e{epoch}": pred.astype(int)})
        atomic_csv(self.table, self.path)
