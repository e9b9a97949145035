"""Acquisition-shift stress tests (issue #30, item 5): how a BUSI model's scores fall when the
images look as if another scanner or operator had taken them, and which of those looks BUS-BRA has.

BUSI comes from one hospital and essentially one scanner (LOGIQ E9). Another site changes how the
*same* tissue is displayed: the overall gain and the dynamic range (contrast) the sonographer sets,
how much speckle survives the scanner's compounding and smoothing, the transducer's resolution
(blur), the pixel size the images are stored at, the depth/zoom (how much tissue fills the
picture), the shape of the scan area the pipeline squashes to a square, and what is burned into
the picture (text, caliper crosses). Each of these is one entry of :data:`SHIFTS`, graded by a
severity 0..4 where 0 is the identity and 4 a large but still plausible change.

* :data:`SHIFTS` -- ``name -> shift(images_uint8 (N, C, S, S), severity, rng) -> uint8, same shape``.
  Shifts act on the tensors the model sees (after the cache's resize), so a run's own test images
  can be stressed without re-reading a PNG; the input is never modified, and a random shift is
  reproducible from its ``numpy`` Generator.
* :func:`stress_curves` -- a ``predict`` callable scored at every (shift, severity): accuracy,
  balanced accuracy and malignant AUC with group-clustered bootstrap intervals, as a tidy table;
  :func:`stress_run` does it for finished run folders (several folds of one arm pool into
  out-of-fold curves); :func:`plot_stress` draws it.
* :func:`intensity_profile` / :func:`compare_profiles` / :func:`resemblance` -- per-image
  statistics (brightness, contrast, dark area, speckle, sharpness) and which single shift of BUSI
  moves those distributions closest to an external set's: measured, not guessed.
  :func:`size_table` / :func:`compare_sizes` read the original pixel sizes from the file headers.

Everything is deterministic given ``seed`` and cheap on a CPU: 780 images x 10 shifts x 4
severities is ~31 k images of 64 x 64 through the model.
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .busi import CLASSES

__all__ = [
    "SEVERITIES", "SHIFTS", "STATISTICS", "gain_up", "gain_down", "contrast_up", "contrast_down", "speckle",
    "blur", "lower_resolution", "zoom", "aspect", "overlay", "apply_shift", "stress_curves", "score_curves",
    "stress_run", "plot_stress", "intensity_profile", "compare_profiles", "resemblance", "size_table",
    "compare_sizes",
]

SEVERITIES = range(5)  # 0 = identity ... 4 = strongest
MALIGNANT = CLASSES.index("malignant")


# ----------------------------------------------------------------------------------------- helpers
def _check(images: torch.Tensor, severity: int) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"shifts take a uint8 tensor (N, C, S, S), got {getattr(images, 'dtype', type(images))} "
                         f"of shape {tuple(getattr(images, 'shape', ()))}")
    if int(severity) != severity or not 0 <= severity <= 4:
        raise ValueError(f"severity must be an integer 0..4 (0 = unchanged), got {severity!r}")


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp_(0, 255).to(torch.uint8)


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _noise(shape, rng: np.random.Generator, draw) -> torch.Tensor:
    """One field per image ``(N, 1, H, W)``, broadcast over channels: a grayscale picture stored
    as RGB gets the same change in R, G and B, as a scanner's would."""
    n, _, h, w = shape
    return torch.from_numpy(draw(rng, (n, 1, h, w)).astype(np.float32))


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased when shrinking (float (N, C, H, W))."""
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


# ----------------------------------------------------------------------------------------- shifts
GAIN = (1.0, 1.15, 1.3, 1.5, 1.75)
CONTRAST = (1.0, 1.2, 1.4, 1.7, 2.0)
SPECKLE_SHAPE = (math.inf, 16.0, 8.0, 4.0, 2.0)  # gamma shape k: noise std 1/sqrt(k) = 0, .25, .35, .5, .71
BLUR_SIGMA = (0.0, 0.008, 0.016, 0.025, 0.035)  # x side: 0, .5, 1.0, 1.6, 2.2 px at 64 px
DOWNSAMPLE = (1.0, 1.5, 2.0, 3.0, 4.0)
ZOOM_KEEP = (1.0, 0.9, 0.8, 0.7, 0.6)  # share of each side kept (centre crop)
ASPECT_KEEP = (1.0, 0.9, 0.8, 0.7, 0.6)  # share of the width kept
OVERLAY_MARKS = (0, 1, 2, 3, 5)  # text labels; twice as many caliper crosses


def _gain(images, severity, factor):
    _check(images, severity)
    return images if severity == 0 else _uint8(images.float() * factor)


def gain_up(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Brighter: every pixel x 1.15 / 1.3 / 1.5 / 1.75, clipped at 255. A sonographer turning the
    overall gain up (or another scanner's default preset). A product, not a sum, so black stays black
    -- what lies outside the scan area and anechoic cyst content, which the scanner's reject level
    keeps black -- while bright tissue saturates."""
    return _gain(images, severity, GAIN[severity])


def gain_down(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Darker: every pixel / 1.15 ... / 1.75 (the inverse of :func:`gain_up`): gain turned down,
    which loses the faint echoes into black."""
    return _gain(images, severity, 1 / GAIN[severity])


def _contrast(images, severity, a):
    _check(images, severity)
    if severity == 0:
        return images
    x = images.float()
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return _uint8(m + a * (x - m))


def contrast_up(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Harder contrast: each image's pixels spread around its own mean x 1.2 / 1.4 / 1.7 / 2.0. The
    displayed image is log-compressed echo amplitude, and the *dynamic range* (dB) the operator or
    preset chooses is a linear scale of that log image: a narrower range looks harsher (dark darker,
    bright brighter). The mean brightness stays; both ends clip."""
    return _contrast(images, severity, CONTRAST[severity])


def contrast_down(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Flatter contrast: the spread around the mean / 1.2 ... / 2.0 -- a wider dynamic range (a
    greyer, washed-out picture), the inverse of :func:`contrast_up`."""
    return _contrast(images, severity, 1 / CONTRAST[severity])


def speckle(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """More speckle: each pixel times gamma-distributed noise of mean 1 and standard deviation
    0.25 / 0.35 / 0.5 / 0.71 (shape 16 / 8 / 4 / 2). Speckle is multiplicative (the interference of
    echoes from sub-resolution scatterers: its intensity is gamma/exponential-, its amplitude
    Rayleigh-distributed), and scanners differ in how much of it they remove (spatial compounding,
    speckle-reduction filters). Pixel by pixel at the model's size, i.e. grain of one model pixel."""
    _check(images, severity)
    if severity == 0:
        return images
    k = SPECKLE_SHAPE[severity]
    g = _noise(images.shape, _rng(rng), lambda r, s: r.gamma(k, 1 / k, size=s))
    return _uint8(images.float() * g)


def blur(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Blurrier: Gaussian blur of sigma 0.8 / 1.6 / 2.5 / 3.5 % of the side (0.5 ... 2.2 px at 64 px).
    A lower-frequency or older transducer, or a lesion outside the focal zone, has a wider
    point-spread function: edges and speckle grain smear. (Applied after the resize to the model's
    size, i.e. blur as the model would see it, not at the scanner's native pixel size.)"""
    from torchvision.transforms.functional import gaussian_blur

    _check(images, severity)
    if severity == 0:
        return images
    sigma = BLUR_SIGMA[severity] * images.shape[-1]
    k = 2 * math.ceil(3 * sigma) + 1
    k = min(k, 2 * ((images.shape[-1] - 1) // 2) + 1)  # reflect padding needs a kernel smaller than the image
    return _uint8(gaussian_blur(images.float(), [k, k], [sigma, sigma]))


def lower_resolution(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Coarser pixels: shrunk by 1.5 / 2 / 3 / 4 (antialiased) and enlarged back (bilinear). An image
    stored or exported small (an older scanner's lower line density, a PACS thumbnail, a screenshot)
    and then enlarged to the model's size: the detail is gone, replaced by interpolation."""
    _check(images, severity)
    if severity == 0:
        return images
    h, w = images.shape[-2:]
    f = DOWNSAMPLE[severity]
    small = _resize(images.float(), (max(1, round(h / f)), max(1, round(w / f))))
    return _uint8(F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False))


def _crop_resize(images, keep_h: float, keep_w: float):
    h, w = images.shape[-2:]
    ch, cw = max(1, round(h * keep_h)), max(1, round(w * keep_w))
    top, left = (h - ch) // 2, (w - cw) // 2
    return _uint8(_resize(images[..., top:top + ch, left:left + cw].float(), (h, w)))


def zoom(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Zoomed in: the central 90 / 80 / 70 / 60 % of each side, enlarged back to the full size. A
    shallower depth setting or the scanner's zoom (the same lesion fills more of the picture, the
    chest wall leaves it), or a tighter crop of the scan area by whoever exported the images."""
    _check(images, severity)
    return images if severity == 0 else _crop_resize(images, ZOOM_KEEP[severity], ZOOM_KEEP[severity])


def aspect(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Stretched sideways: the central 90 / 80 / 70 / 60 % of the *width*, full height, enlarged back
    (structures 1.1 ... 1.7 x wider). The cache squashes every scan area to a square, so a scanner
    or probe whose scan area is narrower and deeper (a portrait picture where BUSI's are mostly
    landscape) reaches the model stretched horizontally by the ratio of the two aspect ratios
    (:func:`compare_sizes` measures it)."""
    _check(images, severity)
    return images if severity == 0 else _crop_resize(images, 1.0, ASPECT_KEEP[severity])


def overlay(images: torch.Tensor, severity: int, rng=None) -> torch.Tensor:
    """Burned-in marks: 1 / 2 / 3 / 5 bright text labels (a row of 3-8 character-sized blocks) and
    twice as many caliper crosses '+', at random places, grey 200-255. Annotations differ by site
    and operator (which labels, whether the lesion is measured on the saved frame) -- and in BUSI
    calipers mark lesions, so a model may have learned them as a cue that another site's images
    do not carry, or carry on every image. Sizes scale with the side (3 x 2 px characters and
    5 x 5 px crosses at 64 px)."""
    _check(images, severity)
    if severity == 0:
        return images
    rng = _rng(rng)
    out = images.clone()
    n, _, h, w = images.shape
    ch, cw = max(2, round(h / 21)), max(1, round(w / 32))  # a character block
    arm = max(1, round(min(h, w) / 32))  # caliper arm length
    for i in range(n):
        for _ in range(OVERLAY_MARKS[severity]):
            chars = int(rng.integers(3, 9))
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, max(1, w - chars * (cw + 1)) + 1))
            v = int(rng.integers(200, 256))
            for c in range(chars):
                x = x0 + c * (cw + 1)
                out[i, :, y0:y0 + ch, x:x + cw] = v
        for _ in range(2 * OVERLAY_MARKS[severity]):
            y, x = int(rng.integers(arm, h - arm)), int(rng.integers(arm, w - arm))
            v = int(rng.integers(200, 256))
            out[i, :, y - arm:y + arm + 1, x] = v
            out[i, :, y, x - arm:x + arm + 1] = v
    return out


ShiftFn = Callable[[torch.Tensor, int, np.random.Generator], torch.Tensor]

#: name -> shift(images_uint8 (N, C, S, S), severity 0..4, rng) -> uint8 tensor of the same shape.
SHIFTS: dict[str, ShiftFn] = {
    "gain_up": gain_up, "gain_down": gain_down, "contrast_up": contrast_up, "contrast_down": contrast_down,
    "speckle": speckle, "blur": blur, "lower_resolution": lower_resolution, "zoom": zoom, "aspect": aspect,
    "overlay": overlay,
}


def apply_shift(images: torch.Tensor, shift: str, severity: int, seed: int = 0, shifts=None) -> torch.Tensor:
    """``shifts[shift](images, severity, rng)`` with the rng every function of this module uses for
    that (shift, severity, seed): the same images always get the same noise and marks."""
    shifts = SHIFTS if shifts is None else shifts
    if shift not in shifts:
        raise ValueError(f"unknown shift {shift!r}; choose from {', '.join(shifts)}")
    rng = np.random.default_rng([seed, zlib.crc32(shift.encode()), int(severity)])
    return shifts[shift](images, int(severity), rng)


# ---------------------------------------------------------------------------------- stress curves
def _group_codes(groups, n: int) -> np.ndarray:
    labels = np.arange(n) if groups is None else np.asarray(groups)
    if len(labels) != n:
        raise ValueError(f"groups has {len(labels)} entries for {n} images")
    return np.unique(labels, return_inverse=True)[1].ravel()


def score_curves(probas: dict, y, groups=None, *, n_boot: int | None = None, seed: int = 0,
                 alpha: float = 0.05) -> pd.DataFrame:
    """``probas``: ``{(shift, severity): proba (N, K)}`` of the same N images -> the tidy table of
    :func:`stress_curves`. Every (shift, severity) is scored on the *same* group resamples (counts
    from :func:`~bcdet_helpers.stats.resample_counts` with ``seed``), for all three metrics:
    accuracy from :func:`~bcdet_helpers.stats.cluster_bootstrap`, balanced accuracy from the same
    confusion-matrix resamples, malignant AUC (malignant vs the rest) from the same groups' weights
    (:func:`~bcdet_helpers.external.patient_weights`, the weighted Mann-Whitney AUC)."""
    from sklearn.metrics import roc_auc_score

    from .external import _auc_replicates, patient_weights
    from .profiles import DEFAULTS
    from .stats import _interval, cluster_bootstrap, group_confusions, resample_counts, scores_from_confusion

    n_boot = DEFAULTS.bootstrap if n_boot is None else n_boot
    y = np.asarray(y, int)
    codes = _group_codes(groups, len(y))
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    counts = resample_counts(n_groups, n_boot, seed)
    weights = patient_weights(codes, n_boot, seed)  # the same draws, per image
    is_mal = y == MALIGNANT
    rows = []
    for (shift, severity), proba in probas.items():
        proba = np.asarray(proba, float)
        k = proba.shape[1]
        acc = cluster_bootstrap(y, proba, codes, n_classes=k, n_boot=n_boot, seed=seed, alpha=alpha)["accuracy"]
        m = group_confusions(y, proba, codes, n_groups, k)
        point = scores_from_confusion(m.sum(0).reshape(k, k))["balanced_accuracy"]
        reps = scores_from_confusion((counts @ m).reshape(-1, k, k))["balanced_accuracy"]
        bal = _interval(float(point), reps, alpha)
        if is_mal.all() or not is_mal.any():
            auc = _interval(math.nan, np.array([]), alpha)
        else:
            p = proba[:, MALIGNANT]
            auc = _interval(float(roc_auc_score(is_mal, p)), _auc_replicates(is_mal, p, weights), alpha)
        for metric, iv in (("accuracy", acc), ("balanced_accuracy", bal), ("malignant_auc", auc)):
            rows.append({"shift": shift, "severity": int(severity), "metric": metric,
                         "value": iv.value, "low": iv.low, "high": iv.high})
    return pd.DataFrame(rows, columns=["shift", "severity", "metric", "value", "low", "high"])


def _shifted_probas(parts, shifts, severities, seed) -> tuple[dict, np.ndarray, np.ndarray]:
    """Predict every part (``(predict, images, y, groups)``, e.g. one per fold with its own model)
    under every (shift, severity) and stack the parts; severity 0 is predicted once and shared."""
    probas: dict = {}
    plain = [np.asarray(predict(images), float) for predict, images, _, _ in parts]
    for shift in shifts:
        for s in severities:
            if s == 0:
                probas[(shift, 0)] = np.concatenate(plain)
                continue
            probas[(shift, int(s))] = np.concatenate([
                np.asarray(predict(apply_shift(images, shift, s, seed, shifts)), float)
                for predict, images, _, _ in parts])
    y = np.concatenate([np.asarray(yi, int) for _, _, yi, _ in parts])
    if len(parts) == 1:  # the caller's own labels: the same resamples as cluster_bootstrap(y, pred, groups)
        groups = parts[0][3]
    else:  # group ids are global (the index's), so a group split over several parts stays one group
        groups = np.concatenate([np.asarray(gi if gi is not None else [f"part{j}/{i}" for i in range(len(yi))],
                                            dtype=object).astype(str) for j, (_, _, yi, gi) in enumerate(parts)])
    return probas, y, groups


def stress_curves(predict, images: torch.Tensor, y, groups=None, shifts=SHIFTS, severities=SEVERITIES, seed: int = 0,
                  n_boot: int | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Score ``predict`` (uint8 images ``(N, C, S, S)`` -> class probabilities ``(N, 3)``) on
    ``images`` under every shift of ``shifts`` at every severity.

    Returns a tidy table, one row per (shift, severity, metric): ``shift, severity, metric, value,
    low, high`` with ``metric`` in accuracy, balanced_accuracy, malignant_auc (malignant vs the
    rest) and a ``1 - alpha`` percentile interval from a bootstrap over ``groups`` (BUSI's
    near-duplicate groups, so copies of a scan are drawn together; ``None``: every image its own
    group). Severity 0 (the unchanged images) is listed under every shift, so each curve starts at
    the same point. Shifted images come from :func:`apply_shift` with ``seed``."""
    probas, y, groups = _shifted_probas([(predict, images, y, groups)], shifts, severities, seed)
    return score_curves(probas, y, groups, n_boot=n_boot, seed=seed, alpha=alpha)


def _run_groups(data, groups):
    """The near-duplicate group of each test image: ``groups`` (a ``{file: group}`` dict), else the
    split CSV :func:`~bcdet_helpers.data.load_split_data` wrote, else each image its own group."""
    files = data.files_of("test")
    if groups is None:
        csv = (data.meta or {}).get("split_csv")
        if csv and Path(csv).exists():
            table = pd.read_csv(csv)
            groups = dict(zip(table["file"], table["group"]))
    if groups is None:
        return None
    return [str(groups.get(f, f"file:{f}")) for f in files]


def stress_run(run_dir, data, device="cpu", *, weights: str = "last", groups: dict | None = None, shifts=SHIFTS,
               severities=SEVERITIES, seed: int = 0, n_boot: int | None = None) -> pd.DataFrame:
    """:func:`stress_curves` for finished run folders, on each run's test part.

    ``run_dir``: a run folder (``runs/<profile>/<arm>-grouped-fold0-seed0``), ``data`` its
    :class:`~bcdet_helpers.data.SplitData` (``load_split_data(profile, split, seed, fold)``, as
    :func:`bcdet_helpers.study.cv.predict_run` uses it). Lists of both -- the folds of one arm --
    give the *out-of-fold* curves: each fold's test images through its own model, pooled, then
    scored once. ``weights``: ``"last"`` (the study's rule) or ``"best"``. The table gets the
    run's ``arm`` (its schedule) as a first column, so arms concatenate into one table for
    :func:`plot_stress`."""
    from .checkpoints import load_checkpoint
    from .evaluate import predict_proba

    run_dirs = list(run_dir) if isinstance(run_dir, (list, tuple)) else [run_dir]
    datas = list(data) if isinstance(data, (list, tuple)) else [data]
    if len(run_dirs) != len(datas):
        raise ValueError(f"{len(run_dirs)} run folders but {len(datas)} SplitData")
    parts, arms = [], set()
    for rd, d in zip(run_dirs, datas):
        model, meta = load_checkpoint(Path(rd) / f"{weights}.pt", device=device)
        arms.add(meta.get("schedule"))
        x, yt = d.part("test")

        def predict(images, model=model, meta=meta):
            return predict_proba(model, images, meta["mean"], meta["std"], device=device)

        parts.append((predict, x, yt.numpy(), _run_groups(d, groups)))
    probas, y, g = _shifted_probas(parts, shifts, severities, seed)
    out = score_curves(probas, y, g, n_boot=n_boot, seed=seed)
    out.insert(0, "arm", "+".join(sorted(map(str, arms))))
    out.attrs["runs"] = [str(r) for r in run_dirs]
    return out


def plot_stress(curves: pd.DataFrame, metrics=None, title: str = ""):
    """One panel per metric, one line per shift, severity on x with the interval as a band; with
    an ``arm`` column holding several arms, one row of panels per arm (same y axes). Returns the
    matplotlib Figure (made without pyplot, so Jupyter shows it once)."""
    from matplotlib.figure import Figure

    metrics = list(metrics or dict.fromkeys(curves["metric"]))
    arms = list(dict.fromkeys(curves["arm"])) if "arm" in curves else [None]
    fig = Figure(figsize=(4.2 * len(metrics) + 1.4, 3.4 * len(arms) + 0.6), layout="constrained")
    axes = fig.subplots(len(arms), len(metrics), squeeze=False, sharex=True, sharey="col")
    shifts = list(dict.fromkeys(curves["shift"]))
    colors = {s: f"C{i % 10}" for i, s in enumerate(shifts)}
    for r, arm in enumerate(arms):
        part = curves if arm is None else curves[curves["arm"] == arm]
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            for shift in shifts:
                d = part[(part["metric"] == metric) & (part["shift"] == shift)].sort_values("severity")
                if d.empty:
                    continue
                ax.plot(d["severity"], d["value"], marker="o", ms=3, color=colors[shift], label=shift)
                ax.fill_between(d["severity"], d["low"], d["high"], color=colors[shift], alpha=0.08, lw=0)
            ax.set_title(metric.replace("_", " ") + ("" if arm is None else f" -- {arm}"))
            ax.set_xticks(sorted(part["severity"].unique()))
            ax.grid(alpha=0.3)
            if r == len(arms) - 1:
                ax.set_xlabel("severity (0 = unchanged)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="shift")  # beside, not over, the curves
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------------------------ what BUS-BRA looks like
STATISTICS = ("mean", "std", "contrast", "dark_fraction", "speckle", "sharpness")


def intensity_profile(images: torch.Tensor, dark: int = 10) -> pd.DataFrame:
    """Per-image statistics of uint8 images ``(N, C, S, S)`` (channels averaged), one row each:

    * ``mean``, ``std`` -- brightness and its spread (0..255);
    * ``contrast`` -- the 95th minus the 5th percentile, robust to a few marks;
    * ``dark_fraction`` -- the share of pixels <= ``dark`` (black background, shadows, cysts);
    * ``speckle`` -- the median over 5 x 5 windows (not nearly black) of local std / local mean: the
      speckle contrast, unchanged by gain;
    * ``sharpness`` -- the variance of the Laplacian over the image's variance: the share of
      fine detail, also unchanged by gain, lowered by blur and coarse pixels.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("intensity_profile takes a uint8 tensor (N, C, S, S)")
    x = images.float().mean(1, keepdim=True)  # (N, 1, S, S)
    flat = x.flatten(1)
    q = torch.quantile(flat, torch.tensor([0.05, 0.95]), dim=1)
    mu = F.avg_pool2d(x, 5, stride=1)
    sd = (F.avg_pool2d(x * x, 5, stride=1) - mu * mu).clamp_min(0).sqrt()
    ratio = torch.where(mu > dark, sd / mu.clamp_min(1e-6), torch.nan).flatten(1)
    lap = F.conv2d(x, torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]]))
    var = flat.var(1)
    return pd.DataFrame({
        "mean": flat.mean(1).numpy(),
        "std": flat.std(1).numpy(),
        "contrast": (q[1] - q[0]).numpy(),
        "dark_fraction": (flat <= dark).float().mean(1).numpy(),
        "speckle": torch.nanmedian(ratio, dim=1).values.numpy(),
        "sharpness": (lap.flatten(1).var(1) / var.clamp_min(1e-6)).numpy(),
    })


def _distance(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """The Wasserstein-1 distance of two samples in units of ``scale`` (BUSI's own spread): how far,
    on average, one distribution's mass must move to become the other."""
    from scipy.stats import wasserstein_distance

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    return float(wasserstein_distance(a, b) / scale) if len(a) and len(b) else math.nan


def _scales(profile: pd.DataFrame) -> dict:
    return {s: float(profile[s].std()) or 1.0 for s in STATISTICS}


def compare_profiles(reference: pd.DataFrame, other: pd.DataFrame, names=("BUSI", "external")) -> pd.DataFrame:
    """Statistic by statistic (:func:`intensity_profile` tables): the two medians, the standardized
    mean difference ``(other - reference) / pooled sd`` (its sign says which way ``other`` lies) and
    the Wasserstein distance in reference standard deviations."""
    scales = _scales(reference)
    rows = []
    for s in STATISTICS:
        a, b = reference[s].to_numpy(float), other[s].to_numpy(float)
        pooled = math.sqrt((np.nanvar(a, ddof=1) + np.nanvar(b, ddof=1)) / 2) or 1.0
        rows.append({"statistic": s, f"median_{names[0]}": float(np.nanmedian(a)), f"median_{names[1]}": float(np.nanmedian(b)),
                     "smd": float((np.nanmean(b) - np.nanmean(a)) / pooled), "wasserstein_sd": _distance(a, b, scales[s])})
    return pd.DataFrame(rows)


def resemblance(busi_images: torch.Tensor, external_images: torch.Tensor, shifts=SHIFTS, severities=SEVERITIES,
                seed: int = 0) -> pd.DataFrame:
    """Which single (shift, severity) applied to the BUSI images brings their
    :func:`intensity_profile` closest to the external images'.

    For each statistic, the distance is the Wasserstein-1 distance between the shifted BUSI images'
    values and the external images', in units of the *unshifted* BUSI standard deviation of that
    statistic (so all six weigh alike); ``distance`` is their sum. One row per (shift, severity)
    plus ``("none", 0)`` for BUSI as it is, sorted by ``distance`` (the closest first), with the
    six ``d_<statistic>`` columns. Compare two sets at the same size (the model's: both through the
    same cache resize), so pixel-scale statistics mean the same thing.

    How to read it: one shift at a time, so a set that differs in several ways at once is matched
    only in part -- the ``d_`` columns of the top row say which statistics it leaves unexplained.
    Blur and lower resolution are both low-pass filters and come out nearly tied (the tests accept
    either); geometry (:func:`aspect`, :func:`zoom`) barely moves these statistics, which is why
    :func:`compare_sizes` measures it from the files."""
    target = intensity_profile(external_images)
    base = intensity_profile(busi_images)
    scales = _scales(base)

    def row(shift, severity, prof):
        d = {f"d_{s}": _distance(prof[s].to_numpy(float), target[s].to_numpy(float), scales[s]) for s in STATISTICS}
        return {"shift": shift, "severity": int(severity), "distance": float(np.nansum(list(d.values()))), **d}

    rows = [row("none", 0, base)]
    for shift in shifts:
        for s in severities:
            if s:
                rows.append(row(shift, s, intensity_profile(apply_shift(busi_images, shift, s, seed, shifts))))
    return pd.DataFrame(rows).sort_values("distance", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------- sizes
def size_table(paths) -> pd.DataFrame:
    """``file, width, height, aspect`` (width / height) of image files, from their headers (PIL
    reads the size without decoding the pixels)."""
    from PIL import Image

    rows = []
    for p in paths:
        with Image.open(p) as im:
            w, h = im.size
        rows.append({"file": str(p), "width": w, "height": h, "aspect": w / h})
    return pd.DataFrame(rows, columns=["file", "width", "height", "aspect"])


def compare_sizes(sets: dict) -> pd.DataFrame:
    """``{name: paths or size_table}`` -> one row per set: ``n``, median and 5th-95th percentile
    width and height, median aspect (width / height), the share of portrait images (taller than
    wide), and ``stretch``: how much wider the cache's square squash makes that set's structures
    than the first set's (the ratio of median aspects, first / this; > 1 = stretched sideways,
    which :func:`aspect` mimics)."""
    rows, first = [], None
    for name, v in sets.items():
        t = v if isinstance(v, pd.DataFrame) else size_table(v)
        med = float(t["aspect"].median())
        first = med if first is None else first
        rows.append({"set": name, "n": len(t),
                     "width_median": float(t["width"].median()), "width_p5": float(t["width"].quantile(0.05)),
                     "width_p95": float(t["width"].quantile(0.95)), "height_median": float(t["height"].median()),
                     "height_p5": float(t["height"].quantile(0.05)), "height_p95": float(t["height"].quantile(0.95)),
                     "aspect_median": med, "portrait_share": float((t["aspect"] < 1).mean()), "stretch": first / med})
    return pd.DataFrame(rows)
