"""The one definition of each score that training and evaluation share.

Training picks its best epoch by validation macro-F1 and evaluation reports macro-F1; they must be
the same number. Both come from :func:`macro_f1_from_confusion`.

**Macro-F1 averages over the classes present in the truth.** A set without, say, malignant images
has no malignant F1 to average: scoring it 0 (scikit-learn's default ``average="macro"`` over all
labels) would punish the model for a class it was never shown. A prediction *of* an absent class
still costs: it is a false negative of the image's true class, which lowers that class's recall
and F1.
"""
from __future__ import annotations

import numpy as np

__all__ = ["confusion", "macro_f1_from_confusion", "macro_f1"]


def confusion(y_true, y_pred, classes: int) -> np.ndarray:
    """``classes x classes`` counts, rows = true class, columns = predicted."""
    y_true, y_pred = np.asarray(y_true, int).ravel(), np.asarray(y_pred, int).ravel()
    return np.bincount(y_true * classes + y_pred, minlength=classes * classes).reshape(classes, classes)


def macro_f1_from_confusion(conf) -> float:
    """Mean per-class F1 = 2 TP / (2 TP + FP + FN) over the classes that occur in the truth."""
    c = np.asarray(conf, dtype=np.float64)
    tp = np.diag(c)
    support = c.sum(axis=1)
    denom = 2 * tp + (c.sum(axis=0) - tp) + (support - tp)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return float(f1[present].mean()) if present.any() else float("nan")


def macro_f1(y_true, y_pred, classes: int | None = None) -> float:
    """:func:`macro_f1_from_confusion` of predicted class indices ``y_pred``."""
    y_true, y_pred = np.asarray(y_true, int).ravel(), np.asarray(y_pred, int).ravel()
    k = classes or int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    return macro_f1_from_confusion(confusion(y_true, y_pred, k))
