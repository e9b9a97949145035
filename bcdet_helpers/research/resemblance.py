"""What an external set looks like beside BUSI (issue #30, item 5): which acquisition shift of
:mod:`bcdet_helpers.research.shifts` it has.

* :func:`intensity_profile` / :func:`compare_profiles` / :func:`resemblance` -- per-image
  statistics (brightness, contrast, dark area, speckle, sharpness) and which single shift of BUSI
  moves those distributions closest to an external set's: measured, not guessed.
* :func:`size_table` / :func:`compare_sizes` read the original pixel sizes from the file headers.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .shifts import SEVERITIES, SHIFTS, apply_shift

__all__ = ["STATISTICS", "intensity_profile", "compare_profiles", "resemblance", "size_table", "compare_sizes"]

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
    either); geometry (:func:`~bcdet_helpers.research.shifts.aspect`, :func:`~bcdet_helpers.research.shifts.zoom`) barely
    moves these statistics, which is why :func:`compare_sizes` measures it from the files."""
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
    which :func:`~bcdet_helpers.research.shifts.aspect` mimics)."""
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
