"""``bcdet data check``: the real copy's counts, and one generated, broken mini-BUSI per problem."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from PIL import Image

from bcdet_helpers.research.cli import main
from bcdet_helpers.data.check import check_dataset, parse_name
from bcdet_helpers.data.images import read_image
from bcdet_helpers.errors import BcdetError


def _problems_about(report, name):
    return [p for p in report.problems if name in p.file]


@pytest.mark.realdata
def test_real_busi_counts(real_busi):
    t0 = time.perf_counter()
    report = check_dataset(real_busi)
    seconds = time.perf_counter() - t0
    assert report.images == {"benign": 437, "malignant": 210, "normal": 133}
    assert report.masks == {"benign": 454, "malignant": 211, "normal": 133}
    assert report.ok, report.format()
    assert report.errors == []
    assert seconds < 30, f"check took {seconds:.1f} s"  # ~1 s here; must never decode slowly
    text = report.format()
    assert "437" in text and "454" in text and "Result: OK" in text


@pytest.mark.realdata
def test_cli_on_real_busi(real_busi, capsys):
    assert main(["data", "check", str(real_busi)]) == 0
    out = capsys.readouterr().out
    assert "malignant" in out and "210" in out and "211" in out


def test_valid_mini_busi_is_ok(mini_busi):
    report = check_dataset(mini_busi)
    assert report.ok, report.format()
    assert report.images == {"benign": 6, "malignant": 6, "normal": 6}
    assert report.masks == {"benign": 6, "malignant": 6, "normal": 6}
    assert report.errors == []
    # a 6-per-class subset is allowed but differs from the published counts: a warning per class
    assert {p.file for p in report.warnings} == {"benign/", "malignant/", "normal/"}
    assert report.width[0] >= 90 and report.width[1] < 160  # fakebusi draws widths in [90, 160)


def test_parent_folder_is_accepted(mini_busi):
    assert check_dataset(mini_busi.parent).root == mini_busi.resolve()


def test_missing_class_folder(mini_busi, capsys):
    shutil.rmtree(mini_busi / "malignant")
    report = check_dataset(mini_busi)
    assert not report.ok
    assert any("malignant" in p.file and "missing" in p.what for p in report.errors)
    assert report.images["malignant"] == 0
    assert main(["data", "check", str(mini_busi)]) == 1
    out = capsys.readouterr().out
    assert "malignant/" in out and "NOT USABLE" in out


def test_class_folder_without_images(mini_busi):
    for f in (mini_busi / "normal").iterdir():
        f.unlink()
    report = check_dataset(mini_busi)
    assert not report.ok
    assert any(p.file == "normal/" and "no images" in p.what for p in report.errors)


def test_corrupt_png_is_named(mini_busi):
    bad = mini_busi / "benign" / "benign (3).png"
    bad.write_bytes(bad.read_bytes()[:200])  # cut off mid-file, as a broken download would
    report = check_dataset(mini_busi)
    assert not report.ok
    [problem] = _problems_about(report, "benign (3).png")
    assert problem.fatal and "unreadable image" in problem.what
    assert str(bad) in problem.todo  # read_image's message, naming the full path
    # the file is still counted, so its mask is not reported as an orphan
    assert report.images["benign"] == 6
    assert _problems_about(report, "benign (3)_mask.png") == []
    assert "benign/benign (3).png" in report.format()


def test_garbage_mask_is_an_error(mini_busi):
    (mini_busi / "normal" / "normal (2)_mask.png").write_text("not a png")
    report = check_dataset(mini_busi)
    assert not report.ok
    [problem] = _problems_about(report, "normal (2)_mask.png")
    assert "unreadable mask" in problem.what


def test_mask_without_image_and_image_without_mask(mini_busi):
    (mini_busi / "benign" / "benign (4).png").unlink()
    (mini_busi / "malignant" / "malignant (5)_mask.png").unlink()
    report = check_dataset(mini_busi)
    assert report.ok  # annotation gaps do not stop classification
    [orphan] = _problems_about(report, "benign (4)_mask.png")
    assert "mask has no image" in orphan.what
    [unmasked] = _problems_about(report, "malignant (5).png")
    assert "image has no mask" in unmasked.what
    assert report.images["benign"] == 5 and report.masks["benign"] == 6


def test_extra_masks_are_never_images(mini_busi):
    src = mini_busi / "benign" / "benign (2)_mask.png"
    shutil.copy(src, mini_busi / "benign" / "benign (2)_mask_1.png")
    shutil.copy(src, mini_busi / "benign" / "benign (2)_mask_2.png")
    report = check_dataset(mini_busi)
    assert report.images["benign"] == 6
    assert report.masks["benign"] == 8
    assert report.ok
    assert parse_name("benign (2)_mask_1.png") == ("benign", 2, 1)
    assert parse_name("benign (2)_mask.png") == ("benign", 2, 0)
    assert parse_name("benign (2).png") == ("benign", 2, None)
    for stray in ("cat (2).png", "benign (2).jpg", "benign (2) copy.png", "benign (x).png"):
        assert parse_name(stray) is None


def test_stray_files_and_system_files(mini_busi):
    (mini_busi / "benign" / "notes.txt").write_text("my notes")
    shutil.copy(mini_busi / "normal" / "normal (1).png", mini_busi / "normal" / "normal (1) copy.png")
    shutil.copy(mini_busi / "normal" / "normal (1).png", mini_busi / "benign" / "normal (7).png")
    (mini_busi / "benign" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (mini_busi / "malignant" / "Thumbs.db").write_bytes(b"\xd0\xcf")
    report = check_dataset(mini_busi)
    assert report.ok
    assert report.images == {"benign": 6, "malignant": 6, "normal": 6}  # strays not counted
    for name in ("notes.txt", "normal (1) copy.png", "benign/normal (7).png"):
        [p] = _problems_about(report, name)
        assert "unexpected" in p.what and not p.fatal
    assert _problems_about(report, ".DS_Store") == [] and _problems_about(report, "Thumbs.db") == []
    [note] = [n for n in report.notes if "system file" in n]
    assert ".DS_Store" in note and "Thumbs.db" in note


def test_rgba_and_16bit_images_are_notes_and_read_as_8bit(mini_busi):
    rgba_path = mini_busi / "benign" / "benign (1).png"
    gray = np.asarray(Image.open(rgba_path))
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    Image.fromarray(rgba, "RGBA").save(rgba_path)
    deep_path = mini_busi / "normal" / "normal (2).png"
    deep = np.asarray(Image.open(deep_path)).astype(np.uint16) * 257
    Image.fromarray(deep).save(deep_path)  # uint16 -> a 16-bit PNG
    with Image.open(deep_path) as raw:
        assert raw.mode.startswith("I")  # really stored as 16-bit
    report = check_dataset(mini_busi)
    assert report.ok, report.format()
    assert _problems_about(report, "benign (1).png") == []
    assert any("RGBA" in n and "benign (1).png" in n for n in report.notes)
    assert any("normal (2).png" in n and "I" in n.split("stored as ")[1] for n in report.notes)
    for path in (rgba_path, deep_path):
        img = read_image(path)
        assert img.mode == "L" and np.asarray(img).dtype == np.uint8
    assert np.array_equal(np.asarray(read_image(rgba_path)), gray)


def test_tiny_image_is_an_error(mini_busi):
    tiny = mini_busi / "malignant" / "malignant (2).png"
    Image.fromarray(np.zeros((8, 12), np.uint8)).save(tiny)
    report = check_dataset(mini_busi)
    assert not report.ok
    [p] = _problems_about(report, "malignant (2).png")
    assert "12x8" in p.what and p.fatal


def test_no_dataset_raises(tmp_path):
    with pytest.raises(BcdetError, match="No BUSI dataset"):
        check_dataset(tmp_path)


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_cli_without_dataset_exits_nonzero_without_traceback(tmp_path, capsys, where):
    folder = tmp_path / "empty"
    if where == "empty":
        folder.mkdir()
    code = main(["data", "check", str(folder)])
    assert code != 0
    captured = capsys.readouterr()
    assert "No BUSI dataset found" in captured.err
    assert "Traceback" not in captured.err + captured.out


# --------------------------------------------------------------------------------------------
# issue #27 cases 5 and 8: a huge image, and the downloaded zip given instead of its folder
# --------------------------------------------------------------------------------------------
def test_a_huge_image_is_an_error_without_pillows_warning(mini_busi):
    import warnings

    from fakebusi import big_png

    big_png(mini_busi / "benign" / "benign (2).png", 10_000)  # 100 MP: Pillow warned, the check said nothing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = check_dataset(mini_busi)
    assert not [w for w in caught if "decompression bomb" in str(w.message)]
    [problem] = _problems_about(report, "benign (2).png")
    assert problem.fatal and "100 megapixels" in problem.todo and "Downscale it" in problem.todo


@pytest.mark.parametrize("how", ["argument", "BCDET_DATA"])
def test_data_check_on_the_zip_says_how_to_unpack_it(mini_busi, tmp_path, monkeypatch, capsys, how):
    archive = shutil.make_archive(str(tmp_path / "Dataset_BUSI_with_GT"), "zip", mini_busi.parent, mini_busi.name)
    monkeypatch.setenv("BCDET_DATA", archive if how == "BCDET_DATA" else str(mini_busi))
    code = main(["data", "check"] + ([archive] if how == "argument" else []))
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2 and line.startswith(f"bcdet: error: {archive}" + (" (BCDET_DATA)" if how == "BCDET_DATA" else ""))
    assert "is a zip file, not a folder" in line and f"bcdet data download --url file://{archive}" in line
