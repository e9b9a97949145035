"""Train / validation / test splits: grouped (leak-free, our default) or random (paper-like).

The paper gives no split. A *random* image-level split (``kind="random"``, sklearn
``train_test_split`` stratified by class) is what most BUSI papers do; it scatters the copies of a
scan across train and test. The *grouped* split (``kind="grouped"``) keeps every near-duplicate
group (the ``group`` column of the index) inside one part, using scikit-learn's
``StratifiedGroupKFold`` so the class shares stay close to the whole set's:

* test = one fold of ``round(1 / test_fraction)`` folds (15 % -> 7 folds -> ~14 %),
* validation = one fold of the rest, split into ``round((1 - test) / val)`` folds.

Fractions are therefore approximate (fold sizes), which is the price of whole groups. Both kinds
are deterministic in ``seed``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..profiles import SPLITS as KINDS


def _one_fold(y, groups, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of one StratifiedGroupKFold fold holding about ``fraction`` of the rows."""
    from sklearn.model_selection import StratifiedGroupKFold

    # small subsets (tests, smoke): never more folds than the rarest class has members
    smallest = min([c for c in np.bincount(y) if c > 0] or [2])
    n_splits = int(max(2, min(round(1.0 / fraction), len(np.unique(groups)), smallest)))
    # a class with fewer members than folds only triggers a warning in sklearn; that is fine here
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, fold = next(iter(folds.split(np.zeros(len(y)), y, groups)))
    mask = np.zeros(len(y), bool)
    mask[fold] = True
    return mask


def _at_least_one_per_class(fraction: float, y) -> int:
    """``fraction`` of the rows as a count, but room for one image of every class (tiny subsets)."""
    return max(int(round(fraction * len(y))), len(np.unique(y)))


def make_split(index: pd.DataFrame, kind: str = "grouped", seed: int = 0,
               val_fraction: float = 0.15, test_fraction: float = 0.15) -> np.ndarray:
    """``"train"`` / ``"val"`` / ``"test"`` for every row of ``index`` (needs ``y``; grouped needs
    ``group``)."""
    if kind not in KINDS:
        raise ValueError(f"split kind must be one of {KINDS}, not {kind!r}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"bad fractions val={val_fraction}, test={test_fraction}")
    y = np.asarray(index["y"])
    n = len(y)
    split = np.full(n, "train", dtype=object)
    rest = np.arange(n)
    if kind == "random":
        from sklearn.model_selection import train_test_split

        if test_fraction > 0:
            rest, test = train_test_split(rest, test_size=_at_least_one_per_class(test_fraction, y),
                                          stratify=y, random_state=seed)
            split[test] = "test"
        if val_fraction > 0:
            share = val_fraction / (1 - test_fraction)
            _, val = train_test_split(rest, test_size=_at_least_one_per_class(share, y[rest]),
                                      stratify=y[rest], random_state=seed)
            split[val] = "val"
        return split.astype(str)
    groups = np.asarray(index["group"])
    if test_fraction > 0:
        test = _one_fold(y, groups, test_fraction, seed)
        split[test] = "test"
        rest = np.flatnonzero(~test)
    if val_fraction > 0:
        share = val_fraction / (1 - test_fraction)
        val = _one_fold(y[rest], groups[rest], share, seed)
        split[rest[val]] = "val"
    return split.astype(str)


def leaked_pairs(pairs: pd.DataFrame, index: pd.DataFrame, split, parts=("train", "test")) -> int:
    """Near-duplicate pairs with one image in ``parts[0]`` and the other in ``parts[1]``.

    Pairs whose files are not in ``index`` (e.g. outside a subset) are ignored.
    """
    where = dict(zip(index["file"], np.asarray(split)))
    a = pairs["file_a"].map(where)
    b = pairs["file_b"].map(where)
    p, q = parts
    return int((((a == p) & (b == q)) | ((a == q) & (b == p))).sum())


def leak_report(pairs: pd.DataFrame, index: pd.DataFrame, split) -> dict:
    """Leaked pairs across each boundary: ``train-test``, ``train-val``, ``val-test``."""
    return {f"{p}-{q}": leaked_pairs(pairs, index, split, (p, q))
            for p, q in (("train", "test"), ("train", "val"), ("val", "test"))}


def split_table(index: pd.DataFrame, split) -> pd.DataFrame:
    """Class counts per part (rows: classes, columns: train / val / test / all)."""
    t = pd.crosstab(index["label"].to_numpy(), np.asarray(split))
    t = t.reindex(columns=[c for c in ("train", "val", "test") if c in t.columns])
    t.columns.name = "part"
    t["all"] = t.sum(axis=1)
    t.index.name = "class"
    return t
