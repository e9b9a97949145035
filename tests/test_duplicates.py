"""The near-duplicate finder: copies, re-crops and rescales found; distinct scans not."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bcdet_helpers.research.commands import cli_duplicates
from bcdet_helpers.data.duplicates import find_duplicates
from bcdet_helpers.data.index import build_index
from bcdet_helpers.data.similarity import PAIR_COLUMNS, THRESHOLD, duplicate_groups, similarity_matrix, thumbnail


def _pair(pairs, a, b):
    hit = pairs[((pairs.file_a == a) & (pairs.file_b == b)) | ((pairs.file_a == b) & (pairs.file_b == a))]
    return None if hit.empty else float(hit["similarity"].iloc[0])


def test_fixture_duplicates_are_found(mini_busi):
    pairs = find_duplicates(mini_busi)
    assert list(pairs.columns) == PAIR_COLUMNS
    # malignant (6) is a byte copy of benign (1): a cross-class pair
    assert _pair(pairs, "benign/benign (1).png", "malignant/malignant (6).png") == pytest.approx(1.0, abs=1e-3)
    # benign (6) is a re-crop + rescale of benign (2)
    assert _pair(pairs, "benign/benign (2).png", "benign/benign (6).png") >= THRESHOLD
    # the normal fixture images (speckle, no lesion) are different scans: none is paired
    # (the fixture's benign/malignant pictures are all "one dark ellipse near the centre", so
    # some of them do look alike to the finder; distinct real-looking scans are tested below)
    assert not (pairs["class_a"].eq("normal") | pairs["class_b"].eq("normal")).any(), pairs


def test_groups_in_index(mini_busi):
    index = build_index(mini_busi).set_index("file")
    assert index.loc["benign/benign (1).png", "group"] == index.loc["malignant/malignant (6).png", "group"]
    assert index.loc["benign/benign (2).png", "group"] == index.loc["benign/benign (6).png", "group"]
    assert index.loc["benign/benign (1).png", "group"] != index.loc["benign/benign (2).png", "group"]
    normal = index[index["label"] == "normal"]
    assert normal["group"].nunique() == len(normal)


def _texture(seed, w=300, h=220):
    """A smooth random 'scan' with structure at several scales."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (8, 10)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    img += rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def test_rescale_and_uneven_crop_are_similar_distinct_is_not():
    a = _texture(1)
    w, h = a.size
    rescaled = a.resize((w // 2, h // 2), Image.Resampling.BILINEAR)
    crop = a.crop((int(0.15 * w), int(0.05 * h), w, int(0.9 * h)))  # trims sides unevenly
    other = _texture(2)
    sim = similarity_matrix(np.stack([thumbnail(im) for im in (a, rescaled, crop, other)]))
    assert sim[0, 1] > 0.95
    assert sim[0, 2] >= THRESHOLD
    assert sim[0, 3] < 0.5 and sim[2, 3] < 0.5
    assert np.allclose(sim, sim.T)


def test_find_duplicates_on_a_dataframe_subset(mini_busi):
    index = build_index(mini_busi)
    subset = index[index["file"].isin(["benign/benign (1).png", "malignant/malignant (6).png",
                                       "normal/normal (2).png"])]
    pairs = find_duplicates(subset)
    assert len(pairs) == 1 and pairs.loc[0, "class_a"] != pairs.loc[0, "class_b"]


def test_groups_are_connected_components():
    files = list("abcdef")
    pairs = pd.DataFrame({"file_a": ["a", "b", "e"], "file_b": ["b", "c", "f"]})
    g = duplicate_groups(files, pairs)
    assert g[0] == g[1] == g[2] and g[4] == g[5] and len(set(g)) == 3
    assert list(g) == sorted(g)  # numbered in file order


def test_cli_writes_csv_and_flags_cross_class(mini_busi, tmp_path, capsys):
    out = tmp_path / "pairs.csv"
    assert cli_duplicates(argparse.Namespace(path=str(mini_busi), csv=str(out))) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == PAIR_COLUMNS and len(table) >= 2
    text = capsys.readouterr().out
    assert "CROSSES CLASSES" in text and f"{len(table)} near-duplicate pairs" in text
    headers = [ln.split()[1] for ln in text.splitlines() if ln.startswith("group ")]
    n = len(headers)
    assert n >= 1 and headers == [f"{i}/{n}" for i in range(1, n + 1)]  # numbered 1..n, no gaps


@pytest.mark.realdata
def test_real_busi_known_copy(real_busi):
    pairs = find_duplicates(real_busi)
    assert _pair(pairs, "benign/benign (433).png", "malignant/malignant (145).png") > 0.99


def test_ctrl_c_while_writing_the_csv_leaves_no_half_file(mini_busi, tmp_path, monkeypatch, capsys):
    """Issue #27: Ctrl-C while ``bcdet duplicates --csv`` wrote left half a CSV behind."""
    from bcdet_helpers.research.cli import main

    def half_then_ctrl_c(self, target, *a, **k):
        Path(target).write_text("file_a,file_b\nbenign (1).png,")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_ctrl_c)
    csv = tmp_path / "out" / "pairs.csv"
    assert main(["duplicates", str(mini_busi), "--csv", str(csv)]) == 130
    assert capsys.readouterr().err.splitlines() == ["bcdet: interrupted"]
    assert not csv.exists() and not list(csv.parent.glob("*"))  # no temp file either


def test_an_interrupted_atomic_write_leaves_nothing(tmp_path):
    """What every cache, record and CSV is written with: Ctrl-C mid-write leaves no file and no temp file."""
    from bcdet_helpers.runinfo import write_atomic

    def half_then_ctrl_c(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "cache" / "index.pkl", half_then_ctrl_c)
    assert list((tmp_path / "cache").iterdir()) == []
    assert write_atomic(tmp_path / "cache" / "index.pkl", lambda tmp: tmp.write_bytes(b"whole")).read_bytes() == b"whole"


def test_the_profiles_duplicate_threshold_decides_the_groups_and_the_folds(mini_busi):
    """The threshold is a profile field (issue #32): another value gives other groups, so other grouped
    folds -- and those folds keep *its* groups whole, in the study's folds and in a run's split."""
    from bcdet_helpers.data import load_split_data
    from bcdet_helpers.data.index import load_index
    from bcdet_helpers.data.split import assign_folds
    from bcdet_helpers.profiles import DEFAULTS, get_profile
    from bcdet_helpers.research.study.folds import study_index

    assert THRESHOLD == DEFAULTS.duplicate_threshold == get_profile("paper").duplicate_threshold
    default, looser = get_profile("smoke"), get_profile("smoke", duplicate_threshold=0.5)
    g0, g1 = study_index(default, mini_busi), study_index(looser, mini_busi)
    assert g0["group"].tolist() == build_index(mini_busi)["group"].tolist()  # the default: the cached groups
    assert g1["group"].nunique() < g0["group"].nunique()  # 0.5 merges scans 0.70 keeps apart
    f0, f1 = (assign_folds(g, "grouped", p.folds, p.fold_seed) for g, p in ((g0, default), (g1, looser)))
    assert f0.tolist() != f1.tolist()
    assert (pd.Series(f1).groupby(g1["group"]).nunique() == 1).all()
    assert len(find_duplicates(mini_busi, threshold=0.5)) > len(find_duplicates(mini_busi)) \
        == len(load_index(mini_busi, full=True)["pairs"])
    data = load_split_data(get_profile(looser, image_size=16), "grouped", root=mini_busi)
    assert (pd.Series(data.parts).groupby(g1["group"].to_numpy()).nunique() == 1).all()
    assert sum(data.meta["leaked_pairs"].values()) == 0  # none of the looser threshold's pairs leak
