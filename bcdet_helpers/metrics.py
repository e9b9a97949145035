"""Scores of predictions: the one definition of each, for training and evaluation alike.

Training picks its best epoch by validation macro-F1 and evaluation reports macro-F1; they must be
the same number. Both come from :func:`macro_f1_from_confusion`.

**Macro-F1 averages over the classes present in the truth.** A set without, say, malignant images
has no malignant F1 to average: scoring it 0 (scikit-learn's default ``average="macro"`` over all
labels) would punish the model for a class it was never shown. A prediction *of* an absent class
still costs: it is a false negative of the image's true class, which lowers that class's recall
and F1.

On confusion matrices: :func:`confusion` builds one, :func:`scores_from_confusion` reads accuracy,
macro-F1 and per-class recall off one or a stack of them (the study's bootstrap scores thousands
at once), :func:`macro_f1_from_confusion` is its macro-F1. On class indices (training):
:func:`macro_f1`.
On probability rows ``(N, K)`` (evaluation; the predicted class is the arg-max; taught in notebook
05 and re-exported by :mod:`bcdet_helpers.evaluate` under their old names -- ``evaluate.metrics`` is
:func:`classification_metrics`, ``evaluate.macro_f1`` is :func:`macro_f1_of_proba`):

* :func:`classification_metrics` -- accuracy, per-class precision / recall / specificity / F1,
  macro and weighted F1, one-vs-rest ROC AUC, confusion matrix -- from scikit-learn
* :func:`accuracy`, :func:`macro_f1_of_proba` -- the ``metric_fn`` s a bootstrap resamples
* :func:`roc_curves` -- one-vs-rest ROC curve per class
* :func:`choose_threshold` -- a screening threshold, chosen on validation images (notebook 05's exercise
  05.3; the external test carries it over to another hospital), and :func:`sensitivity_specificity` --
  what it gives on other images
"""
from __future__ import annotations

import math

import numpy as np

from .busi import CLASSES

__all__ = ["confusion", "scores_from_confusion", "macro_f1_from_confusion", "macro_f1", "classification_metrics", "check_predictions",
           "accuracy", "macro_f1_of_proba", "roc_curves", "choose_threshold", "sensitivity_specificity"]


def confusion(y_true, y_pred, classes: int) -> np.ndarray:
    """``classes x classes`` counts, rows = true class, columns = predicted."""
    y_true, y_pred = np.asarray(y_true, int).ravel(), np.asarray(y_pred, int).ravel()
    return np.bincount(y_true * classes + y_pred, minlength=classes * classes).reshape(classes, classes)


def scores_from_confusion(conf) -> dict:
    """Accuracy, macro-F1, per-class recall and balanced accuracy (the mean recall of the classes present)
    of one or many confusion matrices ``(..., K, K)``.

    F1 per class is 2 TP / (2 TP + FP + FN) = 2 TP / (row + column); macro-F1 averages the classes
    present in the truth (a row with members, see the module doc); the recall of an absent class is
    ``nan``. Arrays come back with the leading shape of ``conf``.
    """
    conf = np.asarray(conf, dtype=float)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    rows, cols = conf.sum(-1), conf.sum(-2)
    total = rows.sum(-1)
    present = rows > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(total > 0, tp.sum(-1) / np.where(total > 0, total, 1), np.nan)
        recall = np.where(present, tp / np.where(present, rows, 1), np.nan)
        f1 = np.where(present, 2 * tp / np.where(present, rows + cols, 1), 0.0)
        n_present = present.sum(-1)
        macro_f1 = np.where(n_present > 0, (f1 * present).sum(-1) / np.maximum(n_present, 1), np.nan)
        balanced = np.where(n_present > 0, np.where(present, recall, 0.0).sum(-1) / np.maximum(n_present, 1), np.nan)
    return {"accuracy": accuracy, "macro_f1": macro_f1, "recall": recall, "balanced_accuracy": balanced}


def macro_f1_from_confusion(conf) -> float:
    """The macro-F1 of one confusion matrix (:func:`scores_from_confusion`)."""
    return float(scores_from_confusion(conf)["macro_f1"])


def macro_f1(y_true, y_pred, classes: int | None = None) -> float:
    """:func:`macro_f1_from_confusion` of predicted class indices ``y_pred``."""
    y_true, y_pred = np.asarray(y_true, int).ravel(), np.asarray(y_pred, int).ravel()
    k = classes or int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    return macro_f1_from_confusion(confusion(y_true, y_pred, k))


def classification_metrics(y_true, proba, classes=CLASSES) -> dict:
    """Every number of the evaluation chapter for one set of predictions, from scikit-learn.

    ``y_true``: class indices ``(N,)``; ``proba``: probabilities ``(N, K)`` (the predicted class is
    the arg-max). Returns a JSON-ready dict: ``accuracy``, ``macro_f1``, ``weighted_f1``,
    ``macro_precision``, ``macro_recall``, ``macro_specificity``, ``macro_auc``, ``per_class``
    (precision, recall = sensitivity, specificity, f1, support, auc per class),
    ``confusion_matrix`` (rows = true class, columns = predicted) and ``n``.

    Specificity (true-negative rate, one class against the rest) is not in scikit-learn's report,
    so we read it off scikit-learn's confusion matrix: TN / (TN + FP). A class's ROC AUC is
    one-vs-rest and is ``nan`` when the class is absent (or the only one) in ``y_true``.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

    y_true, proba = check_predictions(y_true, proba, classes)
    labels = list(range(len(classes)))
    y_pred = proba.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    cm = confusion(y_true, y_pred, len(classes))
    scores = scores_from_confusion(cm)
    per_class = {}
    for k, name in enumerate(classes):
        tp = cm[k, k]
        fp = cm[:, k].sum() - tp
        fn = cm[k, :].sum() - tp
        tn = cm.sum() - tp - fp - fn
        is_k = (y_true == k).astype(int)
        auc = float(roc_auc_score(is_k, proba[:, k])) if 0 < is_k.sum() < len(is_k) else float("nan")
        per_class[name] = {
            "precision": float(prec[k]),
            "recall": float(rec[k]),  # = sensitivity
            "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
            "f1": float(f1[k]),
            "support": int(support[k]),
            "auc": auc,
        }
    # macro averages run over the classes that occur in y_true: a folder without, say, malignant
    # images must not score that class's F1 as 0 (the AUC average already skips it)
    present = [k for k in labels if support[k] > 0]
    aucs = [c["auc"] for c in per_class.values() if not math.isnan(c["auc"])]
    specs = [c["specificity"] for c in per_class.values() if not math.isnan(c["specificity"])]
    return {
        "n": int(len(y_true)),
        "accuracy": float(scores["accuracy"]),
        "macro_f1": float(scores["macro_f1"]),  # the one definition, as training's
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro_precision": float(np.mean(prec[present])),
        "macro_recall": float(np.mean(rec[present])),
        "absent_classes": [classes[k] for k in labels if k not in present],
        "macro_specificity": float(np.mean(specs)) if specs else float("nan"),
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }


def check_predictions(y_true, proba, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` as int ``(N,)`` and ``proba`` as float ``(N, K)``, or a ValueError saying what is off."""
    y_true = np.asarray(y_true).astype(int).ravel()
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(f"proba must be (N, K) with N = len(y_true) = {len(y_true)}, got {proba.shape}")
    if classes is not None and proba.shape[1] != len(classes):
        raise ValueError(f"proba has {proba.shape[1]} columns but there are {len(classes)} classes")
    if len(y_true) == 0:
        raise ValueError("no predictions to score (empty y_true)")
    return y_true, proba


def accuracy(y_true, proba) -> float:
    """Fraction of arg-max predictions that are right (a ``metric_fn`` for
    :func:`~bcdet_helpers.uncertainty.bootstrap_ci`)."""
    y_true, proba = check_predictions(y_true, proba)
    return float(np.mean(proba.argmax(1) == y_true))


def macro_f1_of_proba(y_true, proba) -> float:
    """:func:`macro_f1` of the arg-max predictions (a ``metric_fn`` for
    :func:`~bcdet_helpers.uncertainty.bootstrap_ci`; ``evaluate.macro_f1`` is this function)."""
    y_true, proba = check_predictions(y_true, proba)
    return macro_f1(y_true, proba.argmax(1), proba.shape[1])


def roc_curves(y_true, proba, classes=CLASSES) -> dict:
    """One-vs-rest ROC curve per class: ``{class: (fpr, tpr, auc)}`` (classes absent are skipped)."""
    from sklearn.metrics import auc, roc_curve

    y_true, proba = check_predictions(y_true, proba, classes)
    out = {}
    for k, name in enumerate(classes):
        is_k = (y_true == k).astype(int)
        if 0 < is_k.sum() < len(is_k):
            fpr, tpr, _ = roc_curve(is_k, proba[:, k])
            out[name] = (fpr, tpr, float(auc(fpr, tpr)))
    return out


def choose_threshold(y_val_malignant, p_val_malignant, target_sensitivity: float = 0.9) -> float:
    """The operating point, chosen on validation images only: the highest threshold ``t`` such that
    predicting malignant when ``p >= t`` finds at least ``target_sensitivity`` of the validation's
    malignant images (so specificity is as high as that sensitivity allows).

    ``y_val_malignant``: truth per validation image (True / 1 = malignant; benign and normal are
    both "not malignant"); ``p_val_malignant``: the model's p(malignant) for each. Only the malignant
    images' scores decide ``t``; the others only pay for it in specificity.
    """
    y = np.asarray(y_val_malignant).astype(bool).ravel()
    p = np.asarray(p_val_malignant, dtype=float).ravel()
    if len(y) != len(p):
        raise ValueError(f"y_val_malignant and p_val_malignant must be equally long, got {len(y)} and {len(p)}")
    if not 0 < target_sensitivity <= 1:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    positives = np.sort(p[y])[::-1]
    if not len(positives):
        raise ValueError("no malignant validation image: a threshold for a target sensitivity needs some")
    k = math.ceil(target_sensitivity * len(positives) - 1e-9)  # malignant images that must reach t
    return float(positives[k - 1])


def sensitivity_specificity(score, positive, threshold: float) -> tuple[float, float]:
    """``(sensitivity, specificity)`` of the rule ``score >= threshold`` against ``positive``."""
    score, positive = np.asarray(score, float), np.asarray(positive, bool)
    called = score >= threshold
    sens = float(called[positive].mean()) if positive.any() else math.nan
    spec = float((~called[~positive]).mean()) if (~positive).any() else math.nan
    return sens, spec
