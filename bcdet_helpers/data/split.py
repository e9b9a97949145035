"""Folds and train / validation / test parts: grouped (leak-free, our default) or random (paper-like).

The paper gives no split. We use 5-fold cross-validation so that every image is a test image once:

* :func:`assign_folds` gives every image one of ``folds`` folds, once and for all (``fold_seed``).
  ``kind="grouped"`` uses scikit-learn's ``StratifiedGroupKFold`` over the near-duplicate groups
  (the ``group`` column of the index), so copies of a scan share a fold; ``kind="random"`` uses an
  image-level ``StratifiedKFold`` -- what most BUSI papers do, which scatters the copies of a scan
  across train and test.
* :func:`make_split` takes fold ``fold`` as the test part and carves the validation part (about
  ``val_fraction`` of the rest, again by groups for ``grouped``) out of the other folds, using the
  run's ``seed``. Validation -- early decisions, tuning -- therefore never sees a test image.

Fractions are approximate (whole groups), which is the price of keeping copies together. Everything
is deterministic in ``fold_seed`` and ``seed``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..profiles import DEFAULTS, KINDS


def _n_splits(y, groups, wanted: int) -> int:
    """``wanted`` folds, but never more than the rarest class has members (tiny subsets, smoke)."""
    smallest = min([c for c in np.bincount(y) if c > 0] or [2])
    return int(max(2, min(wanted, len(np.unique(groups)), smallest)))


def assign_folds(index: pd.DataFrame, kind: str = "grouped", folds: int = DEFAULTS.folds,
                 fold_seed: int = DEFAULTS.fold_seed) -> np.ndarray:
    """The fold (0 .. folds-1) of every row of ``index`` (needs ``y``; grouped needs ``group``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(index["y"])
    groups = np.asarray(index["group"]) if kind == "grouped" else np.arange(len(y))
    n = _n_splits(y, groups, folds)
    out = np.full(len(y), -1)
    with warnings.catch_warnings():  # a class smaller than the fold count only warns; fine here
        warnings.simplefilter("ignore", UserWarning)
        if kind == "grouped":
            splitter = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=fold_seed)
        else:
            splitter = StratifiedKFold(n_splits=n, shuffle=True, random_state=fold_seed)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
            out[test] = k
    return out


def _carve(y, groups, fraction: float, seed: int, kind: str) -> np.ndarray:
    """Boolean mask of about ``fraction`` of the rows: one fold of a (group-)stratified k-fold."""
    if kind == "random":
        from sklearn.model_selection import train_test_split

        size = max(int(round(fraction * len(y))), len(np.unique(y)))
        _, picked = train_test_split(np.arange(len(y)), test_size=size, stratify=y, random_state=seed)
        mask = np.zeros(len(y), bool)
        mask[picked] = True
        return mask
    from sklearn.model_selection import StratifiedGroupKFold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=_n_splits(y, groups, round(1 / fraction)), shuffle=True,
                                        random_state=seed)
        _, picked = next(iter(splitter.split(np.zeros(len(y)), y, groups)))
    mask = np.zeros(len(y), bool)
    mask[picked] = True
    return mask


def make_split(index: pd.DataFrame, kind: str = "grouped", fold: int = 0, seed: int = 0, *,
               folds: int = DEFAULTS.folds, fold_seed: int = DEFAULTS.fold_seed,
               val_fraction: float = DEFAULTS.val_fraction) -> np.ndarray:
    """``"train"`` / ``"val"`` / ``"test"`` for every row of ``index``: fold ``fold`` is the test part,
    the validation part is carved out of the other folds with ``seed``."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    fold_of = assign_folds(index, kind, folds, fold_seed)
    n_folds = int(fold_of.max()) + 1
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be 0..{n_folds - 1} ({n_folds} folds), got {fold}")
    y = np.asarray(index["y"])
    groups = np.asarray(index["group"]) if kind == "grouped" else np.arange(len(y))
    parts = np.where(fold_of == fold, "test", "train").astype(object)
    rest = np.flatnonzero(fold_of != fold)
    val = _carve(y[rest], groups[rest], val_fraction, seed, kind)
    parts[rest[val]] = "val"
    return parts.astype(str)


def leaked_pairs(pairs: pd.DataFrame, index: pd.DataFrame, parts, between=("train", "test")) -> int:
    """Near-duplicate pairs with one image in ``between[0]`` and the other in ``between[1]``; ``parts``:
    the part of each image of ``index``.

    Pairs whose files are not in ``index`` (e.g. outside a subset) are ignored.
    """
    where = dict(zip(index["file"], np.asarray(parts)))
    a = pairs["file_a"].map(where)
    b = pairs["file_b"].map(where)
    p, q = between
    return int((((a == p) & (b == q)) | ((a == q) & (b == p))).sum())


def leak_report(pairs: pd.DataFrame, index: pd.DataFrame, parts) -> dict:
    """Leaked pairs across each boundary: ``train-test``, ``train-val``, ``val-test``."""
    return {f"{p}-{q}": leaked_pairs(pairs, index, parts, (p, q))
            for p, q in (("train", "test"), ("train", "val"), ("val", "test"))}


def split_table(index: pd.DataFrame, parts) -> pd.DataFrame:
    """Class counts per part (rows: classes, columns: train / val / test / all)."""
    t = pd.crosstab(index["label"].to_numpy(), np.asarray(parts))
    t = t.reindex(columns=[c for c in ("train", "val", "test") if c in t.columns])
    t.columns.name = "part"
    t["all"] = t.sum(axis=1)
    t.index.name = "class"
    return t
