"""Evaluation: predictions -> metrics a reviewer trusts (taught in notebook 05).

Everything here works on plain arrays (``y_true`` class indices, ``proba`` rows of class
probabilities), so the same code scores a training run, the switching-vs-constant study and
``bcdet evaluate`` on someone else's dataset:

* :func:`predict_proba`  -- a model + uint8 images -> softmax probabilities (same scaling as training)
* :func:`metrics`        -- accuracy, per-class precision / recall / specificity / F1, macro and
  weighted F1, one-vs-rest ROC AUC, confusion matrix -- all from scikit-learn
* :func:`bootstrap_ci`   -- percentile confidence interval of any metric (the test set is small!)
* :func:`expected_calibration_error` / :func:`reliability` -- are the confidences honest?
* :func:`paired_comparison` -- schedule A vs B over seeds, paired on the same splits
* :func:`grad_cam` / :func:`cam_mass_in_mask` -- where does the model look, and is it the lesion?
* :func:`evaluate_run`   -- the best-by-validation checkpoint of a run, scored on its test split
* :func:`cli_predict` / :func:`cli_evaluate` -- ``bcdet predict`` and ``bcdet evaluate``
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BcdetError
from .paths import CLASSES
from .data.folders import IMAGE_SUFFIXES, folder_dataset, single_class_warning  # noqa: F401
from .runinfo import jsonable  # noqa: F401  (re-exported: notebooks call ev.jsonable)
TEACHING_REMINDER = (
    "Reminder: this is a teaching model trained on one small public dataset -- not a medical "
    "device. Do not use it to diagnose anyone."
)


# Published reference points (citations, not our measurements) for the comparison table of
# notebook 05 and report.md.
PUBLISHED = {
    "paper_switching": {
        "source": "Achyuthanwesh et al., switching Adam/SGD + LR",
        "task": "3 classes, BUSI, 64 x 64",
        "accuracy": 0.90,
        "note": "as claimed (~90%); split, seeds and number of runs not stated",
    },
    "paper_constant": {
        "source": "Achyuthanwesh et al., constant optimizer + LR",
        "task": "3 classes, BUSI, 64 x 64",
        "accuracy": 0.81,
        "note": "as claimed (~81%); split, seeds and number of runs not stated",
    },
    "breastmnist_resnet18": {
        "source": "MedMNIST v2 BreastMNIST, ResNet-18 (28)",
        "task": "2 classes (malignant vs benign+normal), BUSI at 28 x 28",
        "accuracy": 0.863,
        "auc": 0.901,
        "note": "a DIFFERENT, binary task built from BUSI (Yang et al., Sci. Data 2023) -- context, not a like-for-like comparison",
    },
}


# --------------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------------
def predict_proba(model, images_uint8, mean: float, std: float, device="cpu", batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(N, K)`` for a uint8 batch ``(N, C, H, W)``.

    Images are scaled exactly as in training, ``(x / 255 - mean) / std`` with the *training*
    split's mean/std (the same formula as :meth:`SplitData.normalize`), then the model's logits go
    through a softmax. Runs in eval mode (dropout off, batch-norm running statistics) without
    gradients, in batches so a big folder does not need one big tensor on the device.
    """
    import torch

    device = _device(device)
    x_all = torch.as_tensor(images_uint8)
    if x_all.dtype != torch.uint8:
        raise ValueError(f"predict_proba expects uint8 images (0..255), got {x_all.dtype}")
    model = model.to(device).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x_all), batch_size):
            x = x_all[start : start + batch_size].to(device)
            x = (x.float() / 255.0 - mean) / std
            out.append(torch.softmax(model(x).float(), dim=1).cpu())
    if not out:
        return np.zeros((0, 0))
    return torch.cat(out).numpy().astype(np.float64)


def _device(device):
    """A torch.device through train.choose_device: "auto" picks cuda, mps, cpu; "cuda" without a
    GPU or an unknown name is a clear error, as in ``bcdet train``."""
    from .train import choose_device

    return choose_device(device)


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------
def metrics(y_true, proba, classes=CLASSES) -> dict:
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
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_true, proba = _check(y_true, proba, classes)
    labels = list(range(len(classes)))
    y_pred = proba.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels)
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
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": macro_f1(y_true, proba),  # the one definition (bcdet_helpers.metrics)
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


def _check(y_true, proba, classes=None) -> tuple[np.ndarray, np.ndarray]:
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
    """Fraction of arg-max predictions that are right (a ``metric_fn`` for :func:`bootstrap_ci`)."""
    y_true, proba = _check(y_true, proba)
    return float(np.mean(proba.argmax(1) == y_true))


def macro_f1(y_true, proba) -> float:
    """Unweighted mean of the per-class F1 over the classes present in ``y_true`` (a ``metric_fn``):
    :func:`bcdet_helpers.metrics.macro_f1`, the one definition training uses too."""
    from .metrics import macro_f1 as _macro_f1

    y_true, proba = _check(y_true, proba)
    return _macro_f1(y_true, proba.argmax(1), proba.shape[1])


def roc_curves(y_true, proba, classes=CLASSES) -> dict:
    """One-vs-rest ROC curve per class: ``{class: (fpr, tpr, auc)}`` (classes absent are skipped)."""
    from sklearn.metrics import auc, roc_curve

    y_true, proba = _check(y_true, proba, classes)
    out = {}
    for k, name in enumerate(classes):
        is_k = (y_true == k).astype(int)
        if 0 < is_k.sum() < len(is_k):
            fpr, tpr, _ = roc_curve(is_k, proba[:, k])
            out[name] = (fpr, tpr, float(auc(fpr, tpr)))
    return out


# --------------------------------------------------------------------------------------------
# uncertainty of a number: bootstrap
# --------------------------------------------------------------------------------------------
def bootstrap_ci(y_true, proba, metric_fn=accuracy, n: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Percentile bootstrap confidence interval of ``metric_fn(y_true, proba)``.

    Draw ``n`` test sets of the same size *with replacement* from the one we have, score each,
    and take the ``alpha/2`` and ``1 - alpha/2`` quantiles. This answers "how much would the
    number move on another test set of this size from the same source?" -- it says nothing about
    other hospitals or scanners. Resamples on which the metric is undefined (``nan``) are dropped.

    Returns ``{"value", "low", "high", "alpha", "n_boot", "n"}``.
    """
    y_true, proba = _check(y_true, proba)
    value = float(metric_fn(y_true, proba))
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(int(n)):
        idx = rng.integers(0, len(y_true), len(y_true))
        s = float(metric_fn(y_true[idx], proba[idx]))
        if not math.isnan(s):
            scores.append(s)
    if not scores:
        return {"value": value, "low": float("nan"), "high": float("nan"), "alpha": alpha, "n_boot": 0, "n": len(y_true)}
    low, high = np.quantile(scores, [alpha / 2, 1 - alpha / 2])
    return {
        "value": value,
        "low": float(low),
        "high": float(high),
        "alpha": alpha,
        "n_boot": len(scores),
        "n": int(len(y_true)),
    }


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------
def reliability(y_true, proba, n_bins: int = 10) -> list[dict]:
    """Reliability-diagram data: the top-class confidence split into ``n_bins`` equal-width bins.

    Each bin: ``low``, ``high``, ``count``, ``confidence`` (mean top probability) and ``accuracy``
    (fraction right). A calibrated model has accuracy == confidence in every bin. Empty bins have
    ``count`` 0 and ``nan`` means.
    """
    y_true, proba = _check(y_true, proba)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin i holds low < conf <= high (the first bin also takes conf == 0)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins = []
    for i in range(n_bins):
        sel = which == i
        bins.append({
            "low": float(edges[i]),
            "high": float(edges[i + 1]),
            "count": int(sel.sum()),
            "confidence": float(conf[sel].mean()) if sel.any() else float("nan"),
            "accuracy": float(correct[sel].mean()) if sel.any() else float("nan"),
        })
    return bins


def expected_calibration_error(y_true, proba, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean gap |accuracy - confidence| over the :func:`reliability` bins.

    0 means "when the model says 80%, it is right 80% of the time"; a model that says 99% and is
    right 70% of the time has an ECE near 0.29.
    """
    bins = reliability(y_true, proba, n_bins)
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / total)


# --------------------------------------------------------------------------------------------
# comparing two schedules over seeds
# --------------------------------------------------------------------------------------------
def paired_comparison(a, b, names=("switching", "constant"), alpha: float = 0.05) -> dict:
    """Compare two schedules run on the *same* splits and seeds: ``a[i]`` and ``b[i]`` pair up.

    Pairing removes the split-to-split variation both schedules share, which is usually larger
    than the difference we look for. Reports mean +- std of each, the paired differences
    ``a - b``, a paired t-test (``scipy.stats.ttest_rel``) and a Wilcoxon signed-rank test when
    there are at least two pairs, and a plain-words ``verdict`` -- which says so when there are
    too few runs to conclude anything.
    """
    from scipy import stats

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_comparison needs two equally long 1-D sequences, got {a.shape} and {b.shape}")
    n = len(a)
    diff = a - b
    sd = (lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"))
    out = {
        "names": list(names),
        "n_pairs": n,
        names[0]: {"mean": float(a.mean()) if n else float("nan"), "std": sd(a), "values": a.tolist()},
        names[1]: {"mean": float(b.mean()) if n else float("nan"), "std": sd(b), "values": b.tolist()},
        "differences": diff.tolist(),
        "mean_difference": float(diff.mean()) if n else float("nan"),
        "std_difference": sd(diff),
        "ttest_p": float("nan"),
        "wilcoxon_p": float("nan"),
    }
    if n >= 2 and np.any(diff != 0):
        out["ttest_p"] = float(stats.ttest_rel(a, b).pvalue)
        try:
            out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
        except ValueError:
            pass
    a_name, b_name = names
    if n < 2:
        out["verdict"] = (
            f"only {n} paired run: too few to conclude whether {a_name} beats {b_name} -- one seed "
            f"cannot tell its difference ({out['mean_difference']:+.3f}) from seed-to-seed noise; run more seeds."
        ) if n else "no paired runs."
    elif not np.any(diff != 0):
        out["verdict"] = f"{a_name} and {b_name} scored identically on all {n} seeds."
    else:
        p = out["ttest_p"]
        better = a_name if out["mean_difference"] > 0 else b_name
        if p < alpha:
            out["verdict"] = (
                f"{better} is better by {abs(out['mean_difference']):.3f} on average over {n} seeds "
                f"(paired t-test p = {p:.3g} < {alpha})."
            )
        else:
            out["verdict"] = (
                f"no significant difference over {n} seeds: mean difference {out['mean_difference']:+.3f} "
                f"({a_name} - {b_name}), paired t-test p = {p:.3g}"
                + (" -- with fewer than 5 seeds such a test has little power" if n < 5 else "")
                + "."
            )
    return out


# --------------------------------------------------------------------------------------------
# where the model looks: Grad-CAM
# --------------------------------------------------------------------------------------------
def last_conv_block(model):
    """The module Grad-CAM hooks by default: the last ResidualBlock of the network (ResNet9's
    ``res2``, output ``F(x) + x``), else the last ConvBlock, else the last ``Conv2d`` -- the deepest
    layer that still has a spatial map, so the map is as semantic as possible while still saying
    *where* (8 x 8 cells for a 64 x 64 input)."""
    import torch.nn as nn

    for kind in ("ResidualBlock", "ConvBlock"):  # a residual block's output includes its skip
        blocks = [m for m in model.modules() if type(m).__name__ == kind]
        if blocks:
            return blocks[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("grad_cam: the model has no convolution layer to hook")
    return convs[-1]


def grad_cam(model, images, target_layer=None, class_idx=None):
    """Grad-CAM maps (Selvaraju et al., 2017) for a batch of *normalised* float images.

    For the chosen class (``class_idx``: an int, one per image, or ``None`` = the predicted
    class) we take the gradient of its logit with respect to the feature maps of
    ``target_layer`` (default :func:`last_conv_block`), average it over space to get one weight
    per channel, and sum the channels with those weights; a ReLU keeps only evidence *for* the
    class. Returns ``(cams, class_idx)``: ``cams`` is ``(N, h, w)`` at the layer's resolution
    (e.g. 8 x 8 for 64 x 64 inputs), each scaled to max 1 (all-zero when nothing supports the class).
    """
    import torch

    x = torch.as_tensor(images)
    if not x.is_floating_point():
        raise ValueError("grad_cam expects normalised float images; use data.normalize(x_uint8) first")
    layer = target_layer if target_layer is not None else last_conv_block(model)
    device = next(model.parameters()).device
    x = x.to(device)
    saved = {}

    def hook(_module, _inp, output):
        saved["act"] = output

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x)
            if class_idx is None:
                idx = logits.argmax(1)
            else:
                idx = torch.as_tensor(class_idx, device=logits.device).long().expand(len(x))
            score = logits.gather(1, idx[:, None]).sum()
            (grads,) = torch.autograd.grad(score, saved["act"])
    finally:
        handle.remove()
        model.train(was_training)
    act = saved["act"].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cams = torch.relu((weights * act).sum(1))
    peak = cams.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    cams = torch.where(peak > 1e-12, cams / peak, torch.zeros_like(cams))
    return cams.cpu().numpy(), idx.cpu().numpy()


def upsample_cam(cam, size: int | tuple[int, int]) -> np.ndarray:
    """A ``(h, w)`` or ``(N, h, w)`` cam bilinearly resized to the image size, for overlays."""
    import torch
    import torch.nn.functional as F

    cam = np.asarray(cam, dtype=np.float32)
    size = (size, size) if isinstance(size, int) else tuple(size)
    t = torch.from_numpy(cam)
    t = t[None, None] if t.ndim == 2 else t[:, None]
    up = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return up[0, 0].numpy() if cam.ndim == 2 else up[:, 0].numpy()


def cam_mass_in_mask(cam, mask) -> float:
    """Fraction of the Grad-CAM mass that falls inside the lesion mask (0..1).

    The mask (any resolution, bool) is shrunk to the cam's resolution by area averaging, so a
    cam cell that is 30% lesion counts 30% of its mass as inside. Returns ``nan`` when the mask
    is empty (normal tissue has no lesion) or the cam is all zero. Compare it with the mask's
    area fraction: a model that looks everywhere equally scores exactly that.
    """
    import torch
    import torch.nn.functional as F

    cam = np.clip(np.asarray(cam, dtype=np.float64), 0, None)
    mask = np.asarray(mask, dtype=np.float32)
    if cam.ndim != 2 or mask.ndim != 2:
        raise ValueError(f"cam and mask must be 2-D, got {cam.shape} and {mask.shape}")
    if not mask.any() or cam.sum() <= 0:
        return float("nan")
    if mask.shape != cam.shape:
        mask = F.adaptive_avg_pool2d(torch.from_numpy(mask)[None, None], cam.shape)[0, 0].numpy()
    return float((cam * mask).sum() / cam.sum())


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
    :class:`SplitData` the run was trained on -- checked against the checkpoint (split kind, seed,
    image size) because scoring on a *different* split would put training images into the "test"
    set. Returns an :class:`Evaluation` with the :func:`metrics`, 95% bootstrap CIs of accuracy
    and macro-F1 (``n_boot`` resamples, default the profile's ``bootstrap``), ECE and the raw
    predictions for plots.
    """
    from .profiles import get_profile
    from .train import load_checkpoint

    run_dir = Path(getattr(run, "run_dir", run) or "")
    if not str(run_dir) or not (run_dir / "best.pt").exists():
        raise BcdetError(
            f"{run_dir / 'best.pt'}: no best-by-validation checkpoint. Train the run first "
            f"(bcdet train ... or train.train_run), or pass the run folder that holds best.pt."
        )
    model, meta = load_checkpoint(run_dir / "best.pt", device=device)
    checks = (("split", data.kind), ("seed", data.seed), ("image_size", data.image_size),
              ("channels", data.channels), ("profile", (data.meta or {}).get("profile")))
    for key, have in checks:
        want = meta.get(key)
        if want is not None and have is not None and str(want) != str(have):
            raise BcdetError(
                f"{run_dir}: the checkpoint was trained with {key}={want!r} but the data has {key}={have!r}. "
                f"Load the data the run used: load_split_data({meta.get('profile')!r}, split={meta.get('split')!r}, "
                f"seed={meta.get('seed')!r})."
            )
    x, y = data.part(part)
    proba = predict_proba(model, x, meta.get("mean", data.mean), meta.get("std", data.std), device=device)
    y = y.numpy()
    if n_boot is None:
        prof = meta.get("profile")
        try:
            n_boot = get_profile(prof).bootstrap if prof is not None else 2000
        except ValueError:
            n_boot = 2000
    m = metrics(y, proba, data.classes)
    ci = {
        "accuracy": bootstrap_ci(y, proba, accuracy, n_boot, seed),
        "macro_f1": bootstrap_ci(y, proba, macro_f1, n_boot, seed),
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


# --------------------------------------------------------------------------------------------
# images from disk, preprocessed like the training cache
# --------------------------------------------------------------------------------------------
def load_images(paths, image_size: int, channels: int = 1):
    """uint8 tensor ``(N, C, S, S)`` of image files, decoded and resized exactly like the cache.

    Decoding (RGBA, 16-bit, palette, grayscale...) and resizing are the cache's own
    :func:`data.cache.resize_image`, so ``bcdet predict`` sees what training saw.
    """
    import torch

    from .data.cache import resize_image

    if not len(paths):
        return torch.zeros((0, channels, image_size, image_size), dtype=torch.uint8)
    return torch.from_numpy(np.stack([resize_image(p, image_size, channels) for p in paths]))


def lesion_mask(image_path, image_size: int) -> np.ndarray:
    """The union of an image's lesion masks (``X_mask.png``, ``X_mask_1.png``...), resized like
    the image itself (the cache's squash + bicubic), as a float ``(S, S)`` array in 0..1 -- a
    pixel half covered by lesion is 0.5. All zeros for normal tissue (BUSI's normal images have
    empty masks) and for images without a mask file."""
    from .data.cache import resize_image
    from .data.index import masks_of

    masks = masks_of(Path(image_path))
    if not masks:
        return np.zeros((image_size, image_size), dtype=np.float32)
    stack = [resize_image(m, image_size, 1)[0].astype(np.float32) / 255.0 for m in masks]
    return np.max(stack, axis=0)


def cli_predict(args) -> int:
    """``bcdet predict IMAGE... --checkpoint C``: per-class probabilities for each image."""
    from .train import load_checkpoint

    device = _device(getattr(args, "device", "auto"))
    model, meta = load_checkpoint(args.checkpoint, device=device)
    classes = tuple(meta.get("classes", CLASSES))
    x = load_images(args.images, int(meta["image_size"]), int(meta.get("channels", 1)))
    proba = predict_proba(model, x, float(meta["mean"]), float(meta["std"]), device=device)
    width = max(len(str(p)) for p in args.images)
    print(f"{'image':<{width}}  " + "  ".join(f"{c:>9}" for c in classes) + "  prediction")
    for path, row in zip(args.images, proba):
        cells = "  ".join(f"{p:9.3f}" for p in row)
        print(f"{str(path):<{width}}  {cells}  {classes[int(row.argmax())]}")
    print(TEACHING_REMINDER)
    return 0


def parse_map(pairs) -> dict:
    """``["malign=malignant", ...]`` -> ``{"malign": "malignant"}`` (BcdetError on bad syntax)."""
    out = {}
    for item in pairs or []:
        src, sep, dst = str(item).partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise BcdetError(f"--map {item!r}: write it as SRC=DST, e.g. --map malign=malignant")
        out[src.strip()] = dst.strip()
    return out


def cli_evaluate(args) -> int:
    """``bcdet evaluate DIR --checkpoint C [--map SRC=DST ...] [--out O]``.

    Scores a checkpoint on any folder-per-class dataset and writes ``metrics.json`` (the same
    metrics as notebook 05, with bootstrap CIs and ECE) and ``confusion_matrix.png`` to ``--out``
    (default ``runs/evaluate/<folder name>``).
    """
    from . import plots
    from .paths import runs_dir
    from .runinfo import environment_info, write_json
    from .train import load_checkpoint

    start = time.time()
    device = _device(getattr(args, "device", "auto"))
    model, meta = load_checkpoint(args.checkpoint, device=device)
    classes = tuple(meta.get("classes", CLASSES))
    paths, y = folder_dataset(args.folder, classes, parse_map(getattr(args, "map", None)))
    x = load_images(paths, int(meta["image_size"]), int(meta.get("channels", 1)))
    proba = predict_proba(model, x, float(meta["mean"]), float(meta["std"]), device=device)
    m = metrics(y, proba, classes)
    warning = single_class_warning(y, classes)
    n_boot = 1000
    result = {
        "warning": warning,
        "folder": str(Path(args.folder).resolve()),
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "map": parse_map(getattr(args, "map", None)),
        "checkpoint_meta": {k: _plain(v) for k, v in meta.items() if isinstance(_plain(v), (str, int, float, list, tuple, type(None)))},
        **m,
        "ci": {
            "accuracy": bootstrap_ci(y, proba, accuracy, n_boot, 0),
            "macro_f1": bootstrap_ci(y, proba, macro_f1, n_boot, 0),
        },
        "ece": expected_calibration_error(y, proba),
        "predictions": [
            {"file": str(p), "true": classes[t], "pred": classes[int(r.argmax())], "proba": [round(float(v), 4) for v in r]}
            for p, t, r in zip(paths, y, proba)
        ],
        "environment": environment_info(device),
        "wall_time_s": None,
    }
    out = Path(args.out) if getattr(args, "out", None) else runs_dir() / "evaluate" / Path(args.folder).resolve().name
    fig = plots.confusion_matrices(np.asarray(m["confusion_matrix"]), classes, title=f"{Path(args.folder).name}")
    png = plots.save(fig, out, "confusion_matrix")
    result["wall_time_s"] = round(time.time() - start, 2)
    write_json(out / "metrics.json", result)
    ci = result["ci"]
    if warning:
        print(f"\n{'!' * 100}\n{warning}\n{'!' * 100}\n", flush=True)
        print(warning, file=sys.stderr)
    print(f"{len(y)} images from {args.folder}  ({', '.join(f'{c}: {int((y == i).sum())}' for i, c in enumerate(classes))})")
    print(f"accuracy {m['accuracy']:.3f}  (95% CI {ci['accuracy']['low']:.3f}-{ci['accuracy']['high']:.3f})   "
          f"macro-F1 {m['macro_f1']:.3f}  (95% CI {ci['macro_f1']['low']:.3f}-{ci['macro_f1']['high']:.3f})")
    for c, row in m["per_class"].items():
        print(f"  {c:<10} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
              f"specificity {row['specificity']:.3f}  F1 {row['f1']:.3f}  n={row['support']}")
    print(f"wrote {out / 'metrics.json'} and {png}")
    print("Note: if this folder holds images the model was trained or validated on (BUSI itself, for a "
          "BUSI checkpoint), these numbers are optimistic -- a fair test uses images the model never saw.")
    print(TEACHING_REMINDER)
    return 0
