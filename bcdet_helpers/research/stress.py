"""Acquisition-shift stress tests (issue #30, item 5): how a BUSI model's scores fall when the
images look as if another scanner or operator had taken them -- the graded shifts of
:mod:`bcdet_helpers.research.shifts`.

* :func:`stress_curves` -- a ``predict`` callable scored at every (shift, severity): accuracy,
  balanced accuracy and malignant AUC with group-clustered bootstrap intervals, as a tidy table;
  :func:`stress_run` does it for finished run folders (several folds of one arm pool into
  out-of-fold curves); :func:`plot_stress` draws it.

Which of those looks BUS-BRA has is measured by :mod:`bcdet_helpers.research.resemblance`. Everything is
deterministic given ``seed`` and cheap on a CPU: 780 images x 10 shifts x 4 severities is ~31 k
images of 64 x 64 through the model.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..busi import CLASSES
from .shifts import SEVERITIES, SHIFTS, apply_shift

__all__ = ["stress_curves", "score_curves", "stress_run", "plot_stress"]

MALIGNANT = CLASSES.index("malignant")


# ---------------------------------------------------------------------------------- stress curves
def _group_codes(groups, n: int) -> np.ndarray:
    labels = np.arange(n) if groups is None else np.asarray(groups)
    if len(labels) != n:
        raise ValueError(f"groups has {len(labels)} entries for {n} images")
    return np.unique(labels, return_inverse=True)[1].ravel()


def score_curves(probas: dict, y, groups=None, *, n_boot: int | None = None, seed: int = 0,
                 alpha: float = 0.05) -> pd.DataFrame:
    """``probas``: ``{(shift, severity): proba (N, K)}`` of the same N images -> the tidy table of
    :func:`stress_curves`. Every (shift, severity) is scored on the *same* group resamples (counts
    from :func:`~bcdet_helpers.research.stats.resample_counts` with ``seed``), for all three metrics:
    accuracy from :func:`~bcdet_helpers.research.stats.cluster_bootstrap`, balanced accuracy from the same
    confusion-matrix resamples, malignant AUC (malignant vs the rest) from the same groups' weights
    (:func:`~bcdet_helpers.research.external.patient_weights`, the weighted Mann-Whitney AUC)."""
    from sklearn.metrics import roc_auc_score

    from .external import _auc_replicates, patient_weights
    from ..profiles import DEFAULTS
    from .stats import _interval, cluster_bootstrap, group_confusions, resample_counts, scores_from_confusion

    n_boot = DEFAULTS.bootstrap if n_boot is None else n_boot
    y = np.asarray(y, int)
    codes = _group_codes(groups, len(y))
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    counts = resample_counts(n_groups, n_boot, seed)
    weights = patient_weights(codes, n_boot, seed)  # the same draws, per image
    is_mal = y == MALIGNANT
    rows = []
    for (shift, severity), proba in probas.items():
        proba = np.asarray(proba, float)
        k = proba.shape[1]
        acc = cluster_bootstrap(y, proba, codes, n_classes=k, n_boot=n_boot, seed=seed, alpha=alpha)["accuracy"]
        m = group_confusions(y, proba, codes, n_groups, k)
        point = scores_from_confusion(m.sum(0).reshape(k, k))["balanced_accuracy"]
        reps = scores_from_confusion((counts @ m).reshape(-1, k, k))["balanced_accuracy"]
        bal = _interval(float(point), reps, alpha)
        if is_mal.all() or not is_mal.any():
            auc = _interval(math.nan, np.array([]), alpha)
        else:
            p = proba[:, MALIGNANT]
            auc = _interval(float(roc_auc_score(is_mal, p)), _auc_replicates(is_mal, p, weights), alpha)
        for metric, iv in (("accuracy", acc), ("balanced_accuracy", bal), ("malignant_auc", auc)):
            rows.append({"shift": shift, "severity": int(severity), "metric": metric,
                         "value": iv.value, "low": iv.low, "high": iv.high})
    return pd.DataFrame(rows, columns=["shift", "severity", "metric", "value", "low", "high"])


def _shifted_probas(parts, shifts, severities, seed) -> tuple[dict, np.ndarray, np.ndarray]:
    """Predict every part (``(predict, images, y, groups)``, e.g. one per fold with its own model)
    under every (shift, severity) and stack the parts; severity 0 is predicted once and shared."""
    probas: dict = {}
    plain = [np.asarray(predict(images), float) for predict, images, _, _ in parts]
    for shift in shifts:
        for s in severities:
            if s == 0:
                probas[(shift, 0)] = np.concatenate(plain)
                continue
            probas[(shift, int(s))] = np.concatenate([
                np.asarray(predict(apply_shift(images, shift, s, seed, shifts)), float)
                for predict, images, _, _ in parts])
    y = np.concatenate([np.asarray(yi, int) for _, _, yi, _ in parts])
    if len(parts) == 1:  # the caller's own labels: the same resamples as cluster_bootstrap(y, pred, groups)
        groups = parts[0][3]
    else:  # group ids are global (the index's), so a group split over several parts stays one group
        groups = np.concatenate([np.asarray(gi if gi is not None else [f"part{j}/{i}" for i in range(len(yi))],
                                            dtype=object).astype(str) for j, (_, _, yi, gi) in enumerate(parts)])
    return probas, y, groups


def stress_curves(predict, images: torch.Tensor, y, groups=None, shifts=SHIFTS, severities=SEVERITIES, seed: int = 0,
                  n_boot: int | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Score ``predict`` (uint8 images ``(N, C, S, S)`` -> class probabilities ``(N, 3)``) on
    ``images`` under every shift of ``shifts`` at every severity.

    Returns a tidy table, one row per (shift, severity, metric): ``shift, severity, metric, value,
    low, high`` with ``metric`` in accuracy, balanced_accuracy, malignant_auc (malignant vs the
    rest) and a ``1 - alpha`` percentile interval from a bootstrap over ``groups`` (BUSI's
    near-duplicate groups, so copies of a scan are drawn together; ``None``: every image its own
    group). Severity 0 (the unchanged images) is listed under every shift, so each curve starts at
    the same point. Shifted images come from :func:`apply_shift` with ``seed``."""
    probas, y, groups = _shifted_probas([(predict, images, y, groups)], shifts, severities, seed)
    return score_curves(probas, y, groups, n_boot=n_boot, seed=seed, alpha=alpha)


def _run_groups(data, groups):
    """The near-duplicate group of each test image: ``groups`` (a ``{file: group}`` dict), else the
    split CSV :func:`~bcdet_helpers.data.load_split_data` wrote, else each image its own group."""
    files = data.files_of("test")
    if groups is None:
        csv = (data.meta or {}).get("split_csv")
        if csv and Path(csv).exists():
            table = pd.read_csv(csv)
            groups = dict(zip(table["file"], table["group"]))
    if groups is None:
        return None
    return [str(groups.get(f, f"file:{f}")) for f in files]


def stress_run(run_dir, data, device="cpu", *, weights: str = "last", groups: dict | None = None, shifts=SHIFTS,
               severities=SEVERITIES, seed: int = 0, n_boot: int | None = None) -> pd.DataFrame:
    """:func:`stress_curves` for finished run folders, on each run's test part.

    ``run_dir``: a run folder (``runs/<profile>/<arm>-grouped-fold0-seed0``), ``data`` its
    :class:`~bcdet_helpers.data.SplitData` (``load_split_data(profile, kind, seed, fold)``, as
    :func:`bcdet_helpers.research.study.cv.predict_run` uses it). Lists of both -- the folds of one arm --
    give the *out-of-fold* curves: each fold's test images through its own model, pooled, then
    scored once. ``weights``: ``"last"`` (the study's rule) or ``"best"``. The table gets the
    run's ``arm`` as a first column, so arms concatenate into one table for
    :func:`plot_stress`."""
    from ..checkpoints import load_checkpoint
    from ..evaluate import predict_proba

    run_dirs = list(run_dir) if isinstance(run_dir, (list, tuple)) else [run_dir]
    datas = list(data) if isinstance(data, (list, tuple)) else [data]
    if len(run_dirs) != len(datas):
        raise ValueError(f"{len(run_dirs)} run folders but {len(datas)} SplitData")
    parts, arms = [], set()
    for rd, d in zip(run_dirs, datas):
        model, meta = load_checkpoint(Path(rd) / f"{weights}.pt", device=device)
        arms.add(meta.get("schedule"))
        x, yt = d.part("test")

        def predict(images, model=model, meta=meta):
            return predict_proba(model, images, meta["mean"], meta["std"], device=device)

        parts.append((predict, x, yt.numpy(), _run_groups(d, groups)))
    probas, y, g = _shifted_probas(parts, shifts, severities, seed)
    out = score_curves(probas, y, g, n_boot=n_boot, seed=seed)
    out.insert(0, "arm", "+".join(sorted(map(str, arms))))
    out.attrs["runs"] = [str(r) for r in run_dirs]
    return out


def plot_stress(curves: pd.DataFrame, metrics=None, title: str = ""):
    """One panel per metric, one line per shift, severity on x with the interval as a band; with
    an ``arm`` column holding several arms, one row of panels per arm (same y axes). Returns the
    matplotlib Figure (made without pyplot, so Jupyter shows it once)."""
    from matplotlib.figure import Figure

    metrics = list(metrics or dict.fromkeys(curves["metric"]))
    arms = list(dict.fromkeys(curves["arm"])) if "arm" in curves else [None]
    fig = Figure(figsize=(4.2 * len(metrics) + 1.4, 3.4 * len(arms) + 0.6), layout="constrained")
    axes = fig.subplots(len(arms), len(metrics), squeeze=False, sharex=True, sharey="col")
    shifts = list(dict.fromkeys(curves["shift"]))
    colors = {s: f"C{i % 10}" for i, s in enumerate(shifts)}
    for r, arm in enumerate(arms):
        part = curves if arm is None else curves[curves["arm"] == arm]
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            for shift in shifts:
                d = part[(part["metric"] == metric) & (part["shift"] == shift)].sort_values("severity")
                if d.empty:
                    continue
                ax.plot(d["severity"], d["value"], marker="o", ms=3, color=colors[shift], label=shift)
                ax.fill_between(d["severity"], d["low"], d["high"], color=colors[shift], alpha=0.08, lw=0)
            ax.set_title(metric.replace("_", " ") + ("" if arm is None else f" -- {arm}"))
            ax.set_xticks(sorted(part["severity"].unique()))
            ax.grid(alpha=0.3)
            if r == len(arms) - 1:
                ax.set_xlabel("severity (0 = unchanged)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="shift")  # beside, not over, the curves
    if title:
        fig.suptitle(title)
    return fig
