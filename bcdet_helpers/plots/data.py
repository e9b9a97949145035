"""Figures for chapters 01 (what is in BUSI) and 02 (from PNG to tensors).

Inputs are the index DataFrame of :mod:`bcdet_helpers.data.index` (one row per image), the
near-duplicate pairs of :mod:`bcdet_helpers.data.duplicates` and plain arrays/tensors, so each
figure can be redrawn from a cached index without decoding the whole dataset again.

Over 350 lines on purpose: one file per chapter group's figures, as :mod:`bcdet_helpers.plots` is laid
out; these are chapters 01 and 02's.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from ..busi import CLASSES

__all__ = [
    "CLASS_COLOURS",
    "class_balance",
    "image_sizes",
    "sample_grid",
    "multi_mask_gallery",
    "lesion_fraction_by_class",
    "intensity_histograms",
    "similarity_histogram",
    "pair_gallery",
    "annotation_gallery",
    "augmentation_grid",
    "resize_ladder",
    "split_counts",
    "leak_bars",
    "normalisation_histogram",
]

CLASS_COLOURS = {"benign": "tab:blue", "malignant": "tab:red", "normal": "tab:green"}
MASK_COLOURS = ("yellow", "cyan", "magenta", "orange")
SHOW_SIDE = 320  # images are shrunk to this side for display (figures stay small)


def _load(path, mode="L", side=SHOW_SIDE) -> Image.Image:
    from ..data.images import read_image

    img = read_image(path, mode)
    img.thumbnail((side, side), Image.Resampling.BICUBIC)
    return img


def _masks(path, size) -> list[np.ndarray]:
    from ..data.images import read_mask
    from ..data.index import masks_of

    out = []
    for m in masks_of(Path(path)):
        mk = Image.fromarray(read_mask(m).astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
        out.append(np.asarray(mk) > 0)
    return out


def _show(ax, img, title=None, colour="black"):
    arr = np.asarray(img)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8, color=colour)


def _outline(ax, masks):
    for k, m in enumerate(masks):
        if m.any():
            ax.contour(m.astype(float), levels=[0.5], colors=MASK_COLOURS[k % len(MASK_COLOURS)],
                       linewidths=1.2)


def class_balance(index):
    """Images per class with their share, and the accuracy of always guessing the majority."""
    counts = index["label"].value_counts().reindex(CLASSES)
    share = counts / counts.sum()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(counts.index, counts.values, color=[CLASS_COLOURS[c] for c in counts.index])
    for b, n, s in zip(bars, counts.values, share.values):
        ax.text(b.get_x() + b.get_width() / 2, n, f"{n}\n{s:.1%}", ha="center", va="bottom", fontsize=9)
    ax.axhline(counts.max(), ls="--", color="gray", lw=1)
    ax.set_title(f"Class balance: always guessing '{counts.idxmax()}' scores {share.max():.1%} accuracy",
                 fontsize=10)
    ax.set_ylabel("images")
    ax.set_ylim(0, counts.max() * 1.25)
    fig.tight_layout()
    return fig


def image_sizes(index):
    """Width x height of every image by class; marker = the PNG's colour mode."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    markers = {"L": "o", "RGB": "^", "RGBA": "s", "P": "D"}
    for cls in CLASSES:
        sub = index[index["label"] == cls]
        for mode, part in sub.groupby("mode"):
            ax.scatter(part["width"], part["height"], s=14, alpha=0.6, color=CLASS_COLOURS[cls],
                       marker=markers.get(mode, "x"), label=f"{cls} ({mode}, {len(part)})")
    lim = [0, max(index["width"].max(), index["height"].max()) * 1.05]
    ax.plot(lim, lim, color="gray", lw=0.8, ls=":", label="square")
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("Image sizes by class (marker = colour mode of the PNG)", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def sample_grid(index, per_class: int = 4, seed: int = 0):
    """``per_class`` random images of each class (rows) with the lesion mask(s) outlined."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(2.3 * per_class, 2.3 * len(CLASSES)),
                             squeeze=False)
    for r, cls in enumerate(CLASSES):
        sub = index[index["label"] == cls]
        pick = sub.iloc[np.sort(rng.choice(len(sub), min(per_class, len(sub)), replace=False))]
        for c in range(per_class):
            ax = axes[r, c]
            if c >= len(pick):
                ax.axis("off")
                continue
            row = pick.iloc[c]
            img = _load(row["path"])
            _show(ax, img, row["file"].split("/")[-1], CLASS_COLOURS[cls])
            _outline(ax, _masks(row["path"], img.size))
    fig.suptitle("Samples per class, lesion mask outlined (normal images have empty masks)", fontsize=10)
    fig.tight_layout()
    return fig


def multi_mask_gallery(index, n: int = 6):
    """Images with more than one mask; each mask outlined in its own colour."""
    sub = index[index["n_masks"] > 1].head(n)
    if sub.empty:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, "no image has more than one mask", ha="center")
        ax.axis("off")
        return fig
    cols = min(len(sub), 3)
    rows = int(np.ceil(len(sub) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, row) in zip(axes.ravel(), sub.iterrows()):
        img = _load(row["path"])
        _show(ax, img, f"{row['file'].split('/')[-1]}: {row['n_masks']} masks", CLASS_COLOURS[row["label"]])
        _outline(ax, _masks(row["path"], img.size))
    fig.suptitle("Images with several lesion masks (one colour per mask file)", fontsize=10)
    fig.tight_layout()
    return fig


def lesion_fraction_by_class(index):
    """Lesion area (union of masks) as a share of the image, per class: box plot + points."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    data = [index.loc[index["label"] == c, "lesion_fraction"].to_numpy() for c in CLASSES]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(CLASSES) + 1), CLASSES)
    rng = np.random.default_rng(0)
    for k, (cls, d) in enumerate(zip(CLASSES, data), start=1):
        ax.scatter(k + rng.uniform(-0.15, 0.15, len(d)), d, s=6, alpha=0.4, color=CLASS_COLOURS[cls])
    ax.set_ylabel("lesion area / image area")
    ax.set_title("How much of the image is lesion?", fontsize=10)
    fig.tight_layout()
    return fig


def intensity_histograms(histograms: np.ndarray, labels):
    """Mean pixel-intensity distribution per class (each image's histogram normalised first)."""
    h = histograms / histograms.sum(1, keepdims=True)
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for cls in CLASSES:
        sub = h[labels == cls]
        if len(sub) == 0:
            continue
        mean = sub.mean(0)
        lo, hi = np.percentile(sub, [25, 75], axis=0)
        ax.plot(np.arange(256), mean, color=CLASS_COLOURS[cls], label=f"{cls} (n={len(sub)})")
        ax.fill_between(np.arange(256), lo, hi, color=CLASS_COLOURS[cls], alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("pixel intensity (0 = black, 255 = white)")
    ax.set_ylabel("share of pixels (log)")
    ax.set_title("Intensity histograms by class (line: mean, band: middle 50% of images)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def similarity_histogram(values: np.ndarray, threshold: float):
    """Distribution of pairwise near-duplicate similarity (all pairs), threshold marked."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.hist(values, bins=np.linspace(min(0.0, float(values.min())), 1.0, 101), color="gray")
    ax.set_yscale("log")
    ax.axvline(threshold, color="tab:red", ls="--", label=f"threshold {threshold:.2f}")
    n_above = int((values >= threshold).sum())
    ax.set_title(f"Similarity of all {len(values):,} image pairs: {n_above} at or above the threshold",
                 fontsize=10)
    ax.set_xlabel("crop-tolerant similarity (1 = same scan)")
    ax.set_ylabel("pairs (log)")
    ax.legend()
    fig.tight_layout()
    return fig


def pair_gallery(pairs, paths: dict, n: int = 6, title: str = "Near-duplicate pairs"):
    """Pairs side by side (one pair per row) with file, class and similarity; cross-class in red.

    ``paths`` maps relative file -> absolute path (``dict(zip(index.file, index.path))``).
    """
    pairs = pairs.head(n)
    rows = max(len(pairs), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(6, 2.6 * rows), squeeze=False)
    for r, (_, p) in enumerate(pairs.iterrows()):
        cross = p["class_a"] != p["class_b"]
        colour = "tab:red" if cross else "black"
        for c, (f, cls) in enumerate(((p["file_a"], p["class_a"]), (p["file_b"], p["class_b"]))):
            _show(axes[r, c], _load(paths[f]), f"{f.split('/')[-1]}  [{cls}]", colour)
        axes[r, 0].set_ylabel(f"sim {p['similarity']:.2f}" + ("\nLABEL CONFLICT" if cross else ""),
                              fontsize=8, color=colour)
    if pairs.empty:
        for ax in axes.ravel():
            ax.axis("off")
        axes[0, 0].text(0.5, 0.5, "no pairs", ha="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def annotation_gallery(index, flag: str, n: int = 8, colour: bool = False, title: str | None = None):
    """Up to ``n`` images where column ``flag`` is true (``colour=True`` shows them in RGB)."""
    sub = index[index[flag]]
    order = "colour_fraction" if flag == "colour_overlay" else "mark_pixels"
    if order in sub:
        sub = sub.sort_values(order, ascending=False)
    sub = sub.head(n)
    cols = min(max(len(sub), 1), 4)
    rows = max(int(np.ceil(len(sub) / cols)), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, row) in zip(axes.ravel(), sub.iterrows()):
        _show(ax, _load(row["path"], "RGB" if colour else "L"), row["file"].split("/")[-1],
              CLASS_COLOURS[row["label"]])
    fig.suptitle(title or f"Images flagged '{flag}' ({int(index[flag].sum())} in all)", fontsize=10)
    fig.tight_layout()
    return fig


def augmentation_grid(images, titles=None, ncols: int = 6, size: float = 1.8, suptitle: str | None = None):
    """A grid of (augmented) images: arrays (H, W) / (H, W, 3) or tensors (C, H, W), any value range
    (each image is min-max scaled for display, so normalised tensors show as they look)."""
    images = list(images)
    rows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(rows, ncols, figsize=(size * ncols, size * rows + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (ax, im) in enumerate(zip(axes.ravel(), images)):
        a = im.detach().cpu().numpy() if hasattr(im, "detach") else np.asarray(im)
        if a.ndim == 3 and a.shape[0] in (1, 3):
            a = a.transpose(1, 2, 0)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[..., 0]
        a = a.astype(float)
        a = (a - a.min()) / (a.max() - a.min() + 1e-9)
        ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def resize_ladder(path, sizes=(None, 256, 64, 32), outline: bool = True):
    """One image at its original size and squashed to each of ``sizes`` (shown at equal width),
    with the lesion mask outlined (at the same resolution) when ``outline``."""
    from ..data.cache import resize_image
    from ..data.images import read_image

    original = read_image(path, "L")
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.2 * len(sizes), 3.4))
    for ax, s in zip(axes, sizes):
        if s is None:
            arr, label = np.asarray(original), f"original {original.size[0]}x{original.size[1]}"
        else:
            arr, label = resize_image(path, s, 1)[0], f"{s}x{s} ({s * s:,} pixels)"
        ax.imshow(arr, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        if outline:
            _outline(ax, _masks(path, (arr.shape[1], arr.shape[0])))
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("What resizing keeps (squashed to a square, antialiased bicubic; mask outlined)", fontsize=10)
    fig.tight_layout()
    return fig


def split_counts(tables: dict):
    """Per-split class counts for each kind of folds; ``tables``: kind -> ``split_table`` DataFrame."""
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 3.5), squeeze=False)
    for ax, (kind, t) in zip(axes[0], tables.items()):
        parts = [c for c in ("train", "val", "test") if c in t.columns]
        x = np.arange(len(parts))
        width = 0.8 / len(t.index)
        for k, cls in enumerate(t.index):
            vals = t.loc[cls, parts].to_numpy()
            bars = ax.bar(x + k * width - 0.4 + width / 2, vals, width, color=CLASS_COLOURS.get(cls),
                          label=cls)
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(x, parts)
        ax.set_title(f"{kind} split", fontsize=10)
        ax.set_ylabel("images")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def leak_bars(reports: dict):
    """Near-duplicate pairs straddling each boundary; ``reports``: kind -> ``leak_report`` dict."""
    kinds = list(reports)
    boundaries = list(next(iter(reports.values())))
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    x = np.arange(len(boundaries))
    width = 0.8 / len(kinds)
    colours = {"grouped": "tab:green", "random": "tab:orange"}
    for k, kind in enumerate(kinds):
        vals = [reports[kind][b] for b in boundaries]
        bars = ax.bar(x + k * width - 0.4 + width / 2, vals, width, label=kind, color=colours.get(kind))
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x, boundaries)
    ax.set_ylabel("duplicate pairs split across")
    ax.set_title("Leaked near-duplicate pairs by kind of folds", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def normalisation_histogram(raw, normalised, mean: float, std: float):
    """Pixel histograms of the training images before (0..1) and after normalisation."""
    raw = np.asarray(raw, dtype=float).ravel()
    normalised = np.asarray(normalised, dtype=float).ravel()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].hist(raw, bins=64, color="gray")
    axes[0].axvline(mean, color="tab:red", label=f"mean {mean:.3f}")
    axes[0].set_title(f"train pixels on 0..1 (std {std:.3f})", fontsize=10)
    axes[0].legend()
    axes[1].hist(normalised, bins=64, color="tab:blue")
    axes[1].set_title(f"after (x - mean) / std: mean {normalised.mean():.2f}, std {normalised.std():.2f}",
                      fontsize=10)
    for ax in axes:
        ax.set_yscale("log")
    fig.tight_layout()
    return fig
