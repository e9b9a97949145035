"""Splits: stratified, deterministic; grouped keeps duplicate groups whole, random leaks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bcdet_helpers.data import load_split_data
from bcdet_helpers.data.split import leak_report, leaked_pairs, make_split, split_table


def _toy(n_groups=60, copies=3, seed=0):
    """n_groups scans of 3 classes, each present ``copies`` times (a duplicate group)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n_groups)
    rows = [{"file": f"{g}-{c}", "label": "abc"[y[g]], "y": int(y[g]), "group": g}
            for g in range(n_groups) for c in range(copies)]
    index = pd.DataFrame(rows)
    a, b = [], []
    for g in range(n_groups):
        for c in range(1, copies):
            a.append(f"{g}-0")
            b.append(f"{g}-{c}")
    pairs = pd.DataFrame({"file_a": a, "class_a": "x", "file_b": b, "class_b": "x", "similarity": 1.0})
    return index, pairs


def test_grouped_split_keeps_groups_together():
    index, pairs = _toy()
    split = make_split(index, "grouped", seed=0)
    per_group = pd.Series(split).groupby(index["group"]).nunique()
    assert (per_group == 1).all()
    assert leak_report(pairs, index, split) == {"train-test": 0, "train-val": 0, "val-test": 0}
    shares = pd.Series(split).value_counts(normalize=True)
    assert 0.08 < shares["test"] < 0.22 and 0.08 < shares["val"] < 0.25


def test_random_split_leaks_and_is_stratified():
    index, pairs = _toy()
    split = make_split(index, "random", seed=0)
    assert leaked_pairs(pairs, index, split) > 0
    table = split_table(index, split)
    share = table["test"] / table["all"]
    assert share.max() - share.min() < 0.1  # each class ~15 % in test


@pytest.mark.parametrize("kind", ["grouped", "random"])
def test_split_is_deterministic_in_seed(kind):
    index, _ = _toy()
    a = make_split(index, kind, seed=3)
    assert (a == make_split(index, kind, seed=3)).all()
    assert (a != make_split(index, kind, seed=4)).any()
    assert set(a) == {"train", "val", "test"}


def test_bad_kind():
    index, _ = _toy()
    with pytest.raises(ValueError, match="kind"):
        make_split(index, "patient")


def test_load_split_data_on_fixture(mini_busi):
    data = load_split_data("smoke", kind="grouped", seed=0, root=mini_busi)
    assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (1, 32, 32)
    assert len(data.files) == len(data.labels) == len(data.parts) == 18
    # the cross-class copy (benign (1) == malignant (6)) is on one side
    where = dict(zip(data.files, data.parts))
    assert where["benign/benign (1).png"] == where["malignant/malignant (6).png"]
    assert data.meta["leaked_pairs"]["train-test"] == 0
    # statistics from the training images only
    train, _ = data.part("train")
    assert data.mean == pytest.approx(float(train.float().mean() / 255), rel=1e-5)
    saved = pd.read_csv(data.meta["split_csv"])
    assert list(saved.columns) == ["file", "class", "group", "split"]
    assert list(saved["split"]) == list(data.parts)


def test_load_split_data_max_per_class(mini_busi):
    from bcdet_helpers.profiles import get_profile

    data = load_split_data(get_profile("smoke", max_per_class=4), kind="random", root=mini_busi)
    assert len(data.files) == 12
    assert data.files[:4] == [f"benign/benign ({i}).png" for i in range(1, 5)]
