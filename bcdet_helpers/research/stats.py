"""Statistics for the cross-validated study: clustered bootstrap, paired differences, the
Nadeau-Bengio corrected t-test and the smallest difference a design can detect.

Everything works on plain arrays, so it can be checked by hand (``tests/test_stats.py``):

* :func:`cluster_bootstrap` -- pooled accuracy, macro-F1 and per-class recall with percentile
  CIs from a bootstrap that resamples *clusters* (BUSI's near-duplicate groups), not images.
* :func:`paired_cluster_bootstrap` -- the difference of two sets of predictions on the same
  images (two arms, or two kinds), resampling the same clusters for both.
* :func:`hierarchical_bootstrap` / :func:`paired_hierarchical_bootstrap` -- the same, but also
  resampling the *trained models*: training replicates (fold partition x seed) and groups are
  drawn independently, so the interval carries training variance too (the verdict's intervals).
* :func:`corrected_ttest` -- Nadeau & Bengio's corrected resampled t-test; :func:`repeated_cv_ttest`
  applies it to what it was derived for: one difference per (partition, fold), seeds averaged.
* :func:`detectable_difference` / :func:`power_at` -- what a design with a given standard error
  can and cannot detect.

Why clusters. BUSI has near-duplicate scans (re-crops, re-exports, the same lesion twice). Two
copies of one scan are not two independent test cases: a model that gets one right almost always
gets the other right. An image-level bootstrap counts them as independent and its intervals come
out too narrow. Resampling whole groups (a singleton is its own group) keeps the copies together,
which is the standard cluster bootstrap (Davison & Hinkley 1997, sec. 3.8; Field & Welsh 2007).

How it is fast. A resample is a vector of counts -- how often each group was drawn. The
confusion matrix of a resample is then ``counts @ M`` where ``M`` (groups x K*K) holds each
group's own confusion matrix, so 2000 resamples are one matrix product, and rows of several
seeds of the same image simply add into their group's ``M``.

Over 350 lines on purpose: the verdict's recorded analysis (``study.result.VERDICT_ANALYSIS``, kept in
every ``study.json``) names its methods as ``stats.*``, so the bootstrap and the t-test stay in the module it
names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import scores_from_confusion  # the one definition of accuracy / macro-F1 / recall
from ..profiles import DEFAULTS

__all__ = [
    "CorrectedTTest",
    "Interval",
    "bootstrap_detectable_difference",
    "cluster_bootstrap",
    "corrected_ttest",
    "hierarchical_bootstrap",
    "paired_hierarchical_bootstrap",
    "repeated_cv_ttest",
    "detectable_difference",
    "group_confusions",
    "paired_cluster_bootstrap",
    "power_at",
    "resample_counts",
    "scores_from_confusion",
    "two_way_counts",
    "two_way_sums",
]


@dataclass
class Interval:
    """A point estimate with a percentile confidence interval and the bootstrap standard error."""

    value: float
    low: float
    high: float
    se: float  # standard deviation of the bootstrap replicates
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def __format__(self, spec: str) -> str:
        spec = spec or ".3f"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


# ----------------------------------------------------------------------------------- bootstrap core
def _codes(groups) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, labels)``: each row's group as 0..G-1, and the group label of each code."""
    labels, codes = np.unique(np.asarray(groups), return_inverse=True)
    return codes.ravel(), labels


def _pred(pred_or_proba) -> np.ndarray:
    a = np.asarray(pred_or_proba)
    return (a.argmax(axis=1) if a.ndim == 2 else a).astype(int)


def resample_counts(n_groups: int, n_boot: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``(n_boot, n_groups)`` counts: how often each group is drawn in each bootstrap resample
    (``n_groups`` draws with replacement, so every row sums to ``n_groups``)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    flat = draws + n_groups * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_groups).reshape(n_boot, n_groups)


def group_confusions(y, pred, codes, n_groups: int, n_classes: int) -> np.ndarray:
    """``(n_groups, K*K)``: the confusion matrix (rows = truth) of each group's rows, flattened."""
    y, pred, codes = np.asarray(y, int), _pred(pred), np.asarray(codes, int)
    if not (len(y) == len(pred) == len(codes)):
        raise ValueError(f"y, pred and groups must be equally long, got {len(y)}, {len(pred)}, {len(codes)}")
    k2 = n_classes * n_classes
    cell = codes * k2 + y * n_classes + pred
    return np.bincount(cell, minlength=n_groups * k2).reshape(n_groups, k2).astype(float)


def _interval(value: float, replicates: np.ndarray, alpha: float) -> Interval:
    reps = np.asarray(replicates, float)
    reps = reps[~np.isnan(reps)]
    if len(reps) < 2 or (isinstance(value, float) and math.isnan(value)):
        return Interval(float(value), math.nan, math.nan, math.nan, 1 - alpha)
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return Interval(float(value), float(low), float(high), float(reps.std(ddof=1)), 1 - alpha)


def cluster_bootstrap(y, pred, groups=None, *, n_classes: int = 3, n_boot: int = DEFAULTS.bootstrap, seed: int = 0,
                      alpha: float = 0.05) -> dict:
    """Pooled accuracy, macro-F1 and per-class recall, each with a clustered bootstrap CI.

    ``y``: true class per row; ``pred``: predicted class per row (or probabilities, arg-maxed);
    ``groups``: the cluster of each row -- near-duplicate group ids, so all copies of a scan (and
    all seeds' predictions of one image) are drawn together. ``groups=None`` makes every row its
    own cluster: the ordinary image-level bootstrap, too narrow when rows are not independent.

    Returns ``{"accuracy": Interval, "macro_f1": Interval, "recall": [Interval per class],
    "n_rows": int, "n_groups": int}``.
    """
    y = np.asarray(y, int)
    pred = _pred(pred)
    codes, labels = _codes(np.arange(len(y)) if groups is None else groups)
    m = group_confusions(y, pred, codes, len(labels), n_classes)
    point = scores_from_confusion(m.sum(0).reshape(n_classes, n_classes))
    reps = scores_from_confusion((resample_counts(len(labels), n_boot, seed) @ m).reshape(-1, n_classes, n_classes))
    return {
        "accuracy": _interval(float(point["accuracy"]), reps["accuracy"], alpha),
        "macro_f1": _interval(float(point["macro_f1"]), reps["macro_f1"], alpha),
        "recall": [_interval(float(point["recall"][k]), reps["recall"][:, k], alpha) for k in range(n_classes)],
        "n_rows": len(y),
        "n_groups": len(labels),
    }


def paired_cluster_bootstrap(y_a, pred_a, groups_a, y_b, pred_b, groups_b, *, n_classes: int = 3,
                             n_boot: int = DEFAULTS.bootstrap, seed: int = 0, alpha: float = 0.05) -> dict:
    """The difference ``A - B`` of pooled accuracy and macro-F1, with a clustered *paired* CI.

    A and B are two sets of predictions of the same images (two arms; or the random and the
    grouped split), possibly with several rows per image (seeds). Each resample draws clusters
    once and scores *both* A and B on the drawn clusters, so what the two share -- which scans are
    easy -- cancels in the difference, and copies of a scan stay together. ``groups_a``/``groups_b``
    use the same cluster ids (a cluster may have rows in only one of them). ``groups_* = None``
    would need row-aligned A and B: pass the file names instead for an image-level paired bootstrap.

    Returns ``{"accuracy": Interval, "macro_f1": Interval, "n_groups": int}``; ``Interval.se`` is
    the bootstrap standard error of the difference.
    """
    ya, pa, yb, pb = np.asarray(y_a, int), _pred(pred_a), np.asarray(y_b, int), _pred(pred_b)
    ga, gb = np.asarray(groups_a), np.asarray(groups_b)
    labels, codes = np.unique(np.concatenate([ga, gb]), return_inverse=True)
    codes = codes.ravel()
    ca, cb = codes[: len(ga)], codes[len(ga):]
    g = len(labels)
    ma = group_confusions(ya, pa, ca, g, n_classes)
    mb = group_confusions(yb, pb, cb, g, n_classes)
    shape = (-1, n_classes, n_classes)
    pa_, pb_ = scores_from_confusion(ma.sum(0).reshape(shape)), scores_from_confusion(mb.sum(0).reshape(shape))
    counts = resample_counts(g, n_boot, seed)
    ra, rb = scores_from_confusion((counts @ ma).reshape(shape)), scores_from_confusion((counts @ mb).reshape(shape))
    out = {key: _interval(float(pa_[key][0] - pb_[key][0]), ra[key] - rb[key], alpha)
           for key in ("accuracy", "macro_f1")}
    out["n_groups"] = int(g)
    return out


# -------------------------------------------------------------- training variance: two-way bootstrap
def _unit_confusions(y, pred, g_codes, u_codes, n_groups: int, n_units: int, n_classes: int) -> np.ndarray:
    """``(U, G, K*K)``: the confusion of each (training replicate, group)'s rows (codes from :func:`_codes`)."""
    y, pred = np.asarray(y, int), _pred(pred)
    out = np.zeros((n_units, n_groups, n_classes * n_classes))
    for u in range(n_units):
        sel = u_codes == u
        out[u] = group_confusions(y[sel], pred[sel], g_codes[sel], n_groups, n_classes)
    return out


def two_way_counts(n_units: int, n_groups: int, n_boot: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(w, c)``: the draws of the crossed two-way bootstrap -- ``w`` ``(n_boot, n_units)`` how often each
    training replicate is drawn, ``c`` ``(n_boot, n_groups)`` how often each cluster is, independently and
    with replacement (:func:`resample_counts`). A row seen by replicate ``u`` in cluster ``g`` counts
    ``w[b, u] * c[b, g]`` times in resample ``b``. The same ``seed`` and sizes give the same draws, which is
    what pairs two arms' resamples (:func:`paired_hierarchical_bootstrap`,
    :mod:`bcdet_helpers.research.study.external_bootstrap`)."""
    rng = np.random.default_rng(seed)
    return resample_counts(n_units, n_boot, rng), resample_counts(n_groups, n_boot, rng)


def two_way_sums(m: np.ndarray, w: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``(n_boot, K)``: ``sum_u sum_g w[b, u] * c[b, g] * m[u, g, k]`` -- the resampled totals of any
    additive per-(replicate, cluster) counts ``m`` ``(U, G, K)`` under the draws of :func:`two_way_counts`."""
    return np.einsum("bg,bgk->bk", c, np.einsum("bu,ugk->bgk", w, m))


def _two_way_replicates(m: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, K*K)`` pooled confusions: each resample draws the training replicates and the groups
    independently, with replacement (Owen's pigeonhole bootstrap for a crossed design: every trained
    model predicted every image), and adds ``w_u * c_g * M[u, g]``."""
    return two_way_sums(m, *two_way_counts(m.shape[0], m.shape[1], n_boot, seed))


def hierarchical_bootstrap(y, pred, groups, units, *, n_classes: int = 3, n_boot: int = DEFAULTS.bootstrap,
                           seed: int = 0, alpha: float = 0.05) -> dict:
    """Pooled accuracy and macro-F1 with an interval that includes *training* variance.

    :func:`cluster_bootstrap` holds the trained models fixed: it answers "another test set, the same
    models". But pooled accuracy moves by up to 4 points between seeds (issue #28), so a claim about
    the *method* must also ask "other models trained the same way". ``units`` names each row's training
    replicate -- its (fold partition, seed), whose runs together predict every image once. Each resample
    draws the replicates and the near-duplicate groups independently (a crossed two-way bootstrap:
    Owen 2007, *Ann. Appl. Stat.* 1:246; conservative, i.e. it errs wide) and scores the pooled
    confusion. With one replicate it equals :func:`cluster_bootstrap`'s resampling of groups.

    Returns ``{"accuracy", "macro_f1", "balanced_accuracy": Interval, "recall": [Interval per class],
    "n_groups": int, "n_units": int}`` (with ``n_classes=2`` and truth/prediction "is it malignant?",
    ``recall`` is ``[specificity, sensitivity]``).
    """
    (g_codes, g_labels), (u_codes, u_labels) = _codes(groups), _codes(units)
    m = _unit_confusions(y, pred, g_codes, u_codes, len(g_labels), len(u_labels), n_classes)
    shape = (-1, n_classes, n_classes)
    point = scores_from_confusion(m.sum((0, 1)).reshape(shape))
    reps = scores_from_confusion(_two_way_replicates(m, n_boot, seed).reshape(shape))
    out = {k: _interval(float(point[k][0]), reps[k], alpha) for k in ("accuracy", "macro_f1", "balanced_accuracy")}
    out["recall"] = [_interval(float(point["recall"][0][k]), reps["recall"][:, k], alpha) for k in range(n_classes)]
    return {**out, "n_groups": len(g_labels), "n_units": len(u_labels)}


def paired_hierarchical_bootstrap(y_a, pred_a, groups_a, units_a, y_b, pred_b, groups_b, units_b, *,
                                  n_classes: int = 3, n_boot: int = DEFAULTS.bootstrap, seed: int = 0,
                                  alpha: float = 0.05) -> dict:
    """``A - B`` of pooled accuracy and macro-F1 with training variance in the interval: the paired form
    of :func:`hierarchical_bootstrap`. A and B must share their training replicates (the same fold
    partitions and seeds -- a paired design); each resample draws the same replicates and groups for
    both, so what they share cancels and what differs between seeds stays in the interval. Returns the
    differences of ``accuracy``, ``macro_f1``, ``balanced_accuracy`` and each class's ``recall`` (a list)."""
    if set(np.unique(units_a)) != set(np.unique(units_b)):
        raise ValueError("paired_hierarchical_bootstrap needs the same training replicates for A and B, got "
                         f"{sorted(set(np.unique(units_a)))} and {sorted(set(np.unique(units_b)))}")
    (g_codes, g_labels), (u_codes, u_labels) = (_codes(np.concatenate([np.asarray(a), np.asarray(b)]))
                                                 for a, b in ((groups_a, groups_b), (units_a, units_b)))
    n_a = len(groups_a)
    ms = [_unit_confusions(y, pred, g_codes[rows], u_codes[rows], len(g_labels), len(u_labels), n_classes)
          for y, pred, rows in ((y_a, pred_a, slice(0, n_a)), (y_b, pred_b, slice(n_a, None)))]
    shape = (-1, n_classes, n_classes)
    pa, pb = (scores_from_confusion(m.sum((0, 1)).reshape(shape)) for m in ms)
    ra, rb = (scores_from_confusion(_two_way_replicates(m, n_boot, seed).reshape(shape)) for m in ms)  # same draws
    out = {k: _interval(float(pa[k][0] - pb[k][0]), ra[k] - rb[k], alpha) for k in ("accuracy", "macro_f1",
                                                                                   "balanced_accuracy")}
    out["recall"] = [_interval(float(pa["recall"][0][k] - pb["recall"][0][k]), ra["recall"][:, k] - rb["recall"][:, k],
                               alpha) for k in range(n_classes)]  # with n_classes=2: [specificity, sensitivity]
    return {**out, "n_groups": len(g_labels), "n_units": len(u_labels)}


# ----------------------------------------------------------------------- corrected resampled t-test
@dataclass
class CorrectedTTest:
    """Nadeau-Bengio corrected resampled t-test of ``n`` paired differences (see
    :func:`corrected_ttest`)."""

    n: int  # J: the number of (fold, seed) differences
    mean: float
    sd: float  # sample standard deviation of the differences (ddof=1)
    n_train: float  # training images per run (mean over runs)
    n_test: float  # scored test images per run (mean over runs)
    se: float  # corrected standard error sqrt((1/J + n_test/n_train) * sd^2)
    naive_se: float  # sd / sqrt(J): what an ordinary paired t-test would use
    t: float
    df: int
    p: float  # two-sided
    low: float  # (1 - alpha) confidence interval of the mean difference, with the corrected se
    high: float
    alpha: float = 0.05


def corrected_ttest(differences, n_train: float, n_test: float, alpha: float = 0.05) -> CorrectedTTest:
    """Nadeau & Bengio's (2003) corrected resampled t-test of paired differences.

    ``differences``: one score difference (arm A - arm B) per (fold, seed) run, A and B trained on
    the same training images. The runs of a cross-validation *share* most of their training data
    (any two 5-fold training sets overlap by 3/4; seeds of one fold train on the same images), so
    the differences are positively correlated and their plain variance ``sd^2 / J`` understates
    the variance of their mean -- an ordinary paired t-test over folds and seeds is far too
    eager to declare a winner. Nadeau & Bengio bound the correlation by ``n_test / n_train`` and
    replace ``1/J`` with ``1/J + n_test/n_train``:

        t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)),   df = J - 1

    (Bouckaert & Frank 2004 use the same correction for repeated k-fold cross-validation). Note
    the floor it sets: however many seeds are added, the standard error never falls below
    ``sqrt(n_test/n_train) * sd``.
    """
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    j = len(d)
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    if j < 2:
        mean = float(d.mean()) if j else math.nan
        return CorrectedTTest(j, mean, math.nan, float(n_train), float(n_test), math.nan, math.nan,
                              math.nan, max(j - 1, 0), math.nan, math.nan, math.nan, alpha)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = math.sqrt((1 / j + n_test / n_train) * sd**2)
    df = j - 1
    if se > 0:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), df))
    else:  # all differences equal
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
    q = float(stats.t.ppf(1 - alpha / 2, df))
    return CorrectedTTest(j, mean, sd, float(n_train), float(n_test), se, sd / math.sqrt(j), float(t), df, p,
                          mean - q * se, mean + q * se, alpha)


def repeated_cv_ttest(differences, folds, partitions=None, *, n_train: float, n_test: float,
                      alpha: float = 0.05) -> CorrectedTTest:
    """The corrected repeated k-fold cross-validation t-test (Nadeau & Bengio 2003; Bouckaert & Frank
    2004), applied to what it was derived for: one difference per (fold partition, fold).

    Seeds of one fold train on the *same* images, so they are not new splits: their differences are
    averaged within the fold first (``differences``, ``folds``, ``partitions`` are aligned per run; a
    missing ``partitions`` means one partition). The test then has ``J = partitions x folds``
    differences and ``J - 1`` degrees of freedom -- 5 for one 5-fold partition, however many seeds.
    """
    d = pd.DataFrame({"d": np.asarray(differences, float), "fold": np.asarray(folds),
                      "partition": 0 if partitions is None else np.asarray(partitions)})
    per_fold = d.groupby(["partition", "fold"], sort=True)["d"].mean()
    return corrected_ttest(per_fold.to_numpy(), n_train, n_test, alpha)


def detectable_difference(se: float, df: int | None = None, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at ``alpha`` detects with probability ``power``,
    given the standard error ``se`` of the estimated difference:
    ``(q_{1 - alpha/2} + q_{power}) * se`` with Student-t quantiles on ``df`` degrees of freedom
    (normal quantiles when ``df`` is None). At alpha 0.05 and 80 % power that is ~2.8 se
    (normal) -- more with few degrees of freedom."""
    from scipy import stats

    if se is None or not math.isfinite(se):
        return math.nan
    dist = stats.norm if df is None else stats.t(df)
    if df is not None and df < 1:
        return math.nan
    return float((dist.ppf(1 - alpha / 2) + dist.ppf(power)) * se)


def bootstrap_detectable_difference(interval: Interval, alpha: float = 0.05, power: float = 0.8) -> float:
    """:func:`detectable_difference` from a bootstrap interval's standard error (normal quantiles)."""
    return detectable_difference(interval.se, None, alpha, power)


def power_at(delta: float, se: float, df: int | None = None, alpha: float = 0.05) -> float:
    """Probability that a two-sided test at ``alpha`` with standard error ``se`` (t on ``df``
    degrees of freedom; normal when None) rejects "no difference" when the true difference is
    ``delta`` -- e.g. the paper's +9 points."""
    from scipy import stats

    if se is None or not math.isfinite(se) or se <= 0 or (df is not None and df < 1):
        return math.nan
    shift = delta / se
    if df is None:
        q = stats.norm.ppf(1 - alpha / 2)
        return float(stats.norm.sf(q - shift) + stats.norm.cdf(-q - shift))
    q = stats.t.ppf(1 - alpha / 2, df)
    nct = stats.nct(df, shift)
    return float(nct.sf(q) + nct.cdf(-q))
