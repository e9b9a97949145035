"""The index: one row per image, masks and flags right, cached by file names/sizes/mtimes."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from bcdet_helpers.data.index import (
    build_index, colour_fraction, fingerprint, load_index, mark_pixels, masks_of,
)
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.paths import CLASSES

COLUMNS = ["file", "path", "label", "y", "width", "height", "mode", "n_masks", "lesion_fraction",
           "group", "colour_overlay", "text_or_calipers"]


def test_one_row_per_image_sorted(mini_busi):
    index = build_index(mini_busi)
    assert len(index) == 18
    assert set(COLUMNS) <= set(index.columns)
    assert list(index["file"][:3]) == ["benign/benign (1).png", "benign/benign (2).png",
                                       "benign/benign (3).png"]
    assert list(index["label"].unique()) == list(CLASSES)
    assert (index["y"] == index["label"].map(CLASSES.index)).all()
    assert not index["file"].str.contains("_mask").any()


def test_masks_and_lesion_fraction(mini_busi):
    # give benign (3) a second mask covering its whole image: the union must then be 1.0
    img = mini_busi / "benign" / "benign (3).png"
    w, h = Image.open(img).size
    Image.fromarray(np.full((h, w), 255, np.uint8)).save(mini_busi / "benign" / "benign (3)_mask_1.png")
    index = build_index(mini_busi).set_index("file")
    assert index.loc["benign/benign (3).png", "n_masks"] == 2
    assert index.loc["benign/benign (3).png", "lesion_fraction"] == pytest.approx(1.0)
    assert (index.loc[index["label"] == "normal", "lesion_fraction"] == 0).all()
    benign = index.loc[index["label"] == "benign", "lesion_fraction"]
    assert ((benign > 0) & (benign <= 1)).all()
    assert [p.name for p in masks_of(img)] == ["benign (3)_mask.png", "benign (3)_mask_1.png"]


def test_index_is_cached_and_rebuilt_on_change(mini_busi):
    first = load_index(mini_busi, full=True)
    t0 = time.perf_counter()
    again = load_index(mini_busi, full=True)
    assert time.perf_counter() - t0 < 1.0
    assert again["cache_file"] == first["cache_file"]
    # a new image changes the fingerprint, so the index is rebuilt with the extra row
    key = fingerprint(mini_busi)
    Image.open(mini_busi / "normal" / "normal (1).png").transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(
        mini_busi / "normal" / "normal (7).png")
    assert fingerprint(mini_busi) != key
    assert len(build_index(mini_busi)) == 19


def test_touching_a_file_changes_the_key(mini_busi):
    key = fingerprint(mini_busi)
    p = mini_busi / "benign" / "benign (4).png"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert fingerprint(mini_busi) != key


def test_corrupt_image_names_the_file(mini_busi):
    (mini_busi / "benign" / "benign (5).png").write_bytes(b"not a png")
    with pytest.raises(BcdetError, match=r"benign \(5\)\.png"):
        build_index(mini_busi)


def test_mark_detector_finds_thin_bright_lines_not_blobs():
    rng = np.random.default_rng(0)
    scan = rng.integers(40, 90, (120, 160)).astype(np.uint8)
    blob = scan.copy()
    blob[40:90, 50:120] = 230  # a bright, wide structure (e.g. tissue): edges bright on one side only
    assert mark_pixels(blob) == 0
    marked = scan.copy()
    marked[60, 20:140] = 255  # a caliper line, one pixel thick
    marked[20:40, 30] = 255  # a text stroke
    assert mark_pixels(marked) >= 120


def test_colour_detector():
    gray = Image.fromarray(np.full((50, 50), 100, np.uint8)).convert("RGB")
    assert colour_fraction(gray) == 0.0
    rgb = np.array(gray)
    rgb[:10, :10] = (200, 30, 30)  # a red Doppler blob
    assert colour_fraction(Image.fromarray(rgb)) == pytest.approx(0.04)


def test_index_and_check_agree_on_stray_files(mini_busi):
    """A copy named ``benign (1) copy.png`` or a benign file in malignant/ is a stray file for
    ``bcdet data check`` and must not become a training image either."""
    from bcdet_helpers.data.check import check_dataset

    src = mini_busi / "benign" / "benign (1).png"
    (mini_busi / "benign" / "benign (1) copy.png").write_bytes(src.read_bytes())
    (mini_busi / "malignant" / "benign (99).png").write_bytes(src.read_bytes())
    index = build_index(mini_busi)
    report = check_dataset(mini_busi)
    assert sum(report.images.values()) == len(index) == 18
    assert not index["file"].str.contains("copy|benign \\(99\\)").any()


def test_building_the_index_and_the_cache_shows_progress(mini_busi, capsys, monkeypatch):
    """Issue #16 case 9: `bcdet train` used to be silent for ~24 s while it built the index."""
    from bcdet_helpers.data.cache import load_cache

    load_index(mini_busi)
    out = capsys.readouterr().out
    assert "Indexing BUSI" in out and "18 images" in out and "done: 18 images in" in out
    assert "near-duplicates" in out
    load_index(mini_busi)
    assert capsys.readouterr().out == ""  # a cached load stays quiet
    load_cache(mini_busi, image_size=16)
    assert "Resizing to 16 x 16 px" in capsys.readouterr().out
    # on a slow machine, a line every few seconds
    from bcdet_helpers.data import progress

    ticks = iter(range(0, 100, 3))
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(ticks))
    assert list(progress.announce(range(4), 4, "Counting", every=5.0)) == [0, 1, 2, 3]
    assert "  2/4 images, 6 s" in capsys.readouterr().out
