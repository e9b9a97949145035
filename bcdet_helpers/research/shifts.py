"""Acquisition shifts (issue #30, item 5): the ways another scanner or operator changes how the *same*
tissue looks, as functions of the tensors the model sees.

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
  reproducible from its ``numpy`` Generator (:func:`apply_shift` seeds it per shift and severity).

:mod:`bcdet_helpers.research.stress` scores a model under these shifts; :mod:`bcdet_helpers.research.resemblance`
measures which of them an external set such as BUS-BRA has.
"""
from __future__ import annotations

import math
import zlib
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "SEVERITIES", "SHIFTS", "gain_up", "gain_down", "contrast_up", "contrast_down", "speckle", "blur",
    "lower_resolution", "zoom", "aspect", "overlay", "apply_shift",
]

SEVERITIES = range(5)  # 0 = identity ... 4 = strongest


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
    (:func:`~bcdet_helpers.research.resemblance.compare_sizes` measures it)."""
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
