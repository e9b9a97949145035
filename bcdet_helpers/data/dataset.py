"""`load_split_data`: BUSI folder + profile -> :class:`SplitData` (the entry point of training).

Steps: the cached index (with near-duplicate groups at the profile's ``duplicate_threshold``) -> the
profile's subset (``max_per_class``) -> the split (folds of kind grouped or random) -> the cached uint8
tensors (resized with the profile's ``resize``) -> train-only mean/std. The
split is written to ``runs_dir(profile)/splits/<kind>-fold<fold>-seed<seed>.csv`` (file, class, group, and
each image's part in a column named ``split``) so anyone can audit which image went where.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..busi import CLASSES
from ..paths import runs_dir
from ..profiles import Profile, get_profile
from .cache import load_cache
from .check import require_usable
from .index import load_index
from .split import leak_report, make_split
from .splitdata import SplitData


def select_subset(index: pd.DataFrame, max_per_class: int | None) -> pd.DataFrame:
    """The first ``max_per_class`` images of each class in index order (all when ``None``).

    Deterministic and cheap; a duplicate group cut by the limit simply keeps its members that are
    inside (the split still keeps those together).
    """
    if not max_per_class:
        return index
    return index.groupby("label", sort=False, group_keys=False).head(max_per_class)


def split_csv_path(profile_name: str, kind: str, fold: int, seed: int):
    return runs_dir(profile_name) / "splits" / f"{kind}-fold{fold}-seed{seed}.csv"


def load_split_data(profile, kind: str = "grouped", seed: int = 0, root=None, fold: int = 0) -> SplitData:
    """All images of ``profile`` (name or :class:`Profile`) as tensors, with fold ``fold`` of the
    folds of kind ``kind`` -- ``"grouped"`` (leak-free, default) or ``"random"`` (paper-like) -- as the
    test part and a validation part carved from the other folds with ``seed``."""
    prof: Profile = get_profile(profile)
    root = require_usable(root)  # a folder `bcdet data check` calls NOT USABLE never reaches training
    bundle = load_index(root, full=True, threshold=prof.duplicate_threshold)
    index = select_subset(bundle["index"], prof.max_per_class)
    parts = make_split(index, kind, fold, seed, folds=prof.folds, fold_seed=prof.fold_seed,
                       val_fraction=prof.val_fraction)

    cache = load_cache(root, prof.image_size, prof.channels, resize=prof.resize)
    position = {f: i for i, f in enumerate(cache["files"])}
    rows = torch.as_tensor([position[f] for f in index["file"]], dtype=torch.long)
    images = cache["images"][rows]
    labels = cache["labels"][rows]
    mean, std = SplitData.train_stats(images, parts)

    out = split_csv_path(prof.name, kind, fold, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"file": index["file"].to_numpy(), "class": index["label"].to_numpy(),
                  "group": index["group"].to_numpy(), "split": parts}).to_csv(out, index=False)

    meta = {
        "profile": prof.name,
        "data_hash": cache["meta"]["data_hash"],
        "root": str(root),
        "resize": cache["meta"]["resize"],
        "cache_file": cache["meta"]["file"],
        "split_csv": str(out),
        "leaked_pairs": leak_report(bundle["pairs"], index, parts),
        "counts": {p: int((parts == p).sum()) for p in ("train", "val", "test")},
    }
    return SplitData(images=images, labels=labels, files=list(index["file"]), parts=np.asarray(parts),
                     mean=mean, std=std, classes=CLASSES, kind=kind, seed=seed, fold=fold, meta=meta)
