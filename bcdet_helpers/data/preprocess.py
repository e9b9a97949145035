"""uint8 image -> the normalised float tensor the model sees: written once, used everywhere.

Training (:class:`~bcdet_helpers.batches.Batches`), :meth:`SplitData.normalize` (the notebooks)
and prediction (:func:`~bcdet_helpers.evaluate.predict_proba`, ``bcdet predict``/``evaluate``) must
scale pixels identically -- a model trained on one scaling and scored on another is silently wrong.
So the step lives here, in two halves because training augments in between:

* :func:`to_unit`      uint8 0..255 -> float32 0..1
* :func:`standardize`  ``(x - mean) / std`` with the *training* part's statistics
* :func:`normalize`    both, for everyone who does not augment

The operations and their order are the ones every recorded run used (``float()``, divide by 255,
subtract, divide), so results stay bit-identical.
"""
from __future__ import annotations

import torch

__all__ = ["to_unit", "standardize", "normalize"]


def to_unit(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255) -> a new float32 tensor in [0, 1] (the input is never modified)."""
    return torch.as_tensor(x_uint8).to(torch.float32, copy=True).div_(255.0)


def standardize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``(x - mean) / std`` on the 0..1 scale: the training pixels get mean 0 and std 1."""
    return (x - mean) / std


def normalize(x_uint8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 images -> the model's input: :func:`standardize` of :func:`to_unit`."""
    return standardize(to_unit(x_uint8), mean, std)
