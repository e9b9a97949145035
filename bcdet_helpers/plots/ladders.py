"""Chapter 05's two ladders: what inflates a BUSI number (the leakage ladder, :func:`waterfall`; how much each
habit's gain depends on the order, :func:`habit_orders`) and what honestly helps (the improvement ladder,
:func:`improvement_waterfall`) -- side by side in :func:`two_ladders`. Split from :mod:`.evaluation` by job."""
from __future__ import annotations

import numpy as np

from .evaluation import _figure

__all__ = ["waterfall", "improvement_waterfall", "two_ladders", "habit_orders"]


LADDER_COLORS = {"honest": "tab:blue", "leakage": "tab:orange", "inflation": "firebrick"}


def waterfall(table, paper: float | None = None, title: str = "", ax=None):
    """The leakage ladder (:func:`bcdet_helpers.research.study.leakage_ladder`) as a waterfall, in percent.

    The first bar is the honest accuracy; each next bar floats from the rung before to its own
    level, coloured by what it is (blue honest, orange leakage, red *inflation* -- selection on test
    images, never to be done) and hatched when it is inflation. Black whiskers: each rung's 95 % CI
    (bootstrap over near-duplicate groups); the dashed line is the paper's accuracy. ``ax``: draw there
    (a panel of a larger figure, :func:`two_ladders`) instead of in a figure of its own."""
    import pandas as pd
    from matplotlib.patches import Patch

    table = pd.DataFrame(table).reset_index(drop=True)
    own = ax is None
    if own:
        _, grid = _figure(1, 1, (1.45 * len(table) + 2.5, 4.6))
        ax = grid[0, 0]
    fig = ax.figure
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
    if own:
        fig.tight_layout()
    return fig


IMPROVE_COLORS = {"helps": "tab:green", "hurts": "firebrick", "unclear": "0.6"}


def improvement_waterfall(table, metrics=("accuracy", "balanced_accuracy", "busbra_auc"), title: str = "",
                          labels: dict | None = None, axes=None):
    """The improvement ladder (:func:`bcdet_helpers.research.study.improve_report.write_improvement`) as waterfalls, one
    panel per metric (in percent), drawn like the leakage ladder's (:func:`waterfall`).

    The first bar is the baseline; each next bar floats from the rung it was built on (``below``) to its own
    level, green where the paired 95 % interval of the gain lies above 0, red where below, grey where it holds
    0; hatched when validation did not adopt the rung (the rungs above build without it). Black whiskers: each
    rung's own 95 % interval (training replicates and groups / patients resampled). A metric the table has no
    numbers for (BUS-BRA without a copy) gets no panel. ``labels``: metric -> its name on the axis. ``axes``: one
    panel per metric of a larger figure (:func:`two_ladders`) to draw in, the legend then in the first."""
    import pandas as pd
    from matplotlib.patches import Patch

    labels = labels or {}
    table = pd.DataFrame(table).reset_index(drop=True)
    metrics = [m for m in metrics if m in table and np.isfinite(table[m].to_numpy(float)).any()]
    own = axes is None
    if own:
        fig, grid = _figure(1, max(1, len(metrics)), (max(4.5, 0.8 * len(table) + 1.5) * max(1, len(metrics)), 4.6))
        axes = list(grid[0])
    fig = axes[0].figure
    level = {r: i for i, r in enumerate(table["rung"])}
    for ax, m in zip(axes, metrics):
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
    if not own:  # a panel of another figure: the legend and title in it
        axes[0].legend(handles, labels, loc="upper left", fontsize=7)
        if title:
            axes[0].set_title(title)
        return fig
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # the legend below the panels, clear of every bar's label
    return fig


def two_ladders(leakage, improvement, paper: float | None = None, title: str = ""):
    """What inflates beside what helps, on one accuracy axis: the leakage ladder (:func:`waterfall`, left) and
    the improvement ladder's pooled out-of-fold accuracy (:func:`improvement_waterfall`, right)."""
    import pandas as pd

    leakage, improvement = pd.DataFrame(leakage), pd.DataFrame(improvement)
    fig, axes = _figure(1, 2, (1.45 * len(leakage) + 0.9 * len(improvement) + 4, 4.8))
    waterfall(leakage, paper=paper, title="what inflates: the leakage ladder", ax=axes[0, 0])
    improvement_waterfall(improvement, metrics=("accuracy",), axes=[axes[0, 1]],
                          title="what honestly helps: the improvement ladder")
    low = min(a.get_ylim()[0] for a in axes[0])
    high = max(a.get_ylim()[1] for a in axes[0])
    for a in axes[0]:
        a.set_ylim(low, high)  # one scale: a point is as tall on both sides
        a.set_ylabel("pooled out-of-fold accuracy (%)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def habit_orders(orders, title: str = ""):
    """Each habit's gain over every order the leakage ladder's habits can be stacked in
    (:func:`bcdet_helpers.research.study.ladder_orders.order_gains`), in accuracy points: the bar is the mean over
    the orders, the whisker the lowest to the highest, the dot the ladder's own order."""
    import pandas as pd

    orders = pd.DataFrame(orders)
    orders = orders[orders["orders"] > 0].reset_index(drop=True)
    fig, axes = _figure(1, 1, (6.5, 0.55 * len(orders) + 1.6))
    ax = axes[0, 0]
    y = np.arange(len(orders))[::-1]
    mean = 100 * orders["mean_over_orders"].to_numpy(float)
    ax.barh(y, mean, 0.55, color=[LADDER_COLORS["leakage" if h == "image_folds" else "inflation"]
                                  for h in orders["habit"]], alpha=0.8)
    ax.errorbar(mean, y, xerr=[mean - 100 * orders["lowest"], 100 * orders["highest"] - mean], fmt="none",
                color="black", capsize=4, lw=1.2)
    ax.plot(100 * orders["in_ladder_order"], y, "o", color="black", ms=5, label="in the ladder's order")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([h.replace("_", " ") for h in orders["habit"]])
    ax.set_xlabel(f"accuracy gain (points): mean over {int(orders['orders'].max())} orders, lowest to highest")
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
