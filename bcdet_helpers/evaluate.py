"""Evaluation: a model's predictions -> the numbers a reviewer trusts (taught in notebook 05).

This module owns two jobs -- :func:`predict_proba` (a model + uint8 images -> probabilities, scaled
as in training) and :func:`evaluate_run` (a run's best checkpoint scored on its test part) -- and is
the one import the notebooks need: the evaluation chapter's other names live in their own modules
and are re-exported here under the names they always had, so ``ev.metrics(...)`` keeps working.

* :mod:`bcdet_helpers.metrics`: ``metrics`` (= ``classification_metrics``), ``accuracy``,
  ``macro_f1`` (= ``macro_f1_of_proba``), ``roc_curves``
* :mod:`bcdet_helpers.uncertainty`: ``bootstrap_ci``, ``reliability``,
  ``expected_calibration_error``, ``paired_comparison``
* :mod:`bcdet_helpers.gradcam`: ``grad_cam``, ``last_conv_block``, ``upsample_cam``, ``cam_mass_in_mask``
* :mod:`bcdet_helpers.data.cache`: ``load_images``, ``lesion_mask`` (files read like the cache)
* :mod:`bcdet_helpers.data.folders`: ``folder_dataset``, ``parse_map``, ``single_class_warning``
* :mod:`bcdet_helpers.published`: ``PUBLISHED``; :mod:`bcdet_helpers.runinfo`: ``jsonable``

``bcdet predict`` and ``bcdet evaluate`` are in :mod:`bcdet_helpers.research.commands`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .busi import CLASSES
from .data.cache import lesion_mask, load_images
from .data.folders import IMAGE_SUFFIXES, folder_dataset, parse_map, single_class_warning
from .errors import BcdetError
from .gradcam import cam_mass_in_mask, grad_cam, last_conv_block, upsample_cam
from .metrics import accuracy, check_predictions, classification_metrics, macro_f1_of_proba, roc_curves
from .published import PUBLISHED
from .runinfo import jsonable
from .uncertainty import (
    bootstrap_ci,
    bootstrap_count,
    expected_calibration_error,
    paired_comparison,
    reliability,
)

# the names this module has always had (notebooks, the study code and the tests call ev.<name>)
metrics = classification_metrics
macro_f1 = macro_f1_of_proba
_check = check_predictions

__all__ = [
    "predict_proba", "Evaluation", "evaluate_run",
    # re-exported
    "metrics", "accuracy", "macro_f1", "roc_curves", "bootstrap_ci", "bootstrap_count", "reliability",
    "expected_calibration_error", "paired_comparison", "grad_cam", "last_conv_block", "upsample_cam",
    "cam_mass_in_mask", "load_images", "lesion_mask", "folder_dataset", "parse_map", "single_class_warning",
    "IMAGE_SUFFIXES", "PUBLISHED", "jsonable", "BcdetError", "CLASSES",
]


# --------------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------------
def predict_proba(model, images_uint8, mean: float, std: float, device="cpu", batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(N, K)`` for a uint8 batch ``(N, C, H, W)``.

    Images are scaled exactly as in training -- :func:`~bcdet_helpers.data.preprocess.normalize`
    with the *training* part's mean/std, the one function training and :meth:`SplitData.normalize`
    use -- then the model's logits go through a softmax. Runs in eval mode (dropout off, batch-norm running statistics) without
    gradients, in batches so a big folder does not need one big tensor on the device.
    """
    import torch

    from .data.preprocess import normalize

    device = _device(device)
    x_all = torch.as_tensor(images_uint8)
    if x_all.dtype != torch.uint8:
        raise ValueError(f"predict_proba expects uint8 images (0..255), got {x_all.dtype}")
    model = model.to(device).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x_all), batch_size):
            x = normalize(x_all[start : start + batch_size].to(device), mean, std)
            out.append(torch.softmax(model(x).float(), dim=1).cpu())
    if not out:
        return np.zeros((0, 0))
    return torch.cat(out).numpy().astype(np.float64)


def _device(device):
    """A torch.device through :func:`~bcdet_helpers.device.choose_device`: "auto" picks cuda, mps,
    cpu; "cuda" without a GPU or an unknown name is a clear error, as in ``bcdet train``."""
    from .device import choose_device

    return choose_device(device)


# --------------------------------------------------------------------------------------------
# a run's best checkpoint on its test split
# --------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """What :func:`evaluate_run` found; ``summary()`` is the JSON-ready part."""

    metrics: dict
    ci: dict
    ece: float
    reliability: list
    y_true: np.ndarray
    proba: np.ndarray
    files: list
    meta: dict = field(default_factory=dict)
    run_dir: str | None = None
    best_epoch: int | None = None
    part: str = "test"

    def summary(self) -> dict:
        keep = ("profile", "schedule", "split", "seed", "image_size", "channels", "mean", "std")
        return {
            "run_dir": self.run_dir,
            **{k: _plain(self.meta.get(k)) for k in keep if k in self.meta},
            "best_epoch": self.best_epoch,
            "part": self.part,
            **self.metrics,
            "ci": self.ci,
            "ece": self.ece,
            "reliability": self.reliability,
        }


def _plain(v):
    """Profile objects in a checkpoint's meta -> their name, so summaries stay JSON-friendly."""
    return getattr(v, "name", v)


def evaluate_run(run, data, n_boot: int | None = None, seed: int = 0, device="cpu", part: str = "test") -> Evaluation:
    """Score the best-by-validation checkpoint (``best.pt``) of ``run`` on ``data``'s test part.

    ``run``: a run folder or a :class:`train.FitResult` with a ``run_dir``. ``data``: the
    :class:`SplitData` the run was trained on -- checked against the checkpoint (kind, seed,
    image size) because scoring on a *different* split would put training images into the "test"
    set. Returns an :class:`Evaluation` with the :func:`metrics`, 95% bootstrap CIs of accuracy
    and macro-F1 (``n_boot`` resamples, default the profile's ``bootstrap``), ECE and the raw
    predictions for plots.
    """
    from .checkpoints import load_checkpoint

    run_dir = Path(getattr(run, "run_dir", run) or "")
    if not str(run_dir) or not (run_dir / "best.pt").exists():
        raise BcdetError(
            f"{run_dir / 'best.pt'}: no best-by-validation checkpoint. Train the run first "
            f"(bcdet train ... or runs.train_run), or pass the run folder that holds best.pt."
        )
    model, meta = load_checkpoint(run_dir / "best.pt", device=device)
    checks = (("split", data.kind), ("seed", data.seed),  # "split": the record's key for the kind ("image_size", data.image_size),
              ("channels", data.channels), ("profile", (data.meta or {}).get("profile")))
    for key, have in checks:
        want = meta.get(key)
        if want is not None and have is not None and str(want) != str(have):
            said = "kind" if key == "split" else key
            raise BcdetError(
                f"{run_dir}: the checkpoint was trained with {said}={want!r} but the data has {said}={have!r}. "
                f"Load the data the run used: load_split_data({meta.get('profile')!r}, kind={meta.get('split')!r}, "
                f"seed={meta.get('seed')!r})."
            )
    x, y = data.part(part)
    proba = predict_proba(model, x, meta.get("mean", data.mean), meta.get("std", data.std), device=device)
    y = y.numpy()
    if n_boot is None:
        n_boot = bootstrap_count(meta.get("profile"))
    m = classification_metrics(y, proba, data.classes)
    ci = {
        "accuracy": bootstrap_ci(y, proba, accuracy, n_boot, seed),
        "macro_f1": bootstrap_ci(y, proba, macro_f1_of_proba, n_boot, seed),
    }
    best_epoch = getattr(run, "best_epoch", None)
    if best_epoch is None:
        best_epoch = meta.get("best_epoch") or meta.get("epoch")
    return Evaluation(
        metrics=m,
        ci=ci,
        ece=expected_calibration_error(y, proba),
        reliability=reliability(y, proba),
        y_true=y,
        proba=proba,
        files=data.files_of(part),
        meta=dict(meta),
        run_dir=str(run_dir),
        best_epoch=None if best_epoch is None else int(best_epoch),
        part=part,
    )
