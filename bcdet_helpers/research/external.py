"""The score that transfers: a 3-class BUSI model on another hospital's benign/malignant images.

An external set such as BUS-BRA (:mod:`bcdet_helpers.busbra`) has no normal images, so BUSI's
3-class accuracy cannot be computed on it, and it would mislead if it could: what a clinician asks
of the model there is the *lesion question* -- is this lesion malignant? So a BUSI model is scored
by its probability of ``malignant``, on the images whose truth is benign or malignant:

* **AUC** of p(malignant) (scikit-learn's ``roc_auc_score``): does the model rank the malignant
  lesions above the benign ones? It needs no threshold, so it is the number that can transfer
  even when the scanner shifts every probability.
* **sensitivity and specificity at a carried-over threshold**: the threshold is chosen on BUSI
  *validation* images (:func:`choose_threshold`: the highest one that still finds
  ``target_sensitivity`` of the malignant ones) and then applied unchanged. It is never chosen on
  the external set -- that would use the test labels, and a threshold a hospital would really run
  with is the one fixed before it saw its own images. :func:`score_external` therefore takes the
  threshold as a number and has no way of choosing one.
* **calibration**: the reliability curve and ECE of the malignant-or-not question
  (:func:`~bcdet_helpers.uncertainty.reliability` on ``[1 - p, p]``) -- do the probabilities still
  mean what they say on another scanner?
* **the share predicted normal**: a lesion the model calls normal tissue is a lesion missed, however
  the benign/malignant scores come out.

Every interval resamples **patients**, not images: a patient's left and right, or two views of one
lesion, are one case to the question "how would this model do on other patients?". A resample
draws patients with replacement (the counts of :func:`bcdet_helpers.research.stats.resample_counts`) and
every image of a drawn patient comes with it, with the patient's weight (:func:`patient_weights`).
An image-level bootstrap (``patients=None``) treats correlated views as independent and comes out
too narrow. Scanners with at least ``min_device_images`` lesion images get a row of their own
(BUS-BRA: three of its four), each resampling its own patients.

The result is a small typed :class:`ExternalResult` whose :meth:`~ExternalResult.to_dict` is strict
JSON.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..busi import CLASSES
from ..metrics import choose_threshold  # its home: metrics, beside sensitivity_specificity (issue #32)
from .stats import Interval, _interval, resample_counts
from ..uncertainty import bootstrap_count, confidence_bins, expected_calibration_error, reliability

__all__ = ["choose_threshold", "patient_weights", "score_lesions", "score_external", "LesionScore",
           "ExternalResult", "MIN_DEVICE_IMAGES"]

MIN_DEVICE_IMAGES = 100  # a scanner with fewer lesion images gets no row (its interval would be too wide to read)


# ----------------------------------------------------------------------------------- resampling
def _resample(patients, n_boot: int, seed) -> tuple[np.ndarray, np.ndarray, int]:
    """``(codes, counts, n_patients)``: each image's patient as 0..G-1, and the ``(n_boot, G)`` draw counts."""
    labels, codes = np.unique(np.asarray(patients), return_inverse=True)
    return codes.ravel(), resample_counts(len(labels), n_boot, seed), len(labels)


def patient_weights(patients, n_boot: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``(n_boot, n_images)`` integer weights: how often each image is counted in each resample --
    the resamples :func:`score_lesions` scores (same patients, ``n_boot`` and ``seed``).

    Patients are drawn with replacement (:func:`~bcdet_helpers.research.stats.resample_counts`) and every
    image of a patient gets that patient's count, so a patient's images always stay together: all
    in (as often as the patient was drawn) or all out. Pass ``np.arange(n)`` as ``patients`` for an
    image-level bootstrap.
    """
    codes, counts, _ = _resample(patients, n_boot, seed)
    return counts[:, codes]


def _auc_replicates(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUC of ``p`` for each row of weights ``w`` ``(B, n)``: the weighted Mann-Whitney form
    ``sum_pos w * (negative weight below + half the tied) / (W_pos * W_neg)`` -- what
    ``roc_auc_score(y, p, sample_weight=w_b)`` returns (``tests/test_external.py`` checks), for all
    resamples in one pass instead of one call each."""
    order = np.argsort(p, kind="mergesort")
    ps, ys = p[order], y[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps)) + 1]  # one bucket per distinct score (ties together)
    ws = w[:, order].astype(float)
    pos = np.add.reduceat(ws * ys, starts, axis=1)
    neg = np.add.reduceat(ws * ~ys, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    den = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (pos * (below + 0.5 * neg)).sum(1) / den, np.nan)


def _ece_replicates(y: np.ndarray, binary: np.ndarray, w: np.ndarray, n_bins: int) -> np.ndarray:
    """:func:`~bcdet_helpers.uncertainty.expected_calibration_error` for each row of weights ``w``,
    with :func:`~bcdet_helpers.uncertainty.reliability`'s own bins (``confidence_bins``)."""
    conf = binary.max(axis=1)
    correct = (binary.argmax(axis=1) == y).astype(float)
    onehot = np.eye(n_bins)[confidence_bins(conf, n_bins)]
    w = w.astype(float)
    gap = np.abs(w @ (onehot * correct[:, None]) - w @ (onehot * conf[:, None])).sum(1)
    return gap / w.sum(1)


# ------------------------------------------------------------------------------------- results
@dataclass
class LesionScore:
    """The lesion question on one set of images (all of them, or one scanner's)."""

    name: str  # "all" or the scanner
    n_images: int  # benign + malignant images scored
    n_patients: int
    n_benign: int
    n_malignant: int
    auc: Interval  # of p(malignant), benign vs malignant
    sensitivity: Interval  # malignant images with p >= threshold
    specificity: Interval  # benign images with p < threshold
    predicted_normal: Interval  # images whose top class is normal (a lesion missed)
    ece: Interval  # of the malignant-or-not question
    reliability: list = field(default_factory=list)  # uncertainty.reliability bins

    def line(self) -> str:
        """One line for a person."""
        return (f"{self.name}: {self.n_images} images, {self.n_patients} patients | AUC {self.auc:.3f} | "
                f"sensitivity {self.sensitivity:.3f} | specificity {self.specificity:.3f} | "
                f"predicted normal {self.predicted_normal:.3f} | ECE {self.ece:.3f}")


@dataclass
class ExternalResult:
    """What :func:`score_external` found: the whole set, then one row per scanner with enough images."""

    threshold: float  # p(malignant) at or above which an image is called malignant (carried over)
    threshold_source: str  # where the threshold was chosen, e.g. "BUSI validation images (target sensitivity 0.9)"
    overall: LesionScore
    per_device: list[LesionScore]
    devices_too_small: dict  # scanner -> lesion images, for those under min_device_images
    min_device_images: int
    resampled: str  # "patients" or "images"
    n_boot: int
    seed: int
    level: float = 0.95
    n_other: int = 0  # images whose truth is neither benign nor malignant (left out)

    def to_dict(self) -> dict:
        """Strict-JSON-ready (NaN -> None; see :func:`bcdet_helpers.runinfo.jsonable`)."""
        from ..runinfo import jsonable

        return jsonable(asdict(self))

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def format(self) -> str:
        """The lines ``bcdet`` prints: the threshold, then the whole set and each scanner."""
        lines = [f"threshold p(malignant) >= {self.threshold:.3f}, from {self.threshold_source}; "
                 f"{self.level:.0%} intervals resample {self.resampled} ({self.n_boot} resamples)",
                 "  " + self.overall.line()]
        lines += ["  " + d.line() for d in self.per_device]
        if self.devices_too_small:
            small = ", ".join(f"{k} ({v})" for k, v in self.devices_too_small.items())
            lines.append(f"  no row of their own (under {self.min_device_images} images): {small}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------- scoring
def _as_indices(y, classes) -> np.ndarray:
    y = np.asarray(y).ravel()
    if y.dtype.kind in "OUS":
        lookup = {c.lower(): i for i, c in enumerate(classes)}
        return np.array([lookup.get(str(v).lower(), -1) for v in y], dtype=int)
    return y.astype(int)


def score_lesions(is_malignant, p_malignant, predicted_normal, patients, *, threshold: float, name: str = "all",
                  n_boot: int | None = None, seed: int = 0, alpha: float = 0.05, n_bins: int = 10) -> LesionScore:
    """:class:`LesionScore` of benign/malignant images (arrays aligned per image; ``patients`` the
    cluster of each image, ``None`` for an image-level bootstrap). See the module doc."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(is_malignant).astype(bool).ravel()
    p = np.asarray(p_malignant, dtype=float).ravel()
    normal = np.asarray(predicted_normal).astype(bool).ravel()
    n = len(y)
    patients = np.arange(n) if patients is None else np.asarray(patients).ravel()
    if not (len(p) == len(normal) == len(patients) == n):
        raise ValueError(f"arrays must be equally long, got {n}, {len(p)}, {len(normal)}, {len(patients)}")
    n_boot = bootstrap_count() if n_boot is None else int(n_boot)
    called = p >= threshold
    binary = np.c_[1 - p, p]  # the malignant-or-not question as a 2-class probability
    yi = y.astype(int)

    # count-based scores: per patient [TP, FN, TN, FP, predicted normal, images], resampled as counts @ M
    codes, counts, n_patients = _resample(patients, n_boot, seed)
    cols = np.c_[y & called, y & ~called, ~y & ~called, ~y & called, normal, np.ones(n, bool)].astype(float)
    m = np.zeros((n_patients, cols.shape[1]))
    np.add.at(m, codes, cols)

    def rates(t):  # t: (..., 6) summed counts -> sensitivity, specificity, predicted normal
        with np.errstate(invalid="ignore", divide="ignore"):
            return (t[..., 0] / (t[..., 0] + t[..., 1]), t[..., 2] / (t[..., 2] + t[..., 3]), t[..., 4] / t[..., 5])

    point, reps = rates(m.sum(0)), rates(counts @ m)
    # AUC and ECE: the images' weights in each resample (a patient's count on each of its images), in chunks
    auc_reps, ece_reps = np.empty(n_boot), np.empty(n_boot)
    for lo in range(0, n_boot, 256):
        w = counts[lo:lo + 256, codes]
        auc_reps[lo:lo + 256] = _auc_replicates(y, p, w)
        ece_reps[lo:lo + 256] = _ece_replicates(yi, binary, w, n_bins)
    point_auc = float(roc_auc_score(yi, p)) if 0 < y.sum() < n else math.nan
    return LesionScore(
        name=str(name), n_images=n, n_patients=n_patients, n_benign=int((~y).sum()), n_malignant=int(y.sum()),
        auc=_interval(point_auc, auc_reps, alpha),
        sensitivity=_interval(float(point[0]), reps[0], alpha),
        specificity=_interval(float(point[1]), reps[1], alpha),
        predicted_normal=_interval(float(point[2]), reps[2], alpha),
        ece=_interval(expected_calibration_error(yi, binary, n_bins), ece_reps, alpha),
        reliability=reliability(yi, binary, n_bins),
    )


def score_external(y, proba, patients=None, devices=None, *, threshold: float,
                   threshold_source: str = "BUSI validation images", classes=CLASSES, n_boot: int | None = None,
                   seed: int = 0, alpha: float = 0.05, min_device_images: int = MIN_DEVICE_IMAGES) -> ExternalResult:
    """Score a BUSI model's probabilities on an external benign/malignant set (see the module doc).

    ``y``: truth per image, class names or indices into ``classes`` (rows that are neither benign
    nor malignant are left out and counted in ``n_other``); ``proba``: ``(N, len(classes))`` class
    probabilities, column order ``classes``; ``patients``: the patient of each image (``None``:
    every image its own patient, the image-level bootstrap); ``devices``: the scanner of each image
    (``None``: no per-scanner rows); ``threshold``: carried over from BUSI validation
    (:func:`choose_threshold`) -- required, never chosen here; ``n_boot``: resamples (default the
    profile table's).
    """
    classes = tuple(classes)
    proba = np.asarray(proba, dtype=float)
    y = _as_indices(y, classes)
    if proba.ndim != 2 or proba.shape != (len(y), len(classes)):
        raise ValueError(f"proba must be (N, {len(classes)}) with N = len(y) = {len(y)}, got {proba.shape}")
    if threshold is None or not math.isfinite(float(threshold)):
        raise ValueError("score_external needs the threshold chosen on BUSI validation images (choose_threshold)")
    benign, malignant = classes.index("benign"), classes.index("malignant")
    normal_col = classes.index("normal") if "normal" in classes else None
    lesion = np.isin(y, [benign, malignant])
    if not lesion.any():
        raise ValueError("no benign or malignant image to score: the lesion question needs lesions")
    n_boot = bootstrap_count() if n_boot is None else int(n_boot)
    is_mal = y[lesion] == malignant
    p_mal = proba[lesion, malignant]
    pred_normal = (proba[lesion].argmax(1) == normal_col) if normal_col is not None else np.zeros(len(is_mal), bool)
    pats = None if patients is None else np.asarray(patients).ravel()[lesion]
    kw = dict(threshold=float(threshold), n_boot=n_boot, seed=seed, alpha=alpha)
    overall = score_lesions(is_mal, p_mal, pred_normal, pats, name="all", **kw)
    per_device, too_small = [], {}
    if devices is not None:
        devs = np.asarray(devices).ravel()[lesion]
        names, sizes = np.unique(devs, return_counts=True)
        for name, size in sorted(zip(names, sizes), key=lambda t: (-t[1], str(t[0]))):
            if size < min_device_images:
                too_small[str(name)] = int(size)
                continue
            sel = devs == name
            per_device.append(score_lesions(is_mal[sel], p_mal[sel], pred_normal[sel],
                                            None if pats is None else pats[sel], name=str(name), **kw))
    return ExternalResult(
        threshold=float(threshold), threshold_source=threshold_source, overall=overall, per_device=per_device,
        devices_too_small=too_small, min_device_images=int(min_device_images),
        resampled="images" if patients is None else "patients", n_boot=n_boot, seed=int(seed), level=1 - alpha,
        n_other=int((~lesion).sum()),
    )
