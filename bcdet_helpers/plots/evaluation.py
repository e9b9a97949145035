"""Figures for evaluation (notebook 05 and ``bcdet evaluate``).

Each function takes numbers computed by :mod:`bcdet_helpers.evaluate` and returns a Figure. The two ladders
of chapter 05's last sections are :mod:`bcdet_helpers.plots.ladders`.
"""
from __future__ import annotations

import numpy as np

__all__: list[str] = [
    "confusion_matrices",
    "forest_pair",
    "forest_plot",
    "gradcam_panel",
    "image_grid",
    "reliability_diagram",
    "roc_curves",
    "arm_comparison",
]


def _figure(nrows: int, ncols: int, figsize):
    """A Figure and its axes grid, made without pyplot: nothing global to close, and Jupyter
    shows the returned figure exactly once (pyplot figures would also be shown by the inline
    backend). Works headless (scripts, the CLI)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _as_display(img) -> np.ndarray:
    """uint8 ``(1, H, W)`` / ``(3, H, W)`` / ``(H, W)`` -> something ``imshow`` draws."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] == 1:
        return img[0]
    if img.ndim == 3 and img.shape[0] == 3:
        return img.transpose(1, 2, 0)
    return img


def confusion_matrices(cm, classes, title: str = ""):
    """Seaborn heatmaps side by side: counts, and rows normalised to 1 (per-class recall on the
    diagonal) -- the counts show how few images a cell stands for, the rates compare classes of
    different size. ``cm``: one matrix, or ``{label: matrix}`` for one row of panels per model."""
    import seaborn as sns

    panels = cm if isinstance(cm, dict) else {title: cm}
    fig, axes = _figure(len(panels), 2, (9, 3.8 * len(panels)))
    for (label, m), (ax_n, ax_r) in zip(panels.items(), axes):
        m = np.asarray(m, dtype=float)
        rows = m.sum(axis=1, keepdims=True)
        rate = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
        sns.heatmap(m, annot=True, fmt=".0f", cmap="Blues", cbar=False, ax=ax_n,
                    xticklabels=classes, yticklabels=classes)
        sns.heatmap(rate, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax_r,
                    xticklabels=classes, yticklabels=classes)
        prefix = f"{label}: " if label else ""
        ax_n.set_title(f"{prefix}counts")
        ax_r.set_title(f"{prefix}row-normalised (recall on the diagonal)")
        for ax in (ax_n, ax_r):
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.tick_params(axis="y", rotation=0)  # horizontal class names: "malignant" fits
    if title and isinstance(cm, dict):
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc_curves(curves: dict, title: str = ""):
    """One-vs-rest ROC curves; ``curves`` is :func:`evaluate.roc_curves`' output
    ``{class: (fpr, tpr, auc)}`` or ``{label: that dict}`` for one panel per model."""
    panels = curves if curves and isinstance(next(iter(curves.values())), dict) else {title: curves}
    fig, axes = _figure(1, len(panels), (4.2 * len(panels), 4))
    for ax, (name, per_class) in zip(axes[0], panels.items()):
        for cls, (fpr, tpr, auc) in per_class.items():
            ax.plot(fpr, tpr, label=f"{cls} (AUC {auc:.2f})")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
        ax.set_xlabel("false-positive rate (1 - specificity)")
        ax.set_ylabel("true-positive rate (sensitivity)")
        ax.set_title(name)
        ax.legend(loc="lower right", fontsize=8)
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def reliability_diagram(bins_by_model: dict, ece_by_model: dict | None = None):
    """Reliability diagram: accuracy against confidence per bin (bars), the diagonal is perfect
    calibration; the bin counts are printed so an empty-looking bin is not over-read.
    ``bins_by_model``: ``{label: evaluate.reliability(...)}``."""
    n = len(bins_by_model)
    fig, axes = _figure(1, n, (4.2 * n, 4))
    for ax, (name, bins) in zip(axes[0], bins_by_model.items()):
        centers = [(b["low"] + b["high"]) / 2 for b in bins]
        width = bins[0]["high"] - bins[0]["low"]
        acc = [b["accuracy"] if b["count"] else 0 for b in bins]
        ax.bar(centers, acc, width=width * 0.95, color="tab:blue", alpha=0.75, label="accuracy in bin")
        conf = [b["confidence"] for b in bins if b["count"]]
        accs = [b["accuracy"] for b in bins if b["count"]]
        ax.plot(conf, accs, "o", c="tab:orange", ms=4, label="(mean confidence, accuracy)")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
        for c, b in zip(centers, bins):
            if b["count"]:
                ax.text(c, 0.02, str(b["count"]), ha="center", va="bottom", fontsize=7)
        ece = (ece_by_model or {}).get(name)
        ax.set_title(name + (f"  (ECE {ece:.3f})" if ece is not None else ""))
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


def arm_comparison(table, metric: str = "accuracy", reference: dict | None = None):
    """Per-run test ``metric`` by kind and arm (one dot per seed, a bar for the mean), with
    optional horizontal reference lines (``{"paper switching (90%)": 0.90, ...}``).
    ``table``: a DataFrame with columns kind, arm, seed and ``metric`` (e.g. a study's runs table)."""
    import seaborn as sns

    fig, axes = _figure(1, 1, (6.5, 4))
    ax = axes[0, 0]
    sns.barplot(data=table, x="kind", y=metric, hue="arm", errorbar=None, alpha=0.5, ax=ax)
    sns.stripplot(data=table, x="kind", y=metric, hue="arm", dodge=True, ax=ax, size=6,
                  edgecolor="black", linewidth=0.5, legend=False)
    for (label, value), style in zip((reference or {}).items(), ("--", ":", "-.", "-")):
        ax.axhline(value, ls=style, c="black", lw=1)
        ax.text(ax.get_xlim()[1], value, " " + label, va="center", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"test {metric} per run (dots = seeds, bars = mean)")
    fig.tight_layout()
    return fig


def forest_plot(table, claim: float | None = None, title: str = "", claim_label: str = "the paper's claim",
                metric: str = "accuracy"):
    """Paired differences with their CIs, one row each, in percentage points.

    ``table``: :meth:`study.Study.differences_table` (columns ``comparison``, ``question``,
    ``kind``, ``difference``, ``low``, ``high``; ``image_level_low`` / ``image_level_high`` drawn
    as a thin grey bar behind when present) -- or any frame with those columns, e.g. the leakage
    gaps. A dot is the pooled out-of-fold difference, the thick bar its 95 % CI from the bootstrap
    over near-duplicate groups. The solid line is "no difference"; ``claim`` (a fraction, e.g.
    0.09) adds a dashed line at what the paper reports. A CI that crosses the solid line cannot
    tell the arms apart; one that excludes the dashed line contradicts the claim."""
    import pandas as pd

    table = pd.DataFrame(table).reset_index(drop=True)
    fig, axes = _figure(1, 1, (7.5, 0.7 * max(1, len(table)) + 1.6))
    _forest(axes[0, 0], table, claim, title, claim_label, metric)
    fig.tight_layout()
    return fig


def forest_pair(left, right, claim: float | None = None, titles=("", ""), claim_label: str = "the paper's claim",
                metric: str = "accuracy"):
    """Two forest plots side by side on one x-axis scale -- e.g. one fold of this notebook's runs beside
    the recorded cross-validated verdict (notebook 05): ``left`` and ``right`` are tables as
    :func:`forest_plot` takes them."""
    import pandas as pd

    tables = [pd.DataFrame(t).reset_index(drop=True) for t in (left, right)]
    n = max(1, *(len(t) for t in tables))
    fig, axes = _figure(1, 2, (15, 0.7 * n + 1.8))
    spans = [_forest(ax, t, claim, title, claim_label, metric) for ax, t, title in zip(axes[0], tables, titles)]
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    for ax in axes[0]:
        ax.set_xlim(lo, hi)
    fig.tight_layout()
    return fig


def _forest(ax, table, claim, title, claim_label, metric) -> tuple[float, float]:
    """Draw one forest plot on ``ax``; returns its x-limits."""
    ys = np.arange(len(table))[::-1]
    labels = []
    for y, row in zip(ys, table.itertuples(index=False)):
        r = row._asdict()
        if "image_level_low" in r and np.isfinite(r["image_level_low"]):
            ax.plot([100 * r["image_level_low"], 100 * r["image_level_high"]], [y, y], color="0.75", lw=7,
                    solid_capstyle="butt", zorder=1, label="image-level CI (too narrow)" if y == ys[0] else None)
        ax.plot([100 * r["low"], 100 * r["high"]], [y, y], color="tab:blue", lw=2.5, zorder=2,
                label="95% CI, clustered over near-duplicate groups" if y == ys[0] else None)
        ax.plot([100 * r["difference"]], [y], "o", color="tab:blue", ms=7, zorder=3)
        text = f"{100 * r['difference']:+.1f} [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
        ax.annotate(text, (100 * r["high"], y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
        kind = f", {r['kind']}" if "kind" in r and table["kind"].nunique() > 1 else ""
        question = f"\n({r['question']})" if r.get("question") else ""
        labels.append(f"{r['comparison']}{kind}{question}")
    ax.axvline(0, color="black", lw=1)
    if claim is not None:
        ax.axvline(100 * claim, color="firebrick", ls="--", lw=1.2, label=f"{claim_label}: {100 * claim:+.0f} points")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_ylim(-0.7, max(1, len(table)) - 0.3)
    ax.set_xlabel(f"difference in {metric} (percentage points)")
    ends = [0.0] + ([100 * claim] if claim is not None else [])
    ends += [100 * v for c in ("low", "high", "difference") if c in table for v in table[c] if np.isfinite(v)]
    lo, hi = min(ends), max(ends)
    pad = max(2.0, 0.25 * (hi - lo))
    ax.set_xlim(lo - pad, hi + 1.6 * pad)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=10)
    return lo - pad, hi + 1.6 * pad


def gradcam_panel(images, cams, masks, titles, per_row: int = 2, alpha: float = 0.4):
    """For each image two panels: the ultrasound with the lesion mask outlined in white, and the
    same with the Grad-CAM map overlaid (jet: red = strongest evidence). ``cams`` must already be
    at the image size (:func:`evaluate.upsample_cam`); ``per_row`` images per row."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / per_row)))
    fig, axes = _figure(nrows, 2 * per_row, (2.6 * 2 * per_row, 3.0 * nrows))
    for ax in axes.ravel():
        ax.axis("off")
    slots = axes.reshape(nrows * per_row, 2)
    for (ax_img, ax_cam), img, cam, mask, title in zip(slots, images, cams, masks, titles):
        shown = _as_display(img)
        for ax in (ax_img, ax_cam):
            ax.imshow(shown, cmap="gray", vmin=0, vmax=255)
            if mask is not None and np.any(mask):
                ax.contour(np.asarray(mask, dtype=float), levels=[0.5], colors="white", linewidths=1.2)
        ax_cam.imshow(cam, cmap="jet", alpha=alpha, vmin=0, vmax=1)
        ax_img.set_title(title, fontsize=8, loc="left")
        ax_cam.set_title("Grad-CAM", fontsize=8)
    fig.tight_layout()
    return fig


def image_grid(images, titles, ncols: int = 6, title_colors=None):
    """Grayscale images with a title each (used for the misclassified test images)."""
    n = max(1, len(images))
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = _figure(nrows, ncols, (2.3 * ncols, 2.6 * nrows))
    for ax in axes.ravel():
        ax.axis("off")
    colors = title_colors or ["black"] * len(images)
    for ax, img, title, color in zip(axes.ravel(), images, titles, colors):
        ax.imshow(_as_display(img), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8, color=color)
    if not len(images):
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.tight_layout()
    return fig
