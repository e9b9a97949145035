"""Evaluation code against small cases worked out by hand (no training needed), plus the
``bcdet predict`` / ``bcdet evaluate`` commands on a tiny checkpoint."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bcdet_helpers import evaluate as ev


def proba_from(pred, k=3, p=0.8):
    """Probabilities whose arg-max is ``pred`` (p on the predicted class, the rest shared)."""
    out = np.full((len(pred), k), (1 - p) / (k - 1))
    out[np.arange(len(pred)), pred] = p
    return out


# 10 images, 3 classes. Worked by hand:
#             predicted  0  1  2
#   true 0 (4 images)    3  1  0
#   true 1 (3 images)    1  2  0
#   true 2 (3 images)    0  1  2
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 0, 2, 2, 1])


def test_metrics_match_a_hand_computed_confusion_matrix():
    m = ev.metrics(Y_TRUE, proba_from(Y_PRED))
    assert m["confusion_matrix"] == [[3, 1, 0], [1, 2, 0], [0, 1, 2]]
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(7 / 10)
    b, mal, nor = (m["per_class"][c] for c in ("benign", "malignant", "normal"))
    # benign: TP 3, FP 1, FN 1, TN 5
    assert (b["precision"], b["recall"], b["specificity"], b["f1"]) == pytest.approx((3 / 4, 3 / 4, 5 / 6, 3 / 4))
    # malignant: TP 2, FP 2, FN 1, TN 5
    assert (mal["precision"], mal["recall"], mal["specificity"]) == pytest.approx((2 / 4, 2 / 3, 5 / 7))
    assert mal["f1"] == pytest.approx(4 / 7)
    # normal: TP 2, FP 0, FN 1, TN 7
    assert (nor["precision"], nor["recall"], nor["specificity"], nor["f1"]) == pytest.approx((1, 2 / 3, 1, 0.8))
    assert [b["support"], mal["support"], nor["support"]] == [4, 3, 3]
    assert m["macro_f1"] == pytest.approx((3 / 4 + 4 / 7 + 0.8) / 3)
    assert m["weighted_f1"] == pytest.approx((4 * 3 / 4 + 3 * 4 / 7 + 3 * 0.8) / 10)
    assert m["macro_specificity"] == pytest.approx((5 / 6 + 5 / 7 + 1) / 3)
    assert ev.accuracy(Y_TRUE, proba_from(Y_PRED)) == pytest.approx(0.7)
    assert ev.macro_f1(Y_TRUE, proba_from(Y_PRED)) == pytest.approx(m["macro_f1"])


def test_auc_is_one_vs_rest_and_nan_for_an_absent_class():
    y = np.array([0, 0, 1, 1])
    # class 0 scores: perfectly ranked; class 1 scores: perfectly reversed
    proba = np.array([[0.6, 0.35, 0.05], [0.5, 0.45, 0.05], [0.3, 0.1, 0.6], [0.2, 0.1, 0.7]])
    m = ev.metrics(y, proba)
    assert m["per_class"]["benign"]["auc"] == pytest.approx(1.0)
    assert m["per_class"]["malignant"]["auc"] == pytest.approx(0.0)  # class 1 scored lowest
    assert math.isnan(m["per_class"]["normal"]["auc"])  # no normal image: undefined, not 0 or 1
    assert m["macro_auc"] == pytest.approx(0.5)  # mean over the defined classes only
    assert set(ev.roc_curves(y, proba)) == {"benign", "malignant"}


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError):
        ev.metrics([0, 1], np.ones((3, 3)) / 3)
    with pytest.raises(ValueError):
        ev.metrics([0, 1], np.ones((2, 2)) / 2)  # 2 columns, 3 classes


def test_ece_zero_when_calibrated_and_the_gap_when_overconfident():
    y = np.zeros(10, int)
    # says 0.8 for class 0, right 8 of 10 times -> calibrated
    pred = np.array([0] * 8 + [1] * 2)
    proba = np.array([[0.8, 0.1, 0.1] if p == 0 else [0.1, 0.8, 0.1] for p in pred])
    assert ev.expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)
    # says 0.99, right 7 of 10 times -> ECE = 0.29
    pred = np.array([0] * 7 + [1] * 3)
    proba = np.array([[0.99, 0.005, 0.005] if p == 0 else [0.005, 0.99, 0.005] for p in pred])
    assert ev.expected_calibration_error(y, proba) == pytest.approx(0.29)
    # two bins: 5 at 0.6 all right (gap 0.4), 5 at 0.9 with 4 right (gap 0.1) -> 0.25
    proba = np.array([[0.6, 0.2, 0.2]] * 5 + [[0.9, 0.05, 0.05]] * 4 + [[0.05, 0.9, 0.05]])
    assert ev.expected_calibration_error(y, proba) == pytest.approx(0.25)
    bins = ev.reliability(y, proba)
    full = [b for b in bins if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in full] == [(5, 1.0), (5, 0.8)]
    assert sum(b["count"] for b in bins) == 10 and len(bins) == 10


def test_bootstrap_ci_contains_the_estimate_narrows_with_more_images_and_is_seeded():
    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.8, y, (y + 1) % 3)  # ~80% right
        return y, proba_from(pred)

    y, p = sample(120)
    small = ev.bootstrap_ci(y, p, ev.accuracy, n=500, seed=1)
    assert small["low"] <= small["value"] <= small["high"]
    assert small["value"] == pytest.approx(ev.accuracy(y, p))
    assert small == ev.bootstrap_ci(y, p, ev.accuracy, n=500, seed=1)
    big = ev.bootstrap_ci(*sample(2000), ev.accuracy, n=500, seed=1)
    assert big["high"] - big["low"] < (small["high"] - small["low"]) / 2  # ~1/sqrt(n): 4x narrower
    # ~120 images at ~80%: the 95% interval is several points wide either side
    assert small["high"] - small["low"] > 0.08
    wide = ev.bootstrap_ci(y, p, ev.macro_f1, n=200, seed=0, alpha=0.5)
    narrow_alpha = ev.bootstrap_ci(y, p, ev.macro_f1, n=200, seed=0, alpha=0.05)
    assert narrow_alpha["high"] - narrow_alpha["low"] > wide["high"] - wide["low"]


def test_paired_comparison_says_when_too_few_runs_and_detects_a_consistent_gain():
    one = ev.paired_comparison([0.8], [0.7])
    assert one["n_pairs"] == 1 and "too few" in one["verdict"]
    assert math.isnan(one["ttest_p"])
    a = [0.85, 0.80, 0.83, 0.90, 0.86]
    b = [0.80, 0.76, 0.80, 0.84, 0.82]
    out = ev.paired_comparison(a, b, names=("switching", "constant"))
    assert out["mean_difference"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert out["switching"]["mean"] == pytest.approx(np.mean(a))
    assert out["constant"]["std"] == pytest.approx(np.std(b, ddof=1))
    assert out["ttest_p"] < 0.05
    assert out["verdict"].startswith("switching is better")
    noisy = ev.paired_comparison([0.8, 0.7, 0.9], [0.75, 0.8, 0.85])
    assert noisy["ttest_p"] > 0.05 and "no significant difference" in noisy["verdict"]
    with pytest.raises(ValueError):
        ev.paired_comparison([0.8, 0.7], [0.8])


def test_cam_mass_in_mask_on_synthetic_maps():
    cam = np.zeros((4, 4))
    cam[0, 0] = 1.0
    mask = np.zeros((8, 8), bool)
    mask[:2, :2] = True  # exactly the top-left cam cell
    assert ev.cam_mass_in_mask(cam, mask) == pytest.approx(1.0)
    assert ev.cam_mass_in_mask(np.ones((4, 4)), mask) == pytest.approx(1 / 16)  # uniform cam = area
    half = np.zeros((8, 8), bool)
    half[:2, :1] = True  # half of the top-left cell
    assert ev.cam_mass_in_mask(cam, half) == pytest.approx(0.5)
    cam2 = np.zeros((4, 4))
    cam2[3, 3] = 2.0
    cam2[0, 0] = 2.0
    assert ev.cam_mass_in_mask(cam2, mask) == pytest.approx(0.5)
    assert math.isnan(ev.cam_mass_in_mask(cam, np.zeros((8, 8), bool)))  # normal: no lesion


def test_grad_cam_points_at_the_evidence():
    torch = pytest.importorskip("torch")
    from torch import nn

    # feature = the image itself (1x1 conv, weight 1); class 0 = mean brightness, class 1 = minus it
    feat = nn.Conv2d(1, 1, 1, bias=False)
    head = nn.Linear(1, 3, bias=False)
    with torch.no_grad():
        feat.weight.fill_(1.0)
        head.weight.copy_(torch.tensor([[1.0], [-1.0], [0.0]]))
    model = nn.Sequential(feat, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, :3, :3] = 1.0  # a bright patch top-left
    cams, idx = ev.grad_cam(model, x, target_layer=feat)
    assert idx.tolist() == [0] and cams.shape == (1, 8, 8)
    assert cams[0, :3, :3].min() == pytest.approx(1.0) and cams[0, 3:, 3:].max() == 0
    mask = np.zeros((8, 8), bool)
    mask[:3, :3] = True
    assert ev.cam_mass_in_mask(cams[0], mask) == pytest.approx(1.0)
    # class 1's evidence is the dark area: the bright patch gets nothing
    cams1, _ = ev.grad_cam(model, x, target_layer=feat, class_idx=1)
    assert cams1[0, :3, :3].max() == 0


def test_grad_cam_on_resnet9_hooks_the_last_residual_block():
    torch = pytest.importorskip("torch")
    from bcdet_helpers.model import ResNet9

    torch.manual_seed(0)
    model = ResNet9(in_channels=1, num_classes=3, width=4)
    assert ev.last_conv_block(model) is model.res2
    x = torch.randn(3, 1, 32, 32)
    cams, idx = ev.grad_cam(model, x)
    assert cams.shape == (3, 4, 4) and idx.shape == (3,)
    assert np.all(cams >= 0) and np.all(cams <= 1 + 1e-6)
    assert not model.training or model.training  # mode restored (no exception)
    up = ev.upsample_cam(cams, 32)
    assert up.shape == (3, 32, 32)


def test_predict_proba_scales_like_training_and_batches():
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8)
    p = ev.predict_proba(model, x, mean=0.4, std=0.2, batch_size=2)
    with torch.no_grad():
        want = torch.softmax(model((x.float() / 255 - 0.4) / 0.2), 1).numpy()
    assert p.shape == (5, 3) and np.allclose(p, want, atol=1e-6)
    assert np.allclose(p.sum(1), 1)
    with pytest.raises(ValueError):
        ev.predict_proba(model, x.float(), 0.4, 0.2)


def test_parse_map_and_folder_dataset(tmp_path):
    from PIL import Image

    from bcdet_helpers.errors import BcdetError

    assert ev.parse_map(["malign=malignant", " Benign = benign "]) == {"malign": "malignant", "Benign": "benign"}
    with pytest.raises(BcdetError):
        ev.parse_map(["malignant"])
    for sub in ("malign", "Benign", "normal"):
        (tmp_path / sub).mkdir()
        Image.new("L", (20, 20)).save(tmp_path / sub / "a.png")
    Image.new("L", (20, 20)).save(tmp_path / "Benign" / "a_mask.png")  # masks are skipped
    (tmp_path / "normal" / "notes.txt").write_text("not an image")
    with pytest.raises(BcdetError, match="--map malign="):
        ev.folder_dataset(tmp_path)
    paths, y = ev.folder_dataset(tmp_path, mapping={"malign": "malignant"})
    assert [p.parent.name for p in paths] == ["Benign", "malign", "normal"]
    assert y.tolist() == [0, 1, 2]
    with pytest.raises(BcdetError, match="not a class"):
        ev.folder_dataset(tmp_path, mapping={"malign": "cancer"})


# --------------------------------------------------------------------------------------------
# a tiny checkpoint (the best.pt format documented by checkpoints.load_checkpoint) for the CLI tests
# --------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from bcdet_helpers.model import build_model
    from bcdet_helpers.profiles import get_profile

    prof = get_profile("smoke", image_size=32, width=4)
    torch.manual_seed(0)
    model = build_model(prof)
    meta = {"image_size": 32, "channels": 1, "width": 4, "mean": 0.3, "std": 0.2,
            "classes": ("benign", "malignant", "normal"), "profile": "smoke", "schedule": "switching",
            "split": "grouped", "seed": 0, "best_epoch": 1}
    run = tmp_path / "switching-grouped-seed0"
    run.mkdir()
    torch.save({"model": model.state_dict(), "meta": meta}, run / "best.pt")
    return run / "best.pt"


@pytest.fixture
def odd_folder(tmp_path):
    """A folder-per-class set as another hospital might ship it: a ``malign`` folder, RGBA,
    16-bit and RGB images of odd sizes, a mask file to ignore."""
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "other_set"
    for sub in ("benign", "malign", "normal"):
        (root / sub).mkdir(parents=True)
    gray = lambda h, w: rng.integers(0, 255, (h, w), dtype=np.uint8)  # noqa: E731
    Image.fromarray(gray(50, 70), "L").save(root / "benign" / "b1.png")
    Image.fromarray(np.dstack([gray(40, 40)] * 3 + [np.full((40, 40), 200, np.uint8)]), "RGBA").save(root / "benign" / "b2_rgba.png")
    Image.fromarray(gray(40, 40), "L").save(root / "benign" / "b1_mask.png")  # not an image to score
    Image.fromarray(rng.integers(0, 65535, (64, 48), dtype=np.uint16)).save(root / "malign" / "m1_16bit.png")
    Image.fromarray(np.dstack([gray(33, 90)] * 3), "RGB").save(root / "malign" / "m2_rgb.png")
    Image.fromarray(gray(120, 100), "L").save(root / "normal" / "n1.png")
    return root


def test_cli_predict_prints_probabilities_and_the_reminder(tiny_checkpoint, odd_folder, capsys):
    from bcdet_helpers.research.cli import main

    images = [odd_folder / "benign" / "b2_rgba.png", odd_folder / "malign" / "m1_16bit.png"]
    assert _is_16bit(images[1])  # the fixture really wrote a 16-bit PNG
    code = main(["predict", *map(str, images), "--checkpoint", str(tiny_checkpoint), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [ln for ln in out.splitlines() if ln.startswith(str(odd_folder))]
    assert len(rows) == 2
    for row in rows:
        probs = [float(v) for v in row.split()[-4:-1]]
        assert sum(probs) == pytest.approx(1, abs=2e-3) and row.split()[-1] in ("benign", "malignant", "normal")
    assert "not a medical device" in out.splitlines()[-1]


def _is_16bit(path):
    from PIL import Image

    with Image.open(path) as img:
        return img.mode.startswith("I")


def test_cli_evaluate_maps_folders_and_writes_metrics(tiny_checkpoint, odd_folder, tmp_path, capsys):
    import json

    from bcdet_helpers.research.cli import main

    out = tmp_path / "eval-out"
    # without --map, the malign folder is a user error naming it
    assert main(["evaluate", str(odd_folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 2
    assert "malign" in capsys.readouterr().err
    code = main(["evaluate", str(odd_folder), "--checkpoint", str(tiny_checkpoint), "--map", "malign=malignant",
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    assert m["n"] == 5 and np.sum(m["confusion_matrix"]) == 5
    assert [m["per_class"][c]["support"] for c in ("benign", "malignant", "normal")] == [2, 2, 1]
    assert {"accuracy", "macro_f1", "weighted_f1", "macro_auc", "ci", "ece", "predictions"} <= set(m)
    assert m["ci"]["accuracy"]["low"] <= m["accuracy"] <= m["ci"]["accuracy"]["high"]
    assert m["map"] == {"malign": "malignant"}
    assert "not a medical device" in capsys.readouterr().out


def test_load_images_matches_the_cache_resize(odd_folder):
    from bcdet_helpers.data.cache import resize_image

    paths = sorted(odd_folder.glob("*/*.png"))
    x = ev.load_images(paths, 32, 1)
    assert x.shape == (len(paths), 1, 32, 32) and str(x.dtype) == "torch.uint8"
    assert np.array_equal(x[0].numpy(), resize_image(paths[0], 32, 1))


def test_evaluate_run_scores_the_test_part_and_refuses_another_split(tiny_checkpoint):
    torch = pytest.importorskip("torch")
    from bcdet_helpers.data import SplitData
    from bcdet_helpers.errors import BcdetError

    g = torch.Generator().manual_seed(0)
    n = 30
    split = np.array(["train"] * 15 + ["val"] * 5 + ["test"] * 10)
    data = SplitData(images=torch.randint(0, 256, (n, 1, 32, 32), dtype=torch.uint8, generator=g),
                     labels=torch.arange(n) % 3, files=[f"benign/x ({i}).png" for i in range(n)], parts=split,
                     mean=0.3, std=0.2, kind="grouped", seed=0)
    result = ev.evaluate_run(tiny_checkpoint.parent, data, n_boot=50)
    assert result.metrics["n"] == 10 and result.y_true.tolist() == (torch.arange(n) % 3)[20:].tolist()
    assert result.files == data.files_of("test")
    s = result.summary()
    assert s["schedule"] == "switching" and s["part"] == "test" and s["best_epoch"] == 1
    assert s["ci"]["accuracy"]["n_boot"] == 50
    import json

    json.dumps(ev.jsonable(s), allow_nan=False)  # strict JSON
    data.seed = 1
    with pytest.raises(BcdetError, match="seed"):
        ev.evaluate_run(tiny_checkpoint.parent, data)
    with pytest.raises(BcdetError, match="best.pt"):
        ev.evaluate_run(tiny_checkpoint.parent / "nowhere", data)


def test_macro_scores_skip_a_class_absent_from_the_labels():
    """An external folder without malignant images: the macro averages run over benign and normal
    only (not a 0 for the missing class), and the absence is reported."""
    y = np.array([0, 0, 2, 2])
    proba = np.eye(3)[[0, 2, 2, 2]]  # one benign image called normal
    m = ev.metrics(y, proba)
    f1_benign, f1_normal = 2 / 3, 0.8
    assert m["absent_classes"] == ["malignant"]
    assert m["macro_f1"] == pytest.approx((f1_benign + f1_normal) / 2)
    assert ev.macro_f1(y, proba) == pytest.approx(m["macro_f1"])


# --------------------------------------------------------------------------------------------
# issue #16, case 1: folder layouts that used to be labelled wrongly
# --------------------------------------------------------------------------------------------
def _png(path):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (20, 20)).save(path)


def test_an_unknown_folder_gets_no_guessed_class(tmp_path):
    from bcdet_helpers.errors import BcdetError

    for sub in ("benign", "Healthy"):
        _png(tmp_path / sub / "a.png")
    with pytest.raises(BcdetError) as err:
        ev.folder_dataset(tmp_path)
    msg = str(err.value)
    assert "Healthy" in msg and "--map Healthy=<benign|malignant|normal>" in msg
    assert "Healthy=malignant" not in msg and "Healthy=benign" not in msg and "Healthy=normal" not in msg


def test_hidden_folders_are_skipped(tmp_path):
    for sub in ("benign", "normal", ".ipynb_checkpoints", "benign/.ipynb_checkpoints", "__MACOSX"):
        _png(tmp_path / sub / "a.png")
    paths, y = ev.folder_dataset(tmp_path)
    assert [str(p.relative_to(tmp_path)) for p in paths] == ["benign/a.png", "normal/a.png"]
    assert y.tolist() == [0, 2]


def test_batch_folders_are_read_by_their_class_subfolders(tmp_path):
    from bcdet_helpers.errors import BcdetError

    for batch in ("batch1", "batch2"):
        for cls in ("benign", "malignant", "normal"):
            _png(tmp_path / batch / cls / "a.png")
    paths, y = ev.folder_dataset(tmp_path)
    assert [str(p.relative_to(tmp_path).parent) for p in paths] == [
        "batch1/benign", "batch1/malignant", "batch1/normal", "batch2/benign", "batch2/malignant", "batch2/normal"]
    assert y.tolist() == [0, 1, 2, 0, 1, 2]
    # following the old hint (--map batch1=malignant) labelled all of batch1 malignant: now refused
    with pytest.raises(BcdetError, match="--map batch1=malignant: .* holds class folders"):
        ev.folder_dataset(tmp_path, mapping={"batch1": "malignant", "batch2": "malignant"})


def test_a_class_named_folder_inside_a_class_folder_is_refused(tmp_path):
    from bcdet_helpers.errors import BcdetError

    _png(tmp_path / "benign" / "a.png")
    _png(tmp_path / "benign" / "patient7" / "b.png")  # a plain sub-folder is read with its class
    assert len(ev.folder_dataset(tmp_path)[0]) == 2
    _png(tmp_path / "benign" / "normal" / "c.png")
    with pytest.raises(BcdetError, match=r"benign/normal/ is named like a class"):
        ev.folder_dataset(tmp_path)


def test_cli_evaluate_warns_loudly_on_a_single_class_set(tiny_checkpoint, tmp_path, capsys):
    import json

    from bcdet_helpers.research.cli import main

    folder = tmp_path / "one_class"
    for i in range(3):
        _png(folder / "malignant" / f"m{i}.png")
    out = tmp_path / "eval-out"
    code = main(["evaluate", str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--device", "cpu"])
    assert code == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    warn = next(i for i, ln in enumerate(lines) if "ONLY ONE CLASS (malignant)" in ln)
    first_metric = next(i for i, ln in enumerate(lines) if ln.startswith("accuracy"))
    assert warn < first_metric  # no number is shown before the warning
    assert "ONLY ONE CLASS" in captured.err
    assert "ONLY ONE CLASS" in json.loads((out / "metrics.json").read_text())["warning"]


# --------------------------------------------------------------------------------------------
# issue #27 case 5: a huge image is refused from its header, in one line, before it is decoded
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", [10_000, 15_000])  # 100 MP: Pillow only warned; 225 MP: its traceback
def test_predict_and_evaluate_refuse_a_huge_image_in_one_line(side, tiny_checkpoint, tmp_path, capsys):
    import warnings

    from bcdet_helpers.research.cli import main
    from fakebusi import big_png

    folder = tmp_path / "huge"
    for cls in ("benign", "malignant", "normal"):
        (folder / cls).mkdir(parents=True)
        _png(folder / cls / f"{cls}.png")
    big = big_png(folder / "benign" / "scan.png", side)
    out = tmp_path / "eval-out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        codes = [main(["predict", str(big), "--checkpoint", str(tiny_checkpoint), "--device", "cpu"]),
                 main(["evaluate", str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                       "--device", "cpu"])]
    err = capsys.readouterr().err.splitlines()
    assert codes == [2, 2] and len(err) == 2, err
    for line in err:
        assert line.startswith(f"bcdet: error: {big}: image has {side * side // 10**6} megapixels")
        assert "Downscale it" in line
    assert not [w for w in caught if "decompression bomb" in str(w.message)]
    assert not out.exists()  # refused before anything was written


# --------------------------------------------------------------------------------------------
# issue #27 case 8: a file that is no checkpoint gets a clean message naming it, not torch's cut short
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["empty", "text", "model", "other width"])
def test_a_file_that_is_no_checkpoint_gets_one_clean_message(content, tiny_checkpoint, tmp_path, capsys):
    import torch

    from bcdet_helpers.research.cli import main
    from bcdet_helpers.model import build_model
    from bcdet_helpers.profiles import get_profile

    path = tmp_path / "not-a-checkpoint.pt"
    if content == "empty":
        path.write_bytes(b"")
    elif content == "text":
        path.write_text("notes about the run\n" * 50)
    elif content == "model":  # a whole pickled model: torch.load(weights_only=True) writes a page about it
        torch.save(build_model(get_profile("smoke", image_size=32, width=4)), path)
    else:  # a bcdet best.pt whose weights belong to another width
        ck = torch.load(tiny_checkpoint, weights_only=True)
        ck["meta"]["width"] = 8
        torch.save(ck, path)
    img = tmp_path / "img.png"
    _png(img)
    assert main(["predict", str(img), "--checkpoint", str(path), "--device", "cpu"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    if content == "other width":
        assert f"{path} was written by another version of bcdet or for another model (its weights do not fit " \
               "the model its meta describes)" in line
    else:
        kind = "an empty file" if content == "empty" else f"a file of {path.stat().st_size:,} bytes that torch.load"
        assert line.startswith(f"bcdet: error: {path} is not a bcdet checkpoint: it is {kind}")
    assert line.endswith("Pass the best.pt of a finished run, e.g. runs/laptop/switching-grouped-fold0-seed0/best.pt.")


def test_a_runs_folder_that_cannot_be_written_names_bcdet_runs(tiny_checkpoint, odd_folder, tmp_path, monkeypatch,
                                                                capsys):
    """Issue #27 case 8: "Check the path you gave" when the path came from BCDET_RUNS, not the command line."""
    from bcdet_helpers.research.cli import main

    runs = tmp_path / "runs-is-a-file"
    runs.write_text("")
    monkeypatch.setenv("BCDET_RUNS", str(runs))  # evaluate's default --out is $BCDET_RUNS/evaluate/<folder>
    code = main(["evaluate", str(odd_folder), "--checkpoint", str(tiny_checkpoint), "--map", "malign=malignant",
                 "--device", "cpu"])
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2 and line.startswith(f"bcdet: error: {runs}")
    assert line.endswith(f"It lies under BCDET_RUNS={runs}: check that folder, or point BCDET_RUNS at another.")


@pytest.mark.parametrize("when", ["scoring", "writing"])
def test_ctrl_c_during_evaluate_is_one_line_and_leaves_no_out_folder(when, tiny_checkpoint, odd_folder, tmp_path,
                                                                     monkeypatch, capsys):
    """Issue #27: Ctrl-C while ``bcdet evaluate`` writes left an --out folder with a figure and no metrics.json."""
    from bcdet_helpers import runinfo, uncertainty
    from bcdet_helpers.research.cli import main

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(*((uncertainty, "bootstrap_ci") if when == "scoring" else (runinfo, "write_json")), ctrl_c)
    out = tmp_path / "eval-out"
    code = main(["evaluate", str(odd_folder), "--checkpoint", str(tiny_checkpoint), "--map", "malign=malignant",
                 "--out", str(out), "--device", "cpu"])
    assert code == 130 and capsys.readouterr().err.splitlines() == ["bcdet: interrupted"]
    assert not out.exists()
