"""Checkpoints: atomic writes, a background writer, and reading them back (to resume or to predict).

* **Atomic** (temp file + ``os.replace``): a crash mid-write never leaves half a checkpoint.
* **Complete**: a training checkpoint holds everything the next epoch depends on (weights,
  optimizer and scheduler state, generator and RNG states, history, best weights), so resuming
  ends with exactly the weights of an uninterrupted run.
* **In the background**: a 0.04-s GPU epoch does not wait for the disk.
"""
from __future__ import annotations

import os
import threading
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from .errors import BcdetError

__all__ = ["CHECKPOINT_VERSION", "to_cpu", "atomic_save", "atomic_csv", "BackgroundSaver",
           "load_training_checkpoint", "load_checkpoint"]

CHECKPOINT_VERSION = 1


def to_cpu(obj):
    """A deep copy of a (nested) state with every tensor cloned to the CPU -- safe to save while
    training goes on."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temp file, then rename."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


class BackgroundSaver:
    """Writes one checkpoint at a time in a thread; :meth:`wait` re-raises a failed write."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self, obj, path):
        try:
            atomic_save(obj, path)
        except BaseException as exc:  # noqa: BLE001 -- reported by wait()
            self._error = exc

    def save(self, obj, path: Path) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(obj, path), daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def load_training_checkpoint(path: Path, phases, seed, batch_size) -> dict:
    """A training checkpoint, refused with a clear message if it belongs to another run."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise BcdetError(f"Cannot read the checkpoint {path} ({exc}). Delete it to start the run afresh.") from exc
    from .profiles import recorded_phases

    want = {"phases": [asdict(p) for p in phases], "seed": seed, "batch_size": batch_size}
    have = {k: ck.get(k) for k in want}
    have["phases"] = recorded_phases(have["phases"])  # a checkpoint written before a phase field existed
    if have != want:
        diff = ", ".join(f"{k}: checkpoint {have[k]!r} vs now {want[k]!r}" for k in want if have[k] != want[k])
        raise BcdetError(
            f"The checkpoint {path} belongs to a different run ({diff}). Resume with the same settings, "
            "or delete the folder to start over."
        )
    return ck


def load_checkpoint(path: str | Path, device="cpu"):
    """``(model, meta)`` from a run's ``best.pt`` / ``last.pt`` (or its folder: ``best.pt``); the
    model is in eval mode.

    ``meta`` holds what prediction needs: image_size, channels, width, mean, std, classes, and where
    the weights came from (profile, schedule: the arm, split: the kind, seed, best_epoch).
    """
    from .device import choose_device
    from .model import build_model
    from .profiles import RUN_FIELDS_BEFORE, Profile

    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.exists():
        raise BcdetError(f"No checkpoint at {path}. Train one with `bcdet train` (it writes runs/<profile>/.../best.pt).")
    what_to_pass = "Pass the best.pt of a finished run, e.g. runs/laptop/switching-grouped-fold0-seed0/best.pt."
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 -- torch raises many types, with pages of text that name no file
        size = path.stat().st_size
        kind = "an empty file" if size == 0 else f"a file of {size:,} bytes that torch.load cannot read"
        raise BcdetError(f"{path} is not a bcdet checkpoint: it is {kind} (damaged, cut short, or another kind "
                         f"of file). {what_to_pass}") from None
    if not isinstance(ck, dict) or "meta" not in ck or "model" not in ck:
        raise BcdetError(f"{path} is not a bcdet best.pt (no 'meta'). {what_to_pass}")
    meta = ck["meta"]
    try:
        # a checkpoint from before the logit scale has no "logit_scale": its model had none (1.0)
        prof = Profile(name=meta["profile"], image_size=meta["image_size"], channels=meta["channels"],
                       width=meta["width"], logit_scale=meta.get("logit_scale", RUN_FIELDS_BEFORE["logit_scale"]))
        model = build_model(prof)
        model.load_state_dict(ck["model"])
    except (KeyError, RuntimeError) as exc:  # RuntimeError: load_state_dict's pages of mismatched tensors
        why = f"its meta has no {exc.args[0]!r}" if isinstance(exc, KeyError) else \
            "its weights do not fit the model its meta describes"
        raise BcdetError(f"{path} was written by another version of bcdet or for another model ({why}). "
                         f"Retrain it with this version (bcdet train ...). {what_to_pass}") from None
    dev = choose_device(device)
    return model.to(dev).eval(), meta
