"""The near-duplicate measure: how alike two images are, crop- and rescale-tolerant.

Shared by :mod:`.index` (which computes every pair once, when it indexes BUSI) and :mod:`.duplicates`
(which reads the pairs back, or scores a subset); neither imports the other for it.

How the finder works (chosen to be explainable, fast and crop-tolerant)
-----------------------------------------------------------------------
1. Every image becomes a small grayscale thumbnail (``THUMB`` x ``THUMB``, box-filtered, so it is
   already blind to rescaling).
2. From each thumbnail we cut ``K`` crop windows: the whole image plus windows covering 90 %, 80 %
   and 70 % of the width and of the height (independently, so aspect changes are covered), each
   placed left / centre / right and top / middle / bottom. Each window is resampled to a
   ``TILE`` x ``TILE`` tile (``torchvision.ops.roi_align``, one vectorised call).
3. Each tile is *high-passed* (the tile minus a blurred copy of itself) and normalised to zero mean,
   unit length. Without the high-pass every pair of BUSI images looks alike (dark skin line at the
   top, bright tissue, dark shadow at the bottom: the median raw correlation of two unrelated images
   is ~0.5); after it only the texture of the actual scan is compared (median ~0.26).
4. ``similarity(a, b)`` = the best correlation between the *whole* tile of one image and *any* crop
   window of the other (both directions). A re-crop of ``b`` matches the window of ``b`` it was
   cut from; an exact copy or rescale matches the whole-image window with correlation ~1.
5. Pairs with similarity >= the threshold (``Profile.duplicate_threshold``) are duplicates;
   duplicate *groups* are the connected components of those pairs (if a~b and b~c, all three are
   one scan family).

The threshold (0.70, the profile table's ``duplicate_threshold``: it decides the groups and so the
grouped folds, so it is a run-shaping field of :mod:`bcdet_helpers.profiles`) was chosen by looking at
side-by-side sheets of pairs in bands of similarity on the real BUSI (notebook 01 shows them): above
~0.70 the pairs are the same frame (copies, re-crops, the same image with and without calipers); between
~0.60 and 0.70 they are mostly neighbouring frames of the same lesion; below ~0.55 they are different
scans. The count of pairs is flat between 0.70 and 0.85 and rises steeply below 0.55, so the result is
not sensitive to the exact value. It costs one matrix product: a few seconds for BUSI's 780 images on
one core.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from ..profiles import DEFAULTS

THUMB = 96  # thumbnail side (pixels) the crop windows are cut from
TILE = 16  # side of the tile each window is compared at
CROP_SCALES = (1.0, 0.9, 0.8, 0.7)  # window width/height as a share of the image's
# similarity at or above which two images are the same scan: the table's default (a profile may set another)
THRESHOLD = DEFAULTS.duplicate_threshold
PAIR_COLUMNS = ["file_a", "class_a", "file_b", "class_b", "similarity"]


def thumbnail(gray: Image.Image) -> np.ndarray:
    """The ``THUMB`` x ``THUMB`` uint8 thumbnail of a grayscale image (squashed, box filter)."""
    return np.asarray(gray.convert("L").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)


def crop_boxes(size: int = THUMB, scales=CROP_SCALES):
    """The crop windows ``(x0, y0, x1, y1)`` tried on each thumbnail; the first is the whole image."""
    import torch

    boxes = []
    for sx in scales:
        for sy in scales:
            for fx in (0.5,) if sx == 1 else (0.0, 0.5, 1.0):
                for fy in (0.5,) if sy == 1 else (0.0, 0.5, 1.0):
                    w, h = sx * size, sy * size
                    x0, y0 = fx * (size - w), fy * (size - h)
                    boxes.append((x0, y0, x0 + w, y0 + h))
    return torch.tensor(boxes, dtype=torch.float32)


def _highpass_unit(tiles):
    """Tiles (M, 1, T, T) -> (M, T*T): minus a 5x5 binomial blur, zero mean, unit length."""
    import torch
    import torch.nn.functional as F

    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    blur = F.pad(tiles, (2, 2, 2, 2), mode="replicate")
    blur = F.conv2d(blur, k.view(1, 1, 1, 5))
    blur = F.conv2d(blur, k.view(1, 1, 5, 1))
    x = (tiles - blur).flatten(1)
    x = x - x.mean(1, keepdim=True)
    return x / (x.norm(dim=1, keepdim=True) + 1e-6)


def similarity_matrix(thumbs: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(N, N) crop-tolerant similarity of N thumbnails (uint8, (N, THUMB, THUMB)); diagonal = 1."""
    import torch
    from torchvision.ops import roi_align

    base = torch.from_numpy(np.asarray(thumbs, dtype=np.float32))[:, None]
    n = len(base)
    boxes = crop_boxes(base.shape[-1])
    k = len(boxes)
    whole = _highpass_unit(roi_align(base, [boxes[:1]] * n, TILE, 1.0, 3, True))  # (N, D)
    best = torch.full((n, n), -1.0)
    for start in range(0, n, chunk):  # chunks keep memory small (K*chunk tiles at a time)
        part = base[start : start + chunk]
        tiles = roi_align(part, [boxes] * len(part), TILE, 1.0, 3, True)
        windows = _highpass_unit(tiles)  # (chunk*K, D)
        sim = (windows @ whole.T).view(len(part), k, n).amax(1)  # best window of b vs whole a
        best[start : start + len(part)] = sim
    best = torch.maximum(best, best.T)
    best.fill_diagonal_(1.0)
    return best.numpy()


def pairs_from_similarity(sim: np.ndarray, files, labels,
                          threshold: float = DEFAULTS.duplicate_threshold) -> pd.DataFrame:
    """One row per pair ``a < b`` with ``sim >= threshold``, most similar first."""
    files, labels = list(files), list(labels)
    ia, ib = np.triu_indices(len(files), 1)
    keep = sim[ia, ib] >= threshold
    ia, ib = ia[keep], ib[keep]
    out = pd.DataFrame(
        {
            "file_a": [files[i] for i in ia],
            "class_a": [labels[i] for i in ia],
            "file_b": [files[i] for i in ib],
            "class_b": [labels[i] for i in ib],
            "similarity": np.round(sim[ia, ib].astype(float), 4),
        },
        columns=PAIR_COLUMNS,
    )
    return out.sort_values(["similarity", "file_a", "file_b"], ascending=[False, True, True],
                           ignore_index=True)


def duplicate_groups(files, pairs: pd.DataFrame) -> np.ndarray:
    """Group id per file: connected components of the pair graph (singletons get their own id).

    Ids are numbered in file order, so the same data gives the same ids.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pos = {f: i for i, f in enumerate(files)}
    n = len(pos)
    a = np.array([pos[f] for f in pairs["file_a"]], dtype=int)
    b = np.array([pos[f] for f in pairs["file_b"]], dtype=int)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # renumber by first appearance so ids follow the index order
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[comp].astype(int)


def regroup(bundle: dict, threshold: float = DEFAULTS.duplicate_threshold) -> dict:
    """The index bundle (:func:`~.index.load_index` ``full=True``) with its ``pairs``, ``group`` and
    ``group_size`` at ``threshold``: the bundle itself when it was built at that threshold, else a copy
    whose pairs and groups come from its stored similarity matrix (no image is decoded again)."""
    if threshold == bundle.get("threshold", THRESHOLD):
        return bundle
    index = bundle["index"].copy()
    pairs = pairs_from_similarity(bundle["similarity"], index["file"], index["label"], threshold)
    index["group"] = duplicate_groups(index["file"], pairs)
    index["group_size"] = index.groupby("group")["file"].transform("size").astype(int)
    return {**bundle, "index": index, "pairs": pairs, "threshold": threshold}
