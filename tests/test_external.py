"""Issue #30, the foundations of testing a BUSI model on another hospital's images:
BUS-BRA found and checked (a generated BUS-BRA-shaped copy, broken one way per test), screen captures
cropped to their scan area (synthetic captures with a known box), and the lesion-question scores
with patient-clustered intervals and a threshold carried over from BUSI validation.
The real copies are used too when present (BCDET_DATA / BCDET_BUSBRA), and skipped otherwise."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from bcdet_helpers.busbra import BUSBRA, device_name
from bcdet_helpers.busi import CLASSES
from bcdet_helpers.research.cli import main
from bcdet_helpers.data.busbra import find_busbra, locate_busbra, read_busbra
from bcdet_helpers.data.busbra_check import check_busbra
from bcdet_helpers.data.scanarea import MIN_REMOVED, crop_scan_area, crop_summary
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.research.external import (
    ExternalResult,
    choose_threshold,
    patient_weights,
    score_external,
    score_lesions,
)
from fakebusbra import make_busbra, plain_scan, screen_capture, write_sums

IMAGES = BUSBRA["images_folder"]


@pytest.fixture
def mini_busbra(tmp_path):
    """A fresh mini-BUS-BRA: 12 patients, 21 images (9 patients with -l and -r, 3 with -s)."""
    return make_busbra(tmp_path, n_patients=12)


# =========================================================================================== data
def test_the_busbra_record_adds_up():
    assert sum(BUSBRA["images"].values()) == sum(BUSBRA["devices"].values()) == 1875
    assert BUSBRA["patients"] == 1064 and set(BUSBRA["classes"]) < set(CLASSES)
    assert "doi:10.1002/mp.16812" in BUSBRA["citation"]
    assert device_name("GE Logiq 7 @10-14MHz") == "GE Logiq 7"
    assert device_name("Toshiba Aplio 300 @12-14 MHz") == "Toshiba Aplio 300"


def test_locate_busbra_by_env_parent_and_refusal(mini_busbra, tmp_path, monkeypatch):
    monkeypatch.setenv("BCDET_BUSBRA", str(mini_busbra))
    assert find_busbra() == mini_busbra.resolve()
    monkeypatch.setenv("BCDET_BUSBRA", str(mini_busbra.parent))  # the folder that holds BUS-BRA/
    assert locate_busbra() == mini_busbra.resolve()
    empty = tmp_path / "nothing"
    empty.mkdir()
    monkeypatch.setenv("BCDET_BUSBRA", str(empty))
    assert find_busbra() is None
    with pytest.raises(BcdetError, match="No BUS-BRA dataset found.*BCDET_BUSBRA"):
        locate_busbra()


def test_read_busbra_gives_label_patient_and_scanner(mini_busbra):
    t = read_busbra(mini_busbra)
    assert len(t) == 21 and t["exists"].all()
    assert set(t["label"]) == {"benign", "malignant"}
    assert (t["y"] == [CLASSES.index(v) for v in t["label"]]).all()  # a BUSI model's column
    assert t["patient"].nunique() == 12 and t.loc[t["id"] == "bus_0001-l", "patient"].item() == "1"
    assert set(t["device"]) <= {device_name(d) for d in ("GE Logiq 7 @", "GE Logiq 5 @", "Toshiba Aplio 300 @")}
    assert t.loc[0, "file"] == f"{IMAGES}/bus_0001-l.png" and t.loc[0, "side"] == "left"


def test_a_valid_copy_checks_ok_with_its_counts(mini_busbra):
    report = check_busbra(mini_busbra)
    assert report.ok, report.format()
    t = read_busbra(mini_busbra)
    assert report.images == {c: int((t["label"] == c).sum()) for c in ("benign", "malignant")}
    assert report.patients == 12 and sum(report.devices.values()) == 21
    assert "24 file(s) verified" in report.checksums and "all match" in report.checksums  # 21 images + 3 files
    # a 21-image subset differs from the published counts: warnings, not errors
    assert {p.what.split(",")[0] for p in report.warnings} >= {"12 patients"}
    text = report.format()
    assert "Result: OK" in text and "1268" in text and "doi:10.1002/mp.16812" in text


def test_a_corrupted_image_is_named_once(mini_busbra, capsys):
    bad = mini_busbra / IMAGES / "bus_0005-l.png"
    bad.write_bytes(bad.read_bytes()[:120])  # cut off mid-file
    report = check_busbra(mini_busbra)
    assert not report.ok
    named = [p for p in report.errors if "bus_0005-l" in p.file]
    assert len(named) == 1 and "unreadable" in named[0].what  # not also reported as a checksum mismatch
    assert main(["data", "check", "--busbra", str(mini_busbra)]) == 1
    out = capsys.readouterr().out
    assert "bus_0005-l.png" in out and "NOT USABLE" in out


def test_a_checksum_mismatch_is_named(mini_busbra):
    f = mini_busbra / IMAGES / "bus_0003-r.png"
    arr = np.asarray(Image.open(f)).copy()
    arr[0, 0] ^= 1  # one pixel off by one: still a perfectly readable PNG
    Image.fromarray(arr).save(f)
    report = check_busbra(mini_busbra)
    assert not report.ok
    assert [p.file for p in report.errors] == [f"{IMAGES}/bus_0003-r.png"]
    assert "differs from SHA256SUMS" in report.errors[0].what
    assert "1 differ" in report.checksums
    write_sums(mini_busbra)  # the same copy with checksums of its own files: fine again
    assert check_busbra(mini_busbra).ok


def test_without_sums_nothing_is_verified_but_the_copy_is_usable(mini_busbra):
    (mini_busbra / "SHA256SUMS").unlink()
    report = check_busbra(mini_busbra)
    assert report.ok and report.checksums.startswith("not verified")


def test_missing_unlisted_and_mislabelled_rows(mini_busbra):
    (mini_busbra / IMAGES / "bus_0002-r.png").unlink()
    shutil.copy(mini_busbra / IMAGES / "bus_0001-l.png", mini_busbra / IMAGES / "extra.png")
    report = check_busbra(mini_busbra)
    assert report.ok  # a missing or unlabelled image is a warning: the rest is usable
    assert any("missing" in p.what and "bus_0002-r" in p.what for p in report.warnings)
    assert any("no row" in p.what and "extra.png" in p.what for p in report.warnings)
    assert sum(report.images.values()) == 20
    csv = mini_busbra / BUSBRA["table"]
    csv.write_text(csv.read_text().replace(",malignant,", ",maybe,", 1))
    report = check_busbra(mini_busbra)
    assert not report.ok and "maybe" in report.errors[0].todo
    with pytest.raises(BcdetError, match="Pathology other than benign / malignant"):
        read_busbra(mini_busbra)


def test_a_table_without_the_patient_column_is_refused(mini_busbra):
    csv = mini_busbra / BUSBRA["table"]
    csv.write_text(csv.read_text().replace("ID,Case,", "ID,Patient,", 1))
    report = check_busbra(mini_busbra)
    assert not report.ok and "Case" in report.errors[0].todo


def test_cli_data_check_busbra(mini_busbra, capsys, monkeypatch):
    assert main(["data", "check", "--busbra", str(mini_busbra)]) == 0
    out = capsys.readouterr().out
    assert "BUS-BRA folder" in out and "patients (Case)" in out and "Result: OK" in out
    monkeypatch.setenv("BCDET_BUSBRA", str(mini_busbra))  # no PATH: the environment variable's
    assert main(["data", "check", "--busbra"]) == 0
    assert str(mini_busbra.resolve()) in capsys.readouterr().out


@pytest.mark.realdata
def test_real_busbra_matches_its_record(real_busbra):
    report = check_busbra(real_busbra)
    assert report.ok, report.format()
    assert report.images == dict(BUSBRA["images"]) and report.patients == BUSBRA["patients"]
    assert report.devices == dict(BUSBRA["devices"])
    assert report.warnings == []


# ===================================================================================== scan area
CAPTURES = [
    dict(seed=0),
    dict(seed=1, box=(100, 50, 600, 460)),
    dict(seed=2, size=(800, 600), box=(0, 60, 800, 520)),  # frame above and below only
    dict(seed=3, box=(200, 120, 420, 330)),  # a small scan: text is dense within its columns
    dict(seed=4, box=(60, 40, 620, 440)),
]


@pytest.mark.parametrize("kw", CAPTURES, ids=lambda kw: f"seed{kw['seed']}")
def test_the_scan_area_of_a_screen_capture_is_found(kw):
    img, truth = screen_capture(**kw)
    cropped, box, info = crop_scan_area(img)
    assert info.cropped and info.reason == "cropped"
    assert np.abs(np.subtract(box, truth)).max() <= 2, (box, truth)
    assert cropped.size == (box[2] - box[0], box[3] - box[1])
    assert np.array_equal(np.asarray(cropped), np.asarray(img.crop(box)))  # a crop, nothing else
    w, h = img.size
    assert info.removed == pytest.approx(1 - cropped.size[0] * cropped.size[1] / (w * h), abs=1e-3)


def test_text_bands_and_the_colour_bar_go_while_marks_inside_the_scan_stay():
    img, truth = screen_capture(seed=0)
    cropped, box, _ = crop_scan_area(img)
    rgb = np.asarray(img).astype(int)
    white = rgb.min(axis=2) > 200
    assert white[:30].any() and white[truth[3]:].any()  # the header and footer text are there ...
    assert white[:, :100].any()  # ... and the side panel
    assert box[1] >= 30 and box[3] <= truth[3] + 2 and box[0] >= 100  # ... and outside the box
    bar = (rgb[..., 2] - rgb[..., 1] > 100) & (np.arange(img.size[0]) > truth[2])[None, :]
    assert bar.any() and box[2] < np.flatnonzero(bar.any(axis=0)).min()  # the colour bar is cut off
    inside = np.asarray(cropped).astype(int)
    red = (inside[..., 0] > 150) & (inside[..., 1] < 80)
    yellow = (inside[..., 0] > 200) & (inside[..., 1] > 200) & (inside[..., 2] < 80)
    assert red.sum() > 1000 and yellow.any()  # the Doppler-like patch and the caliper stay
    assert (inside.min(axis=2) > 200).any()  # so does the text burned into the scan


@pytest.mark.parametrize("dark_bottom", [False, True])
def test_a_plain_scan_comes_through_unchanged(dark_bottom):
    for seed in range(3):
        img = plain_scan(seed, dark_bottom=dark_bottom)
        out, box, info = crop_scan_area(img)
        assert out is img and box == (0, 0, *img.size) and not info.cropped
    # a thin black line around a scan (some exports have one) is under MIN_REMOVED: kept as it is
    framed = np.pad(np.asarray(plain_scan(0)), 1)
    out, box, info = crop_scan_area(Image.fromarray(framed))
    assert not info.cropped and "under" in info.reason and np.array_equal(np.asarray(out), framed)
    assert MIN_REMOVED > 1 - (framed.shape[0] - 2) * (framed.shape[1] - 2) / framed.size


def test_a_deep_field_fading_to_black_is_never_cut():
    img, truth = screen_capture(seed=5, dark_bottom=True)
    _, box, info = crop_scan_area(img)
    assert info.cropped
    assert np.abs(np.subtract(box[:3], truth[:3])).max() <= 2  # top, left, right: found
    assert box[3] >= truth[3]  # the bottom keeps all of the scan (and the frame below it)


def test_crop_summary_says_how_many_and_how_much():
    infos = [crop_scan_area(screen_capture(seed=s)[0])[2] for s in (0, 1)] + \
            [crop_scan_area(plain_scan(s))[2] for s in (0, 1, 2)]
    line = crop_summary(infos)
    removed = sorted(i.removed for i in infos if i.cropped)
    assert line.startswith("cropped 2 of 5 images (median ")
    assert f"median {100 * np.median(removed):.0f} % of the area removed" in line
    assert crop_summary(infos[2:]) == "cropped 0 of 3 images (no screen-capture frame found)"


def test_scan_areas_load_like_the_cache(tmp_path):
    """``load_scan_areas`` = ``load_images`` for images with no frame, in every mode a folder brings;
    a capture comes out as its crop, squashed like everything else."""
    pytest.importorskip("torch")
    from bcdet_helpers.data.cache import load_images, load_scan_areas, squash

    scan = plain_scan(1)
    paths = {"l.png": scan, "rgb.png": scan.convert("RGB"), "p.png": scan.convert("P"),
             "rgba.png": scan.convert("RGBA"), "i16.png": Image.fromarray(np.asarray(scan).astype(np.uint16) * 250)}
    for name, im in paths.items():
        im.save(tmp_path / name)
    files = [tmp_path / n for n in paths]
    for channels in (1, 3):
        x, infos = load_scan_areas(files, 32, channels)
        assert not any(i.cropped for i in infos)
        assert np.array_equal(x.numpy(), load_images(files, 32, channels).numpy())
    capture, truth = screen_capture(seed=0)
    capture.save(tmp_path / "capture.png")
    x, (info,) = load_scan_areas([tmp_path / "capture.png"], 32, 1)
    assert info.cropped and np.array_equal(x[0].numpy(), squash(capture.crop(info.box).convert("L"), 32))


@pytest.mark.realdata
def test_real_scan_areas_come_through_unchanged(real_busi, real_busbra):
    """BUSI and BUS-BRA are scan areas already: a sample of each (every 9th image) is not cropped,
    or by a few rows at most (all of BUSI and all but one of BUS-BRA, bus_0250-l, at 2 %)."""
    from bcdet_helpers.data.images import read_image

    files = sorted(real_busi.glob("*/*).png"))[::9] + sorted((real_busbra / IMAGES).glob("*.png"))[::9]
    infos = [crop_scan_area(read_image(f, "RGB"))[2] for f in files]
    cut = [i.removed for i in infos if i.cropped]
    assert len(files) > 250 and len(cut) <= 0.01 * len(files) and max(cut, default=0) < 0.05, crop_summary(infos)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from bcdet_helpers.model import build_model
    from bcdet_helpers.profiles import get_profile

    torch.manual_seed(0)
    model = build_model(get_profile("smoke", image_size=32, width=4))
    meta = {"image_size": 32, "channels": 1, "width": 4, "mean": 0.3, "std": 0.2, "classes": CLASSES,
            "profile": "smoke", "schedule": "switching", "split": "grouped", "seed": 0, "best_epoch": 1}
    path = tmp_path / "best.pt"
    torch.save({"model": model.state_dict(), "meta": meta}, path)
    return path


def test_cli_evaluate_crops_captures_and_says_so(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "hospital"
    for cls, seeds in (("benign", (0, 1)), ("malignant", (2,))):
        (folder / cls).mkdir(parents=True)
        for s in seeds:
            screen_capture(seed=s)[0].save(folder / cls / f"capture{s}.png")
            plain_scan(s).save(folder / cls / f"scan{s}.png")
    out = tmp_path / "eval"
    args = ["evaluate", str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "cropped 3 of 6 images (median " in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["crop"]["mode"] == "auto" and m["crop"]["cropped"] == 3 and m["crop"]["images"] == 6
    boxes = {p["file"].rsplit("/", 1)[-1]: p["crop_box"] for p in m["predictions"]}
    assert boxes["scan0.png"] is None and boxes["capture0.png"] == list(screen_capture(seed=0)[1])
    assert main(args + ["--crop", "off"]) == 0
    assert "crop off" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["crop"] == {"mode": "off"} and all(p["crop_box"] is None for p in m["predictions"])


# ========================================================================= the lesion question
def test_choose_threshold_is_the_highest_that_reaches_the_target():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40, bool), np.zeros(60, bool)]
    p = np.r_[rng.uniform(0.2, 1, 40), rng.uniform(0, 0.6, 60)]
    for target in (0.5, 0.9, 0.95, 1.0):
        t = choose_threshold(y, p, target)
        assert (p[y] >= t).mean() >= target  # reaches the target on validation ...
        higher = np.min(p[y][p[y] > t], initial=np.inf)
        assert (p[y] >= higher).mean() < target  # ... and the next malignant score up would not
    assert choose_threshold(y, p, 1.0) == p[y].min()
    ties = choose_threshold([1, 1, 1, 1, 0], [0.7, 0.7, 0.7, 0.2, 0.9], 0.75)
    assert ties == 0.7
    with pytest.raises(ValueError, match="no malignant"):
        choose_threshold([0, 0], [0.1, 0.2])


def _external_set(rng, n_patients=300, per_patient=3, shift=0.0):
    """Benign/malignant images of patients holding ``per_patient`` strongly correlated images each:
    a patient's images share one lesion, so their scores differ by a little noise only."""
    patients = np.repeat(np.arange(n_patients), per_patient)
    malignant = np.repeat(rng.random(n_patients) < 0.35, per_patient)
    lesion = np.repeat(rng.normal(0, 1, n_patients), per_patient)
    logit = 1.2 * malignant + lesion + rng.normal(0, 0.15, len(patients)) - 0.6 + shift
    p_mal = 1 / (1 + np.exp(-logit))
    p_norm = np.where(rng.random(len(patients)) < 0.05, 0.9, 0.02) * (1 - p_mal)
    proba = np.c_[1 - p_mal - p_norm, p_mal, p_norm]
    return np.where(malignant, "malignant", "benign"), proba, patients


def test_the_threshold_is_carried_over_never_chosen_on_the_external_set():
    rng = np.random.default_rng(1)
    y_val = rng.random(400) < 0.3
    p_val = 1 / (1 + np.exp(-(2.5 * y_val + rng.normal(0, 1, 400) - 1)))
    t = choose_threshold(y_val, p_val, 0.9)
    # the external scanner shifts every probability down: at BUSI's threshold it finds fewer cancers
    y, proba, patients = _external_set(rng, shift=-1.5)
    res = score_external(y, proba, patients, threshold=t, n_boot=200)
    expected_sens = (proba[y == "malignant", 1] >= t).mean()
    assert res.threshold == t and res.overall.sensitivity.value == pytest.approx(expected_sens)
    assert res.overall.sensitivity.value < 0.75  # not the 0.9 a threshold chosen on these labels would give
    # poisoning the external labels changes the scores, never the threshold
    poisoned = np.where(y == "malignant", "benign", "malignant")
    res_p = score_external(poisoned, proba, patients, threshold=t, n_boot=200)
    assert res_p.threshold == t == choose_threshold(y_val, p_val, 0.9)
    assert res_p.overall.sensitivity.value == pytest.approx((proba[poisoned == "malignant", 1] >= t).mean())
    assert res_p.overall.auc.value == pytest.approx(1 - res.overall.auc.value)
    with pytest.raises(TypeError):
        score_external(y, proba, patients)  # no threshold: nothing here may choose one
    with pytest.raises(ValueError, match="choose_threshold"):
        score_external(y, proba, patients, threshold=None)


def test_patient_intervals_are_wider_than_image_intervals_when_images_are_correlated():
    rng = np.random.default_rng(2)
    y, proba, patients = _external_set(rng, n_patients=200, per_patient=4)
    kw = dict(threshold=0.4, n_boot=1000, seed=0)
    by_patient = score_external(y, proba, patients, **kw).overall
    by_image = score_external(y, proba, None, **kw).overall
    assert by_patient.n_patients == 200 and by_image.n_patients == 800
    for name in ("auc", "sensitivity", "specificity"):
        wide, narrow = getattr(by_patient, name), getattr(by_image, name)
        assert wide.value == narrow.value  # the same estimate ...
        assert wide.half_width > 1.5 * narrow.half_width, name  # ... about sqrt(4) = 2 x less certain


def test_every_resample_keeps_a_patients_images_together():
    rng = np.random.default_rng(3)
    patients = rng.permutation(np.repeat([f"case{i}" for i in range(50)], rng.integers(1, 5, 50)))
    w = patient_weights(patients, 300, seed=7)
    assert w.shape == (300, len(patients))
    for pat in np.unique(patients):
        cols = w[:, patients == pat]
        assert (cols == cols[:, :1]).all()  # one weight per patient per resample
    first = np.unique(patients, return_index=True)[1]
    assert (w[:, first].sum(1) == 50).all()  # 50 patients drawn per resample
    assert (w[:, first] == 0).any() and (w[:, first] >= 2).any()  # with replacement
    # and these are the resamples the scores use: the sensitivity interval, rebuilt from the weights
    y = rng.random(len(patients)) < 0.4
    p = np.clip(0.3 * y + rng.random(len(patients)) * 0.7, 0, 1)
    s = score_lesions(y, p, np.zeros(len(y), bool), patients, threshold=0.5, n_boot=300, seed=7)
    reps = (w * (y & (p >= 0.5))).sum(1) / (w * y).sum(1)
    assert (s.sensitivity.low, s.sensitivity.high) == pytest.approx(tuple(np.nanquantile(reps, [0.025, 0.975])))


def test_auc_and_ece_resamples_equal_sklearn_and_uncertainty():
    from sklearn.metrics import roc_auc_score

    from bcdet_helpers.research.external import _auc_replicates, _ece_replicates
    from bcdet_helpers.uncertainty import expected_calibration_error, reliability

    rng = np.random.default_rng(4)
    y, proba, patients = _external_set(rng, n_patients=120)
    is_mal, p = y == "malignant", np.round(proba[:, 1], 2)  # rounded: ties, as real scores have
    w = patient_weights(patients, 6, seed=1)
    binary = np.c_[1 - p, p]
    for row, auc, ece in zip(w, _auc_replicates(is_mal, p, w), _ece_replicates(is_mal.astype(int), binary, w, 10)):
        assert auc == pytest.approx(roc_auc_score(is_mal, p, sample_weight=row))
        idx = np.repeat(np.arange(len(p)), row)
        assert ece == pytest.approx(expected_calibration_error(is_mal[idx].astype(int), binary[idx]))
    s = score_lesions(is_mal, p, np.zeros(len(p), bool), patients, threshold=0.5, n_boot=50)
    assert s.auc.value == pytest.approx(roc_auc_score(is_mal, p))
    assert s.ece.value == pytest.approx(expected_calibration_error(is_mal.astype(int), binary))
    np.testing.assert_equal(s.reliability, reliability(is_mal.astype(int), binary))  # NaN == NaN here
    assert s.auc.low <= s.auc.value <= s.auc.high


def test_share_predicted_normal_counts_lesions_called_normal():
    y = np.array(["benign"] * 6 + ["malignant"] * 4 + ["normal"] * 2)
    proba = np.tile([0.6, 0.3, 0.1], (12, 1))
    proba[[0, 7, 10]] = [0.1, 0.2, 0.7]  # two lesions called normal; a normal image (left out)
    res = score_external(y, proba, np.arange(12) // 2, threshold=0.25, n_boot=100)
    assert res.n_other == 2 and res.overall.n_images == 10
    assert res.overall.predicted_normal.value == pytest.approx(2 / 10)
    assert (res.overall.n_benign, res.overall.n_malignant) == (6, 4)


def test_per_device_rows_only_for_scanners_with_100_images():
    rng = np.random.default_rng(5)
    sizes = {"A": 150, "B": 100, "C": 99, "D": 20}
    devices = np.concatenate([[d] * n for d, n in sizes.items()])
    n = len(devices)
    y = np.where(rng.random(n) < 0.35, "malignant", "benign")
    y[devices == "D"] = "benign"  # one class only: its AUC is undefined (it gets no row anyway)
    p = np.clip(0.3 * (y == "malignant") + 0.7 * rng.random(n), 0, 0.95)
    proba = np.c_[1 - p - 0.01, p, np.full(n, 0.01)]
    patients = np.array([f"{d}{i // 2}" for d, i in zip(devices, range(n))])
    res = score_external(y, proba, patients, devices, threshold=0.5, n_boot=100)
    assert [d.name for d in res.per_device] == ["A", "B"]
    assert [d.n_images for d in res.per_device] == [150, 100]
    assert res.devices_too_small == {"C": 99, "D": 20}
    assert res.per_device[0].n_patients == len(set(patients[devices == "A"]))
    assert res.overall.n_images == n
    assert score_external(y, proba, patients, devices, threshold=0.5, n_boot=50, min_device_images=99
                          ).devices_too_small == {"D": 20}


def test_the_result_is_typed_and_strict_json():
    rng = np.random.default_rng(6)
    y, proba, patients = _external_set(rng, n_patients=60)
    y[:] = "benign"  # no malignant image: AUC and sensitivity are undefined -> null, not NaN
    res = score_external(y, proba, patients, np.array(["GE"] * len(y)), threshold=0.5, n_boot=50,
                         threshold_source="BUSI validation (target sensitivity 0.9)")
    assert isinstance(res, ExternalResult) and math.isnan(res.overall.auc.value)
    d = json.loads(res.to_json())  # allow_nan=False inside: NaN would raise
    assert d["overall"]["auc"]["value"] is None and d["overall"]["specificity"]["value"] is not None
    assert d["threshold"] == 0.5 and d["resampled"] == "patients" and d["per_device"][0]["name"] == "GE"
    assert set(d["overall"]) >= {"auc", "sensitivity", "specificity", "predicted_normal", "ece", "reliability"}
    assert "threshold p(malignant) >= 0.500" in res.format() and "GE:" in res.format()
