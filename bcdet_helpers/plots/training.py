"""Figures for chapter 04 (training): optimizers side by side, training histories with their phases."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

__all__ = ["optimizer_paths", "training_history", "PHASE_COLORS"]

PHASE_COLORS = {"adam": "#4C72B0", "sgd": "#DD8452"}  # shading of Adam / SGD phases
OPT_LABEL = {"adam": "Adam", "sgd": "SGD"}


def optimizer_paths(steps: int = 60, condition: float = 100.0, start=(-4.0, 1.5)):
    """Plain SGD, SGD with momentum and Adam on a 2-D ill-conditioned bowl ``(x^2 + c*y^2) / 2``.

    A loss surface that is ``c`` times steeper in ``y`` than in ``x`` is the classic picture of why
    the optimizers differ: plain SGD must keep its step small enough not to blow up along the steep
    ``y`` and then crawls along the flat ``x``; momentum accumulates the consistent ``x`` direction
    and cancels the zig-zag in ``y``; Adam divides each coordinate's step by its own running
    gradient size, so both coordinates move at a similar pace whatever the curvature.
    The learning rates are ours, picked so that each optimizer behaves typically: plain SGD at 90 % of
    the largest stable rate (``2 / condition``), momentum at a textbook setting for this curvature.
    """
    scale = torch.tensor([1.0, condition])

    def loss_fn(w):
        return 0.5 * (scale * w**2).sum()

    settings = {
        f"SGD (lr {1.8 / condition:.2g})": lambda p: torch.optim.SGD(p, lr=1.8 / condition),
        f"SGD + momentum 0.8 (lr {1 / condition:.2g})": lambda p: torch.optim.SGD(p, lr=1 / condition, momentum=0.8),
        "Adam (lr 0.1)": lambda p: torch.optim.Adam(p, lr=0.1),
    }
    colors = ["#7f7f7f", PHASE_COLORS["sgd"], PHASE_COLORS["adam"]]
    paths, losses = {}, {}
    for name, make in settings.items():
        w = torch.tensor(start, requires_grad=True)
        opt = make([w])
        trail, trace = [w.detach().clone()], [float(loss_fn(w.detach()))]
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn(w)
            loss.backward()
            opt.step()
            trail.append(w.detach().clone())
            trace.append(float(loss_fn(w.detach())))
        paths[name], losses[name] = torch.stack(trail).numpy(), np.array(trace)

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.6, 1]})
    xs, ys = np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-2, 2, 200))
    ax.contour(xs, ys, 0.5 * (xs**2 + condition * ys**2), levels=np.geomspace(0.05, 60, 12), colors="0.8",
               linewidths=0.8)
    for (name, path), color in zip(paths.items(), colors):
        ax.plot(path[:, 0], path[:, 1], "o-", ms=2.5, lw=1.2, color=color, label=name)
        ax2.semilogy(np.maximum(losses[name], 1e-12), color=color, label=name)
    ax.plot(0, 0, "k*", ms=12)
    ax.set_ylim(-2, 2)
    ax.set(xlabel="weight 1 (flat direction)", ylabel="weight 2 (steep direction)",
           title=f"{steps} steps on a bowl {condition:g}x steeper in one direction")
    ax.legend(fontsize=8, loc="lower right")
    ax2.set(xlabel="step", ylabel="loss (log scale)", title="loss per step")
    fig.tight_layout()
    return fig


def _history_of(run):
    return run.history if hasattr(run, "history") else run


def _phase_spans(history):
    """(first epoch, last epoch, optimizer, the phase's rate) of each phase in a history table.

    The rate is the largest the phase reached: a history records each epoch's rate at its end, and a
    phase's first epoch ends inside its warm-up (below the phase's rate); a one-cycle phase's largest
    is its peak."""
    spans = []
    for _, g in history.groupby("phase", sort=True):
        spans.append((int(g["epoch"].min()), int(g["epoch"].max()), str(g["optimizer"].iloc[0]),
                      float(g["lr"].max())))
    return spans


def _phase_arm(histories: dict) -> str:
    """The run whose phases a figure shades: ``switching`` when it is there (the paper's method), else the run
    with the most optimizer changes, then the most phases (ties: the first)."""
    if "switching" in histories:
        return "switching"

    def changes(h):
        opts = [str(o) for o in h.groupby("phase", sort=True)["optimizer"].first()]
        return sum(a != b for a, b in zip(opts, opts[1:])), len(opts)

    return max(histories, key=lambda n: changes(histories[n]))


def training_history(runs: dict, shade: str | None = None, title: str | None = None):
    """Loss, validation accuracy and validation macro-F1 per epoch for several runs on one figure.

    ``runs`` maps a label to a history table or a ``FitResult``. The phases of one run (``shade``;
    default ``switching``, else the run with the most optimizer changes -- :func:`_phase_arm`) are
    shaded, Adam blue and SGD orange, and labelled with the optimizer and the phase's learning rate
    (after its warm-up). The legend names the shaded run.
    """
    histories = {name: _history_of(r) for name, r in runs.items()}
    if shade is None:
        shade = _phase_arm(histories)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharex=True)
    spans = _phase_spans(histories[shade]) if shade in histories else []
    for ax in axes:
        for i, (first, last, opt, _lr) in enumerate(spans):
            ax.axvspan(first - 0.5, last + 0.5, color=PHASE_COLORS.get(opt, "0.8"), alpha=0.10 + 0.06 * (i % 2),
                       lw=0)
    ax_loss, ax_acc, ax_f1 = axes
    for i, (name, h) in enumerate(histories.items()):
        color = f"C{i + 2}"
        ax_loss.plot(h["epoch"], h["train_loss"], "--", color=color, lw=1.2, label=f"{name} train")
        ax_loss.plot(h["epoch"], h["val_loss"], "-", color=color, lw=1.6, label=f"{name} val")
        ax_acc.plot(h["epoch"], h["val_acc"], "-", color=color, lw=1.6, label=name)
        ax_f1.plot(h["epoch"], h["val_f1"], "-", color=color, lw=1.6, label=name)
    ax_loss.set(ylabel="cross-entropy (log scale)", title="loss", yscale="log")  # a blow-up must not flatten the rest
    ax_loss.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 0.2, 0.5, 1, 2, 5 ... written plainly
    ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_loss.yaxis.set_minor_formatter(NullFormatter())
    ax_acc.set(ylabel="accuracy", title="validation accuracy")
    ax_f1.set(ylabel="macro-F1", title="validation macro-F1")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for first, last, opt, lr in spans:  # label each phase on the loss panel, inside the top edge
        ax_loss.text((first + last) / 2, 0.98, f"{OPT_LABEL.get(opt, opt)}\n{lr:.0e}", ha="center", va="top",
                     fontsize=7, transform=ax_loss.get_xaxis_transform(), color=PHASE_COLORS.get(opt, "0.3"))
    # below the panel: inside, it would hide curves or the phase labels whatever the run looks like
    ax_loss.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    handles = ax_acc.get_legend_handles_labels()[0]
    handles += [Patch(color=PHASE_COLORS[o], alpha=0.3, label=f"{OPT_LABEL[o]} phase ({shade})")
                for o in sorted({s[2] for s in spans}) if o in PHASE_COLORS]
    ax_acc.legend(handles=handles, fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
