"""How sure is a number? Bootstrap intervals, calibration, and paired comparisons over seeds.

Taught in notebook 05. All of it works on plain arrays (``y_true`` class indices, ``proba`` rows of
class probabilities) or on one score per run:

* :func:`bootstrap_ci`   -- percentile confidence interval of any metric (the test set is small!);
  its resample count is the profile's ``bootstrap`` (:func:`bootstrap_count`), never a literal
* :func:`reliability` / :func:`expected_calibration_error` -- are the confidences honest?
* :func:`paired_comparison` -- arm A vs B over seeds, paired on the same splits
"""
from __future__ import annotations

import math

import numpy as np

from .metrics import accuracy, check_predictions


def bootstrap_count(profile=None) -> int:
    """Bootstrap resamples for ``profile`` (a name or a Profile): its ``bootstrap`` field; for
    ``None`` or a name the table does not know (a checkpoint from elsewhere), the table's default."""
    from .profiles import DEFAULTS, get_profile

    if profile is not None:
        try:
            return int(get_profile(profile).bootstrap)
        except ValueError:
            pass
    return int(DEFAULTS.bootstrap)


def bootstrap_ci(y_true, proba, metric_fn=accuracy, n: int | None = None, seed: int = 0, alpha: float = 0.05) -> dict:
    """Percentile bootstrap confidence interval of ``metric_fn(y_true, proba)``.

    Draw ``n`` (default :func:`bootstrap_count`: the profile table's) test sets of the same size *with replacement* from the one we have, score each,
    and take the ``alpha/2`` and ``1 - alpha/2`` quantiles. This answers "how much would the
    number move on another test set of this size from the same source?" -- it says nothing about
    other hospitals or scanners. Resamples on which the metric is undefined (``nan``) are dropped.

    Returns ``{"value", "low", "high", "alpha", "n_boot", "n"}``.
    """
    y_true, proba = check_predictions(y_true, proba)
    n = bootstrap_count() if n is None else n
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


def confidence_bins(conf, n_bins: int = 10) -> np.ndarray:
    """The :func:`reliability` bin (0..n_bins-1) of each confidence: bin i holds low < conf <= high of
    ``n_bins`` equal-width bins on [0, 1] (the first bin also takes conf == 0). Public so a weighted
    or resampled ECE (:mod:`bcdet_helpers.research.external`) bins exactly as :func:`reliability` does."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, np.asarray(conf, dtype=float), side="left") - 1, 0, n_bins - 1)


def reliability(y_true, proba, n_bins: int = 10) -> list[dict]:
    """Reliability-diagram data: the top-class confidence split into ``n_bins`` equal-width bins.

    Each bin: ``low``, ``high``, ``count``, ``confidence`` (mean top probability) and ``accuracy``
    (fraction right). A calibrated model has accuracy == confidence in every bin. Empty bins have
    ``count`` 0 and ``nan`` means.
    """
    y_true, proba = check_predictions(y_true, proba)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = confidence_bins(conf, n_bins)
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


def paired_comparison(a, b, names=("switching", "constant"), alpha: float = 0.05) -> dict:
    """Compare two arms run on the *same* splits and seeds: ``a[i]`` and ``b[i]`` pair up.

    Pairing removes the split-to-split variation both arms share, which is usually larger
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
