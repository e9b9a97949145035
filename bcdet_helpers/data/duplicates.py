"""Near-duplicates: pairs of BUSI images that show the same scan, and their groups.

BUSI has no patient ids, and the same scan appears more than once: byte-identical copies (even
across classes -- ``benign (433).png`` is ``malignant (145).png``), re-crops that trim the
scanner's margins differently, and rescaled copies. A random image-level split puts one copy in
train and the other in test, and the test score then measures memory, not diagnosis.

The measure itself (thumbnails, crop windows, high-passed tiles, the 0.70 threshold -- the profile
table's ``duplicate_threshold`` -- and why) is :mod:`.similarity`; its names are re-exported here. The
index computes every pair once (:func:`~.index.load_index`), so :func:`find_duplicates` on the whole
dataset is a cache read.
``bcdet duplicates`` prints the groups (:mod:`bcdet_helpers.research.commands`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..profiles import DEFAULTS
from .images import read_image
from .index import load_index
from .similarity import (  # noqa: F401  (re-exported: notebook 01 and the tests use these names)
    CROP_SCALES,
    PAIR_COLUMNS,
    THRESHOLD,
    THUMB,
    TILE,
    crop_boxes,
    duplicate_groups,
    pairs_from_similarity,
    similarity_matrix,
    thumbnail,
)


def find_duplicates(index_or_root=None, threshold: float = DEFAULTS.duplicate_threshold) -> pd.DataFrame:
    """Near-duplicate pairs ``file_a, class_a, file_b, class_b, similarity``.

    ``index_or_root``: a BUSI folder (or ``None`` for the default one) -- uses the cached index,
    so it is instant the second time -- or an index DataFrame (``file``, ``path``, ``label``; e.g.
    a subset), whose images are decoded again.
    """
    if isinstance(index_or_root, pd.DataFrame):
        index = index_or_root
        thumbs = np.stack([thumbnail(read_image(p)) for p in index["path"]]) if len(index) else \
            np.zeros((0, THUMB, THUMB), np.uint8)
        sim = similarity_matrix(thumbs) if len(index) else np.zeros((0, 0), np.float32)
        return pairs_from_similarity(sim, index["file"], index["label"], threshold)
    return load_index(index_or_root, full=True, threshold=threshold)["pairs"].copy()


def label_conflicts(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs whose two images carry different labels: the same scan under two classes.

    Taught in notebook 01 (exercise 01.2 asks students to write it); whatever a model predicts for
    such a scan, one copy counts as wrong.
    """
    return pairs[pairs["class_a"] != pairs["class_b"]]


def summarize(index: pd.DataFrame, pairs: pd.DataFrame) -> dict:
    """Counts a report needs: pairs, groups (size >= 2), images in groups, cross-class groups."""
    sizes = index.groupby("group")["file"].transform("size")
    in_groups = index[sizes >= 2]
    n_labels = in_groups.groupby("group")["label"].nunique()
    return {
        "images": int(len(index)),
        "pairs": int(len(pairs)),
        "cross_class_pairs": int(len(label_conflicts(pairs))),
        "groups": int(in_groups["group"].nunique()),
        "images_in_groups": int(len(in_groups)),
        "cross_class_groups": int((n_labels > 1).sum()),
    }
