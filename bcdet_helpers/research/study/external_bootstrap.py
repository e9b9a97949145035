"""The crossed two-way bootstrap of :mod:`bcdet_helpers.research.study.external_eval`: replicates of the lesion
question's metrics (AUC, sensitivity, specificity, share predicted normal, ECE) for pooled (run, image)
rows and for the ensemble of the drawn training replicates, and their intervals. Arrays in, arrays out:
no study folder, no table."""
from __future__ import annotations

import math

import numpy as np

from .. import stats
from ...busi import CLASSES
from ..stats import Interval
from ...uncertainty import confidence_bins, expected_calibration_error

__all__ = ["N_BINS", "MALIGNANT", "NORMAL"]

N_BINS = 10
MALIGNANT, NORMAL = CLASSES.index("malignant"), CLASSES.index("normal")
_CHUNK = 128  # resamples scored at once (memory: _CHUNK x rows floats)


def _codes_in(values, labels: np.ndarray) -> np.ndarray:
    """Each value's index in the sorted ``labels`` (all values must be among them)."""
    return np.searchsorted(labels, np.asarray(values))


def _rates(t: np.ndarray):
    """Sensitivity, specificity, predicted normal from summed ``[TP, FN, TN, FP, normal, n]``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"sensitivity": t[..., 0] / (t[..., 0] + t[..., 1]), "specificity": t[..., 2] / (t[..., 2] + t[..., 3]),
                "predicted_normal": t[..., 4] / t[..., 5]}


def _pooled_reps(y, p, normal, called, units, clusters, unit_labels, cluster_labels, *, n_boot: int, seed: int,
                 n_bins: int = N_BINS) -> dict:
    """``{metric: (point, replicates)}`` of rows that are (run, image) predictions, under the two-way draws of
    ``stats.two_way_counts(len(unit_labels), len(cluster_labels), n_boot, seed)`` -- the same labels and seed
    give the same draws, which pairs two arms. ``called``: each row at its own run's threshold (``None``: no
    threshold, sensitivity and specificity undefined).

    Everything but the AUC is a sum over rows of something times ``w[replicate] * c[patient]``, so it is
    :func:`~bcdet_helpers.research.stats.two_way_sums` of per-(replicate, patient) totals: the confusion counts, and
    for the ECE each reliability bin's ``correct - confidence``. The AUC pairs rows, so it is computed from
    the rows' weights, the negatives sorted by score once (:class:`_PairedAUC`)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, bool)
    p = np.asarray(p, float)
    u, g = _codes_in(units, unit_labels), _codes_in(clusters, cluster_labels)
    n_u, n_g = len(unit_labels), len(cluster_labels)
    w, c = stats.two_way_counts(n_u, n_g, n_boot, seed)
    has_t = called is not None
    called = np.asarray(called, bool) if has_t else np.zeros(len(y), bool)
    binary, yi = np.c_[1 - p, p], y.astype(int)
    conf = binary.max(1)
    gap = (binary.argmax(1) == yi) - conf  # correct - confidence, summed per reliability bin
    ece_cols = np.eye(n_bins)[confidence_bins(conf, n_bins)] * gap[:, None]
    cols = np.c_[np.c_[y & called, y & ~called, ~y & ~called, ~y & called, np.asarray(normal, bool),
                       np.ones(len(y), bool)].astype(float), ece_cols]
    m = np.zeros((n_u, n_g, cols.shape[1]))
    np.add.at(m, (u, g), cols)
    auc, paired_auc = np.empty(n_boot), _PairedAUC(y, p, u, g)
    wt, ct = np.ascontiguousarray(w.T, float), np.ascontiguousarray(c.T, float)
    totals = np.empty((n_boot, cols.shape[1]))
    for lo in range(0, n_boot, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        totals[sl] = stats.two_way_sums(m, w[sl], c[sl])
        auc[sl] = paired_auc(wt[:, sl], ct[:, sl])
    point, reps = _rates(m[..., :6].sum((0, 1))), _rates(totals[:, :6])
    out = {k: (float(point[k]), reps[k]) for k in point}
    if not has_t:
        out["sensitivity"] = out["specificity"] = (math.nan, np.full(n_boot, math.nan))
    out["auc"] = (float(roc_auc_score(yi, p)) if 0 < y.sum() < len(y) else math.nan, auc)
    out["ece"] = (expected_calibration_error(yi, binary, n_bins), np.abs(totals[:, 6:]).sum(1) / totals[:, 5])
    return out


class _PairedAUC:
    """Weighted AUC of fixed scores under many weightings, for rows whose weight is ``w[unit] * c[cluster]``.

    The Mann-Whitney form of :func:`bcdet_helpers.research.external._auc_replicates` (each positive's weight times
    the negative weight below it, ties a half): with the negatives sorted by score once and their weights
    cumulated (``C``, a zero row first), a positive at score ``s`` has ``C[left(s)]`` below it and
    ``C[right(s)] - C[left(s)]`` tied, so its term is ``(C[left] + C[right]) / 2`` -- cumulative sums and
    gathers only, in the ``(rows, resamples)`` layout where both run over contiguous memory."""

    def __init__(self, y, p, u, g):
        neg = np.flatnonzero(~y)
        neg = neg[np.argsort(p[neg], kind="mergesort")]
        pos = np.flatnonzero(y)
        self.u_neg, self.g_neg, self.u_pos, self.g_pos = u[neg], g[neg], u[pos], g[pos]
        self.left = np.searchsorted(p[neg], p[pos], side="left")
        self.right = np.searchsorted(p[neg], p[pos], side="right")

    def __call__(self, wt: np.ndarray, ct: np.ndarray) -> np.ndarray:
        """AUC per column of the unit weights ``wt`` ``(U, B)`` and cluster weights ``ct`` ``(G, B)``."""
        w_pos = wt[self.u_pos] * ct[self.g_pos]
        cum = np.zeros((len(self.u_neg) + 1, wt.shape[1]))
        np.cumsum(wt[self.u_neg] * ct[self.g_neg], axis=0, out=cum[1:])
        num = (w_pos * (cum[self.left] + cum[self.right])).sum(0) / 2
        den = w_pos.sum(0) * cum[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)


def _auc_rows(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted AUC per row of scores ``s`` and weights ``w`` (both ``(B, n)``; truth ``y`` ``(n,)``): each
    resample with its own scores (an ensemble of the drawn replicates). Ties count a half, as in
    ``roc_auc_score(y, s[b], sample_weight=w[b])``."""
    order = np.argsort(s, axis=1, kind="stable")
    ss, ws, ys = np.take_along_axis(s, order, 1), np.take_along_axis(w.astype(float), order, 1), y[order]
    pos, neg = ws * ys, ws * ~ys
    inclusive = np.cumsum(neg, axis=1)
    n = s.shape[1]
    idx = np.broadcast_to(np.arange(n), ss.shape)
    change = ss[:, 1:] != ss[:, :-1]
    first = np.ones(ss.shape, bool)
    first[:, 1:] = change
    last = np.ones(ss.shape, bool)
    last[:, :-1] = change
    start = np.maximum.accumulate(np.where(first, idx, 0), axis=1)  # first index of each tie block
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]  # its last index
    below = np.take_along_axis(inclusive - neg, start, 1)
    tied = np.take_along_axis(inclusive, end, 1) - below
    den = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (pos * (below + 0.5 * tied)).sum(1) / den, np.nan)


def _ece_rows(y: np.ndarray, s: np.ndarray, w: np.ndarray, n_bins: int) -> np.ndarray:
    """The malignant-or-not ECE per row of scores ``s`` and weights ``w`` (``(B, n)``), binned as
    :func:`~bcdet_helpers.uncertainty.reliability` bins ``[1 - s, s]``."""
    conf = np.maximum(s, 1 - s)
    correct = ((s > 1 - s) == y).astype(float)  # argmax of [1 - s, s] takes the first on a tie
    bins = confidence_bins(conf, n_bins)
    gap = np.zeros(len(s))
    for k in range(n_bins):
        gap += np.abs((w * (bins == k) * (correct - conf)).sum(1))
    return gap / w.sum(1)


def _ensemble_reps(y, proba, t_units, clusters, cluster_labels, *, n_boot: int, seed: int,
                   n_bins: int = N_BINS) -> dict:
    """``{metric: (point, replicates)}`` of the ensemble: ``proba`` ``(U, N, K)`` each training replicate's
    mean (flip-TTA) probabilities of the N images, ``t_units`` ``(U,)`` the mean of its runs' thresholds.
    Resample ``b`` is the ensemble of the drawn replicates (weights ``w[b]``) at the same mean of their
    thresholds, scored on the drawn patients; the point estimate is every replicate once."""
    y = np.asarray(y, bool)
    n_u = proba.shape[0]
    g = _codes_in(clusters, cluster_labels)
    w, c = stats.two_way_counts(n_u, len(cluster_labels), n_boot, seed)

    def score(wu: np.ndarray, wg: np.ndarray) -> dict:
        wn = wu / wu.sum(1, keepdims=True)
        pb = np.einsum("bu,unk->bnk", wn, proba)
        pm = pb[..., MALIGNANT]
        weights = wg[:, g].astype(float)
        tb = wn @ t_units
        called = pm >= tb[:, None]
        normal = pb.argmax(-1) == NORMAL
        with np.errstate(invalid="ignore", divide="ignore"):
            sens = (weights * (y & called)).sum(1) / (weights * y).sum(1)
            spec = (weights * (~y & ~called)).sum(1) / (weights * ~y).sum(1)
        if not np.isfinite(t_units).all():
            sens = spec = np.full(len(wu), np.nan)
        return {"auc": _auc_rows(y, pm, weights), "sensitivity": sens, "specificity": spec,
                "predicted_normal": (weights * normal).sum(1) / weights.sum(1), "ece": _ece_rows(y, pm, weights, n_bins)}

    point = score(np.ones((1, n_u)), np.ones((1, len(cluster_labels))))
    parts = [score(w[lo:lo + _CHUNK], c[lo:lo + _CHUNK]) for lo in range(0, n_boot, _CHUNK)]
    return {k: (float(point[k][0]), np.concatenate([p[k] for p in parts])) for k in point}


def _intervals(reps: dict, alpha: float) -> dict[str, Interval]:
    return {k: stats._interval(v, r, alpha) for k, (v, r) in reps.items()}
