"""Figures for evaluation (notebook 05 and ``bcdet evaluate``).

Each function takes numbers computed by :mod:`bcdet_helpers.evaluate` and returns a Figure.

Over 350 lines on purpose: one file per chapter's figures, as :mod:`bcdet_helpers.plots` is laid out;
these are chapter 05's.
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
    "waterfall",
    "improvement_waterfall",
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


LADDER_COLORS = {"honest": "tab:blue", "leakage": "tab:orange", "inflation": "firebrick"}


def waterfall(table, paper: float | None = None, title: str = ""):
    """The leakage ladder (:func:`bcdet_helpers.research.study.leakage_ladder`) as a waterfall, in percent.

    The first bar is the honest accuracy; each next bar floats from the rung before to its own
    level, coloured by what it is (blue honest, orange leakage, red *inflation* -- selection on test
    images, never to be done) and hatched when it is inflation. Black whiskers: each rung's 95 % CI
    (bootstrap over near-duplicate groups); the dashed line is the paper's accuracy."""
    import pandas as pd
    from matplotlib.patches import Patch

    table = pd.DataFrame(table).reset_index(drop=True)
    fig, axes = _figure(1, 1, (1.45 * len(table) + 2.5, 4.6))
    ax = axes[0, 0]
    acc = 100 * table["accuracy"].to_numpy(float)
    floor = max(0.0, np.floor(min(np.nanmin(100 * table["low"]), acc[0]) / 5) * 5 - 5)
    before = np.r_[floor, acc[:-1]]
    for i, r in table.iterrows():
        base, top = (floor, acc[0]) if i == 0 else (before[i], acc[i])
        ax.bar(i, top - base, 0.6, bottom=base, color=LADDER_COLORS.get(r["label"], "0.5"),
               alpha=0.85, hatch="//" if r["label"] == "inflation" else None, edgecolor="white")
        ax.errorbar(i, acc[i], yerr=[[acc[i] - 100 * r["low"]], [100 * r["high"] - acc[i]]], color="black", capsize=4,
                    lw=1.2)
        text = f"{acc[i]:.1f}" + ("" if i == 0 else f"\n({acc[i] - acc[i - 1]:+.1f})")
        ax.annotate(text, (i, 100 * r["high"]), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8)
        if i:
            ax.plot([i - 1 + 0.3, i - 0.3], [acc[i - 1]] * 2, color="0.4", lw=0.8)
    if paper is not None:
        ax.axhline(100 * paper, color="black", ls="--", lw=1.2)
        ax.annotate(f"the paper: {100 * paper:.0f} %", (-0.5, 100 * paper), xytext=(3, 3),  # left: the honest
                    textcoords="offset points", ha="left", fontsize=8)  # bar sits far below it, no label collides
    ax.set_xticks(range(len(table)))
    ax.set_xticklabels([r.replace("_", " ") for r in table["rung"]], fontsize=9)
    top = max(np.nanmax(100 * table["high"]), 100 * (paper or 0))
    ax.set_ylim(floor, top + 9)  # room for the labels above the whiskers
    ax.set_yticks([t for t in ax.get_yticks() if floor <= t <= 100])
    ax.set_ylabel("accuracy (%)")
    labels = [k for k in LADDER_COLORS if k in set(table["label"])]
    ax.legend([Patch(color=LADDER_COLORS[k], hatch="//" if k == "inflation" else None) for k in labels],
              [{"inflation": "inflation: chosen on test (never do this)"}.get(k, k) for k in labels],
              loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


IMPROVE_COLORS = {"helps": "tab:green", "hurts": "firebrick", "unclear": "0.6"}


def improvement_waterfall(table, metrics=("accuracy", "balanced_accuracy", "busbra_auc"), title: str = "",
                          labels: dict | None = None):
    """The improvement ladder (:func:`bcdet_helpers.research.study.improve_report.write_improvement`) as waterfalls, one
    panel per metric (in percent), drawn like the leakage ladder's (:func:`waterfall`).

    The first bar is the baseline; each next bar floats from the rung it was built on (``below``) to its own
    level, green where the paired 95 % interval of the gain lies above 0, red where below, grey where it holds
    0; hatched when validation did not adopt the rung (the rungs above build without it). Black whiskers: each
    rung's own 95 % interval (training replicates and groups / patients resampled). A metric the table has no
    numbers for (BUS-BRA without a copy) gets no panel. ``labels``: metric -> its name on the axis."""
    import pandas as pd
    from matplotlib.patches import Patch

    labels = labels or {}
    table = pd.DataFrame(table).reset_index(drop=True)
    metrics = [m for m in metrics if m in table and np.isfinite(table[m].to_numpy(float)).any()]
    fig, axes = _figure(1, max(1, len(metrics)), (max(4.5, 0.8 * len(table) + 1.5) * max(1, len(metrics)), 4.6))
    level = {r: i for i, r in enumerate(table["rung"])}
    for ax, m in zip(axes[0], metrics):
        v = 100 * table[m].to_numpy(float)
        low, high = 100 * table[f"{m}_low"].to_numpy(float), 100 * table[f"{m}_high"].to_numpy(float)
        finite = np.isfinite(np.r_[v, low])
        floor = max(0.0, np.floor(np.nanmin(np.r_[v, low][finite]) / 5) * 5 - 5) if finite.any() else 0.0
        for i, r in table.iterrows():
            if not np.isfinite(v[i]):
                continue
            j = level.get(r["below"])
            base = floor if j is None or not np.isfinite(v[j]) else v[j]
            g_low, g_high = r.get(f"{m}_gain_low", np.nan), r.get(f"{m}_gain_high", np.nan)
            kind = "unclear" if j is None or not (np.isfinite(g_low) and np.isfinite(g_high)) else \
                "helps" if g_low > 0 else "hurts" if g_high < 0 else "unclear"
            color = "tab:blue" if j is None else IMPROVE_COLORS[kind]
            ax.bar(i, v[i] - base, 0.6, bottom=base, color=color, alpha=0.85, edgecolor="white",
                   hatch=None if bool(r["adopted"]) or j is None else "//")
            if np.isfinite(low[i]) and np.isfinite(high[i]):
                ax.errorbar(i, v[i], yerr=[[v[i] - low[i]], [high[i] - v[i]]], color="black", capsize=4, lw=1.2)
            text = f"{v[i]:.1f}" + ("" if j is None else f"\n({v[i] - base:+.1f})")
            ax.annotate(text, (i, high[i] if np.isfinite(high[i]) else v[i]), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8)
            if j is not None:
                ax.plot([j + 0.3, i - 0.3], [base] * 2, color="0.4", lw=0.8)
        ax.set_xticks(range(len(table)))
        ax.set_xticklabels(list(table["rung"]), fontsize=9, rotation=20)
        top = np.nanmax(np.r_[high, v]) if np.isfinite(np.r_[high, v]).any() else 100.0
        ax.set_ylim(floor, min(100.0, top + 9))
        ax.set_ylabel(f"{labels.get(m, m)} (%)")
        ax.set_title(labels.get(m, m), fontsize=10)
    handles = [Patch(color="tab:blue"), *[Patch(color=c) for c in IMPROVE_COLORS.values()],
               Patch(facecolor="white", edgecolor="0.3", hatch="//")]
    labels = ["baseline", "gain: 95 % CI above 0", "gain: 95 % CI below 0", "gain: CI holds 0",
              "not adopted by validation"]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # the legend below the panels, clear of every bar's label
    return fig
