"""The training loss, and two answers to class imbalance (issue #31, the improvement ladder's rung 2).

BUSI is 56 % benign, 27 % malignant and 17 % normal. Plain cross-entropy counts every image the same, so a
model that leans towards "benign" loses little -- and every leak-free arm of the study misses about half
the malignant lesions. ``Profile.loss_weighting`` chooses the loss :func:`~bcdet_helpers.train.fit` trains
with; the class counts always come from the run's *training* part (never its validation or test images):

* ``"none"``          plain cross-entropy (every run before issue #31).
* ``"balanced"``      class-weighted cross-entropy, class ``k`` weighted ``n / (K n_k)`` (scikit-learn's
                      "balanced"): each class adds as much to the loss as the others, whatever its size.
* ``"logit_adjust"``  the logit-adjusted loss of Menon et al., *Long-tail learning via logit adjustment*
                      (ICLR 2021): cross-entropy of ``logits + tau * log(prior)``. The model learns logits
                      with the training prior taken out, so the plain logits it predicts with score classes
                      as if they were balanced (with ``tau = 1``, the minimiser of the balanced error).

What the history's losses mean: ``train_loss`` is the loss trained on (weighted or adjusted), while
``val_loss`` is always plain, unweighted cross-entropy of the plain logits (:func:`~bcdet_helpers.train.validate`),
so validation losses compare across runs and rungs whatever they trained with.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .profiles import DEFAULTS

__all__ = ["LOSSES", "class_counts", "class_weights", "log_prior", "training_loss"]

LOSSES = ("none", "balanced", "logit_adjust")


def class_counts(y: torch.Tensor, classes: int) -> torch.Tensor:
    """Images per class of the labels ``y`` (float, on ``y``'s device); a class with none counts as one, so
    weights and log-priors stay finite on tiny subsets."""
    return torch.bincount(y.long(), minlength=classes).float().clamp(min=1)


def class_weights(counts: torch.Tensor) -> torch.Tensor:
    """``n / (K n_k)``: the weight of each class in the ``"balanced"`` loss (1 for every class when balanced)."""
    return counts.sum() / (len(counts) * counts)


def log_prior(counts: torch.Tensor) -> torch.Tensor:
    """``log(n_k / n)``: the training part's class prior, on the logits' scale."""
    return torch.log(counts / counts.sum())


def training_loss(kind: str, counts: torch.Tensor, logit_adjust_tau: float = DEFAULTS.logit_adjust_tau):
    """The loss ``fn(logits, y)`` :func:`~bcdet_helpers.train.fit` minimises: ``kind`` one of :data:`LOSSES`,
    ``counts`` the training part's images per class (:func:`class_counts`)."""
    if kind == "none":
        return F.cross_entropy
    if kind == "balanced":
        weight = class_weights(counts)
        return lambda logits, y: F.cross_entropy(logits, y, weight=weight.to(logits.device))
    if kind == "logit_adjust":
        shift = logit_adjust_tau * log_prior(counts)
        return lambda logits, y: F.cross_entropy(logits + shift.to(logits.device), y)
    raise ValueError(f"loss_weighting must be one of {', '.join(LOSSES)}, not {kind!r}")
