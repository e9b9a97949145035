"""Figures for chapter 03 (ResNet9, residual blocks, why skips matter)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plain_vs_residual_gradients", "plain_vs_residual_loss", "loss_bands", "stage_shapes"]

_TWIN_COLOURS = {"plain": "tab:red", "residual": "tab:blue"}


def plain_vs_residual_gradients(norms: dict[str, list[float]], title: str | None = None):
    """Gradient norm of every conv layer (input -> output) for each net, on a log scale.

    ``norms`` maps a net's name (``"plain"``, ``"residual"``) to its per-layer norms, e.g. from
    :func:`bcdet_helpers.model.conv_gradient_norms`. A flat line means every layer receives a
    learning signal of the same size; a slope of several decades means the first layers get
    updates far larger (or smaller) than the last -- one learning rate cannot suit them all.
    """
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, values in norms.items():
        layers = np.arange(1, len(values) + 1)
        ax.semilogy(layers, values, "o-", ms=3, label=name, color=_TWIN_COLOURS.get(name))
    ax.set_xlabel("conv layer (1 = next to the input)")
    ax.set_ylabel("gradient norm of the weights")
    ax.set_title(title or "Gradient reaching each layer at initialisation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plain_vs_residual_loss(losses: dict[str, list[float]], smooth: int = 10, baseline: float | None = None,
                           title: str | None = None):
    """Training loss per step for each net (thin) and its running mean over ``smooth`` steps (thick).

    ``baseline`` draws the loss of always predicting the class frequencies -- a net that stays
    on that line has learnt nothing from the images.
    """
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, values in losses.items():
        values = np.asarray(values, dtype=float)
        colour = _TWIN_COLOURS.get(name)
        steps = np.arange(1, len(values) + 1)
        ax.plot(steps, values, color=colour, alpha=0.25, lw=0.8)
        k = max(1, min(smooth, len(values)))
        running = np.convolve(values, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], running, color=colour, lw=2, label=f"{name} (mean of {k} steps)")
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", lw=1, label="predict class frequencies")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy loss (training batch)")
    ax.set_title(title or "Training loss: plain vs residual twin")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def _colour(name: str):
    """``"plain 56"`` -> the plain colour; a shallower plain net gets its own (orange)."""
    if name in _TWIN_COLOURS:
        return _TWIN_COLOURS[name]
    kind = name.split()[0]
    return "tab:orange" if kind == "plain" and name.split()[-1].isdigit() and int(name.split()[-1]) < 30 \
        else _TWIN_COLOURS.get(kind)


def loss_bands(curves: dict[str, list[list[float]]], smooth: int = 10, baseline: float | None = None,
               title: str | None = None):
    """Training loss over steps for several nets, each trained with several seeds.

    ``curves`` maps a net's name (``"plain 20"``, ``"plain 56"``, ``"residual 56"``) to one list of
    per-step losses per seed. Each seed's curve is first smoothed by a running mean over ``smooth``
    steps (single batches are noisy); the thick line is the mean over seeds and the band spans the
    lowest to the highest seed -- a gap between two bands is larger than the seed-to-seed spread.
    ``baseline`` draws the loss of always predicting the class frequencies.
    """
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, runs in curves.items():
        runs = np.asarray(runs, dtype=float)  # seeds x steps
        k = max(1, min(smooth, runs.shape[1]))
        running = np.stack([np.convolve(r, np.ones(k) / k, mode="valid") for r in runs])
        steps = np.arange(k, runs.shape[1] + 1)
        colour = _colour(name)
        ax.fill_between(steps, running.min(0), running.max(0), color=colour, alpha=0.2, lw=0)
        ax.plot(steps, running.mean(0), color=colour, lw=2,
                label=f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", lw=1, label="predict class frequencies")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"training loss (mean of {smooth} steps)")
    ax.set_title(title or "Training loss: mean over seeds, band = lowest to highest seed")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def stage_shapes(rows: list[dict], title: str | None = None):
    """Bar chart of ResNet9's stages: feature-map side (bars) and receptive field (line).

    ``rows`` are dicts with ``stage``, ``size`` (side of the output map in pixels), ``channels`` and
    ``receptive_field`` (an int, or ``"whole image"`` for the global pool), as notebook 03 builds them.
    """
    stages = [r["stage"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.bar(x, [r["size"] for r in rows], color="tab:grey", alpha=0.6, label="feature-map side (px)")
    for i, r in enumerate(rows):
        ax.text(i, r["size"], f'{r["channels"]} ch', ha="center", va="bottom", fontsize=8)
    rf = [r["receptive_field"] if isinstance(r["receptive_field"], (int, np.integer)) else np.nan for r in rows]
    ax.plot(x, rf, "o-", color="tab:purple", label="receptive field (px)")
    ax.set_xticks(x, stages)
    ax.set_ylabel("pixels")
    ax.set_ylim(0, 1.35 * max([r["size"] for r in rows] + [v for v in rf if not np.isnan(v)]))  # room for the legend
    ax.set_title(title or "ResNet9 stage by stage")
    ax.legend(loc="upper center", ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
