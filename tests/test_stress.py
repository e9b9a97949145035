"""Issue #30 item 5, acquisition-shift stress tests (:mod:`bcdet_helpers.research.shifts`, :mod:`bcdet_helpers.research.stress`,
:mod:`bcdet_helpers.research.resemblance`): every shift is the
identity at severity 0, grows with severity, stays uint8 and reproducible; the stress curves show a
known drop with known intervals; the resemblance finds a shift it was given; sizes come from headers.
Generated BUSI-like images throughout; the real copies (BCDET_DATA, BCDET_BUSBRA) in one test that
prints which shift BUS-BRA resembles, skipped without them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bcdet_helpers.busi import CLASSES
from bcdet_helpers.data.cache import load_images
from bcdet_helpers.research.resemblance import (STATISTICS, compare_profiles, compare_sizes, intensity_profile, resemblance,
                                       size_table)
from bcdet_helpers.research.shifts import SHIFTS, apply_shift
from bcdet_helpers.research.stress import plot_stress, stress_curves, stress_run
from fakebusi import make_busi

SIZE = 64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors of 36 x 64 x 64 gain nothing from threads, and on a busy machine two threads fighting
    for cores made this file 5x slower; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _busi_like(root, per_class: int, seed: int) -> torch.Tensor:
    folder = make_busi(root, per_class, seed=seed, with_duplicates=False)
    paths = sorted(p for p in folder.rglob("*.png") if "_mask" not in p.name)
    return load_images(paths, SIZE, 1)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """36 BUSI-like images at the model's size (12 per class), 1 channel."""
    return _busi_like(tmp_path_factory.mktemp("stress-a"), 12, seed=0)


@pytest.fixture(scope="module")
def other_images(tmp_path_factory):
    """Another 45 BUSI-like images (other seed): the 'external' set of the resemblance tests."""
    return _busi_like(tmp_path_factory.mktemp("stress-b"), 15, seed=1)


def _mad(a, b) -> float:
    return float((a.float() - b.float()).abs().mean())


# ============================================================================================ shifts
@pytest.mark.parametrize("name", list(SHIFTS))
def test_severity_zero_is_the_identity_and_the_input_is_never_touched(name, images):
    before = images.clone()
    assert torch.equal(apply_shift(images, name, 0), images)
    assert torch.equal(SHIFTS[name](images, 0, np.random.default_rng(3)), images)
    for s in range(1, 5):
        apply_shift(images, name, s)
    assert torch.equal(images, before)


@pytest.mark.parametrize("name", list(SHIFTS))
@pytest.mark.parametrize("channels", [1, 3])
def test_shifts_keep_uint8_shape_and_grow_with_severity(name, channels, images):
    x = images.expand(-1, channels, -1, -1).contiguous()
    changes = []
    for s in range(5):
        out = apply_shift(x, name, s, seed=1)
        assert out.dtype == torch.uint8 and out.shape == x.shape
        if channels == 3:  # a grayscale picture stays grayscale: the same change in every channel
            assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
        changes.append(_mad(out, x))
    assert changes[0] == 0
    assert all(b > a for a, b in zip(changes, changes[1:])), f"{name}: mean |change| by severity {changes}"


@pytest.mark.parametrize("name", list(SHIFTS))
def test_shifts_are_reproducible_from_the_seed(name, images):
    a, b = apply_shift(images, name, 3, seed=7), apply_shift(images, name, 3, seed=7)
    assert torch.equal(a, b)
    if name in ("speckle", "overlay"):  # the random ones: another seed, other noise and marks
        assert not torch.equal(a, apply_shift(images, name, 3, seed=8))


def test_bad_inputs_are_refused(images):
    with pytest.raises(ValueError, match="severity"):
        apply_shift(images, "blur", 5)
    with pytest.raises(ValueError, match="uint8"):
        SHIFTS["blur"](images.float(), 1, None)
    with pytest.raises(ValueError, match="unknown shift"):
        apply_shift(images, "fog", 1)


def test_shifts_do_what_they_say(images):
    x = images.float()
    assert apply_shift(images, "gain_up", 3).float().mean() > x.mean() > apply_shift(images, "gain_down", 3).float().mean()
    prof = {name: intensity_profile(apply_shift(images, name, 4)).median() for name in SHIFTS}
    base = intensity_profile(images).median()
    assert prof["contrast_up"]["contrast"] > base["contrast"] > prof["contrast_down"]["contrast"]
    assert prof["speckle"]["speckle"] > base["speckle"]
    assert prof["blur"]["sharpness"] < base["sharpness"] and prof["lower_resolution"]["sharpness"] < base["sharpness"]
    assert abs(prof["gain_up"]["speckle"] - base["speckle"]) < 0.02  # speckle contrast ignores gain
    marked = apply_shift(images, "overlay", 2) != images
    assert marked.any(dim=(1, 2, 3)).all()  # every image got its marks


# ===================================================================================== stress curves
def _sharpness_data(n_per_class: int = 40, seed: int = 0):
    """Noise images whose class is their grain: malignant raw (sharp), benign lightly smoothed,
    normal smoothed more; pairs share a group (near-duplicates)."""
    from torchvision.transforms.functional import gaussian_blur

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k, sigma in ((CLASSES.index("malignant"), 0.0), (CLASSES.index("benign"), 0.9), (CLASSES.index("normal"), 1.8)):
        x = torch.from_numpy(rng.normal(128, 40, (n_per_class, 1, SIZE, SIZE)).astype(np.float32))
        if sigma:
            x = gaussian_blur(x, [9, 9], [sigma, sigma])
            x = 128 + (x - 128) * 40 / x.std()  # same spread: only the grain tells the classes apart
        xs.append(x.round().clamp(0, 255).to(torch.uint8))
        ys += [k] * n_per_class
    images, y = torch.cat(xs), np.array(ys)
    return images, y, np.arange(len(y)) // 2


def _sharpness_predictor(images, y):
    """Class by sharpness (:func:`intensity_profile`), thresholds half-way between the classes' medians
    on the clean images; probabilities from the distance to each class's median."""
    sharp = intensity_profile(images)["sharpness"].to_numpy()
    centers = np.array([np.median(sharp[y == k]) for k in range(3)])

    def predict(x):
        s = intensity_profile(x)["sharpness"].to_numpy()[:, None]
        logits = -np.abs(np.log(s) - np.log(centers)[None]) * 8
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    return predict


def test_stress_curves_show_the_drop_with_intervals_that_hold_the_value():
    images, y, groups = _sharpness_data()
    predict = _sharpness_predictor(images, y)
    curves = stress_curves(predict, images, y, groups, shifts={k: SHIFTS[k] for k in ("blur", "gain_up")}, n_boot=300)
    assert list(curves.columns) == ["shift", "severity", "metric", "value", "low", "high"]
    assert len(curves) == 2 * 5 * 3
    assert ((curves["low"] <= curves["value"] + 1e-12) & (curves["value"] <= curves["high"] + 1e-12)).all()
    v = curves.set_index(["shift", "severity", "metric"])["value"]
    assert v["blur", 0, "accuracy"] > 0.9 and v["blur", 0, "malignant_auc"] > 0.95
    assert v["blur", 0, "accuracy"] == v["gain_up", 0, "accuracy"]  # severity 0 is one prediction, shown twice
    assert v["blur", 4, "accuracy"] < v["blur", 0, "accuracy"] - 0.4  # blur makes every image look smooth
    assert v["blur", 4, "balanced_accuracy"] < 0.5
    assert v["gain_up", 2, "accuracy"] > 0.85  # the predictor ignores brightness
    assert (curves["high"] - curves["low"]).max() < 0.5


def test_stress_curves_use_the_studys_cluster_bootstrap():
    from bcdet_helpers.research.stats import cluster_bootstrap

    images, y, groups = _sharpness_data(10)
    predict = _sharpness_predictor(images, y)
    curves = stress_curves(predict, images, y, groups, shifts={"blur": SHIFTS["blur"]}, severities=[0, 2], n_boot=200, seed=4)
    ci = cluster_bootstrap(y, predict(apply_shift(images, "blur", 2, seed=4)), groups, n_boot=200, seed=4)["accuracy"]
    row = curves[(curves["severity"] == 2) & (curves["metric"] == "accuracy")].iloc[0]
    assert (row["value"], row["low"], row["high"]) == pytest.approx((ci.value, ci.low, ci.high))
    again = stress_curves(predict, images, y, groups, shifts={"blur": SHIFTS["blur"]}, severities=[0, 2], n_boot=200, seed=4)
    pd.testing.assert_frame_equal(curves, again)


def test_plot_stress_draws_one_panel_per_metric_and_a_line_per_shift():
    images, y, groups = _sharpness_data(8)
    curves = stress_curves(_sharpness_predictor(images, y), images, y, groups,
                           shifts={k: SHIFTS[k] for k in ("blur", "speckle", "zoom")}, n_boot=50)
    fig = plot_stress(curves)
    axes = fig.get_axes()
    assert len(axes) == 3 and all(len(ax.get_lines()) == 3 for ax in axes)
    two_arms = pd.concat([curves.assign(arm="constant"), curves.assign(arm="switching")])
    assert len(plot_stress(two_arms).get_axes()) == 6


def test_stress_run_scores_a_run_folder(busi_dir, monkeypatch):
    """A trained smoke run through :func:`stress_run`: its test images, its checkpoint, every shift."""
    from bcdet_helpers.data import load_split_data
    from bcdet_helpers.runs import train_run

    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    res = train_run("smoke", "constant", kind="grouped", fold=0, seed=0, device="cpu", progress=False)
    data = load_split_data("smoke", kind="grouped", seed=0, fold=0)
    curves = stress_run(res.run_dir, data, n_boot=50, shifts={k: SHIFTS[k] for k in ("blur", "overlay")})
    n_test = int((data.parts == "test").sum())
    assert set(curves["arm"]) == {"constant"} and len(curves) == 2 * 5 * 3 and n_test > 0
    assert curves["value"].between(0, 1).all()
    pooled = stress_run([res.run_dir, res.run_dir], [data, data], n_boot=50, shifts={"blur": SHIFTS["blur"]})
    single = curves[curves["shift"] == "blur"].reset_index(drop=True)
    assert np.allclose(pooled["value"], single["value"])  # the same run twice pools to the same scores


# ========================================================================================= resemblance
def test_intensity_profile_columns_and_values(images):
    prof = intensity_profile(images)
    assert list(prof.columns) == list(STATISTICS) and len(prof) == len(images)
    flat = images.float().flatten(1)
    assert np.allclose(prof["mean"], flat.mean(1).numpy(), atol=1e-3)
    black = intensity_profile(torch.zeros((2, 1, SIZE, SIZE), dtype=torch.uint8))
    assert (black["dark_fraction"] == 1).all()


@pytest.mark.parametrize("shift, severity", [("gain_up", 3), ("gain_down", 2), ("contrast_down", 3), ("blur", 3),
                                             ("speckle", 2)])
def test_resemblance_finds_the_shift_it_was_given(shift, severity, images, other_images):
    external = apply_shift(other_images, shift, severity, seed=11)  # other images, other noise
    table = resemblance(images, external)
    assert list(table.columns[:3]) == ["shift", "severity", "distance"]
    assert table["distance"].is_monotonic_increasing
    top = (table.iloc[0]["shift"], table.iloc[0]["severity"])
    # blur and coarse pixels are both low-pass filters: these statistics cannot tell them apart
    same = {(shift, severity)} | ({("blur", severity), ("lower_resolution", severity)} if shift == "blur" else set())
    assert top in same, table.head(5).to_string()
    cmp = compare_profiles(intensity_profile(images), intensity_profile(external))
    assert list(cmp["statistic"]) == list(STATISTICS)


def test_resemblance_of_busi_to_itself_is_no_shift(images, other_images):
    assert resemblance(images, other_images).iloc[0]["shift"] == "none"


# =============================================================================================== sizes
def test_size_table_reads_headers(tmp_path):
    paths = []
    for i, (w, h) in enumerate([(500, 400), (300, 420), (640, 480)]):
        p = tmp_path / f"img{i}.png"
        Image.new("L", (w, h)).save(p)
        paths.append(p)
    t = size_table(paths)
    assert list(t["width"]) == [500, 300, 640] and list(t["height"]) == [400, 420, 480]
    summary = compare_sizes({"landscape": paths[::2], "portrait": [paths[1]]})
    assert summary.loc[0, "stretch"] == 1 and summary.loc[1, "portrait_share"] == 1
    assert summary.loc[1, "stretch"] == pytest.approx((500 / 400 + 640 / 480) / 2 / (300 / 420))


# ============================================================================================ real data
def _central_patches(paths, side: int = 96) -> torch.Tensor:
    """The central ``side`` x ``side`` pixels of each file, as stored (grayscale, no resize): texture at
    the scanner's own pixel size, apart from the whole picture's layout and the cache's resize."""
    out = []
    for p in paths:
        with Image.open(p) as im:
            a = np.asarray(im.convert("L"))
        top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        out.append(a[top:top + side, left:left + side])
    return torch.from_numpy(np.stack(out))[:, None]


@pytest.mark.realdata
def test_which_shift_busbra_resembles(real_busi, real_busbra, capsys):
    """BUSI's lesion images (benign + malignant: BUS-BRA has no normal images) against BUS-BRA, both
    at the model's 64 px through the study's own readers (BUS-BRA cut to its scan area)."""
    from bcdet_helpers.data.busbra import read_busbra
    from bcdet_helpers.data.cache import load_cache
    from bcdet_helpers.research.study.external import external_images

    cache = load_cache(real_busi, SIZE, 1)
    lesion = cache["labels"] != CLASSES.index("normal")
    busi = cache["images"][lesion]
    busbra, table = external_images(SIZE, 1)
    result = resemblance(busi, busbra)
    profiles = compare_profiles(intensity_profile(busi), intensity_profile(busbra), names=("BUSI", "BUSBRA"))
    busi_files = [real_busi / f for f, keep in zip(cache["files"], lesion.numpy()) if keep]
    sizes = compare_sizes({"BUSI (lesions)": busi_files, "BUS-BRA": list(table["path"])})
    native = compare_profiles(intensity_profile(_central_patches(busi_files)),
                              intensity_profile(_central_patches(table["path"])), names=("BUSI", "BUSBRA"))
    with capsys.disabled(), pd.option_context("display.width", 200, "display.max_columns", 20,
                                               "display.float_format", "{:.3f}".format):
        print(f"\n{len(busi)} BUSI lesion images vs {len(busbra)} BUS-BRA images, 64 px, 1 channel")
        print("\nintensity statistics:\n" + profiles.to_string(index=False))
        print("\nclosest single shifts of BUSI (distance = sum of Wasserstein distances in BUSI sd):\n"
              + result.head(12).to_string(index=False))
        print("\noriginal sizes (file headers):\n" + sizes.to_string(index=False))
        print("\nthe central 96 x 96 px of each original, native pixels (no resize):\n" + native.to_string(index=False))
    assert result.iloc[0]["distance"] < result.set_index(["shift", "severity"]).loc[("none", 0), "distance"]


def test_the_stress_command_names_missing_runs_then_writes_its_curves(busi_dir, tmp_path, monkeypatch, capsys):
    """`bcdet stress` trains nothing: without the runs' weights it says which and how to train them (one line);
    with them it writes curves.csv and stress.png."""
    from bcdet_helpers.research import cli
    from bcdet_helpers.runs import train_run

    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path))
    assert cli.main(["stress", "--profile", "smoke", "--arm", "constant"]) == 2
    err = capsys.readouterr().err
    assert "have no weights" in err and "bcdet study --profile smoke" in err and len(err.strip().splitlines()) == 1
    for fold in range(5):
        train_run("smoke", "constant", seed=0, fold=fold, device="cpu", progress=False)
    assert cli.main(["stress", "--profile", "smoke", "--arm", "constant", "--out", str(tmp_path / "s")]) == 0
    curves = pd.read_csv(tmp_path / "s" / "curves.csv")
    assert {"shift", "severity", "metric", "value"} <= set(curves.columns) and (tmp_path / "s" / "stress.png").exists()
    # never over a folder bcdet did not write (#27's rule), checked before any work; its own folder it rewrites
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "curves.csv").write_text("my own numbers\n")
    assert cli.main(["stress", "--profile", "smoke", "--arm", "constant", "--out", str(tmp_path / "mine")]) == 2
    assert "Refusing to replace" in capsys.readouterr().err
    assert (tmp_path / "mine" / "curves.csv").read_text() == "my own numbers\n"
    assert cli.main(["stress", "--profile", "smoke", "--arm", "constant", "--out", str(tmp_path / "s")]) == 0
    assert "bcdet stress --profile smoke --arm constant" in (tmp_path / "s" / ".bcdet-output").read_text()
    with pytest.raises(SystemExit):  # --out or --record, not both: argparse says so
        cli.main(["stress", "--profile", "smoke", "--arm", "constant", "--record", "--out", "x"])
