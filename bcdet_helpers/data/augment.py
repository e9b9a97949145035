"""Training-time augmentation: a random horizontal flip and a small random affine per image.

The paper does not say whether it augmented; these choices are ours. Their numbers live in the
profile table (``Profile.augment_*``, part of ``profiles.RUN_FIELDS``, so a run trained with other
numbers is never silently reused); ``AUGMENT`` here is the default profile's values, which
:func:`augment_batch` and :func:`v2_transform` use when given no ``params``:

* horizontal flip with probability 0.5 -- left/right in a breast ultrasound image is only the
  probe's orientation, so a flipped scan is still a plausible scan;
* **no vertical flip** -- the vertical axis is depth: skin and the probe at the top, chest wall at
  the bottom, acoustic shadows and enhancement always fall *below* a lesion (posterior shadowing
  is a sign of malignancy). Upside-down scans do not exist and would teach the model nonsense;
* rotation within +-10 degrees, translation within +-8 % of the side, scale 0.9-1.1 -- the
  wobble of a hand-held probe, small enough to keep the lesion in view;
* off by default, the improvement ladder's *ultrasound* augmentation (issue #31, :func:`intensity_jitter`):
  the overall gain and the dynamic range (contrast) a sonographer or another scanner's preset sets, and
  speckle -- the acquisition shifts the stress test (:mod:`bcdet_helpers.research.shifts`) finds the model weakest
  to. At 0 they draw no random number, so a run without them is bit for bit the run before they existed.

:func:`augment_batch` works on a whole float batch (N, C, H, W) at once with
``affine_grid``/``grid_sample`` -- no Python loop over images, so it runs on the GPU where the
batch already is -- and draws its random numbers from a CPU ``torch.Generator``, so a seed gives
the same augmentation on any device. Pixels that come from outside the image are filled with the
image's own minimum (black ultrasound background, whatever the normalisation).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..profiles import DEFAULTS

# hflip_p, degrees, translate, scale: the profile table's defaults. vflip_p is not a setting: it is
# always 0 (see module doc) and stated here so that previews and readers see it.
AUGMENT = {**DEFAULTS.augment_params, "vflip_p": 0.0}


def random_affine_params(n: int, generator: torch.Generator | None = None, params: dict | None = None):
    """Per-sample ``(flip, angle_deg, tx, ty, scale)`` tensors of length ``n`` (CPU)."""
    params = AUGMENT if params is None else params
    if params.get("vflip_p", 0.0):
        raise ValueError("vertical flips are never used: the vertical axis of an ultrasound image is depth")
    u = torch.rand(5, n, generator=generator)
    flip = u[0] < params["hflip_p"]
    angle = (2 * u[1] - 1) * params["degrees"]
    tx = (2 * u[2] - 1) * params["translate"]
    ty = (2 * u[3] - 1) * params["translate"]
    lo, hi = params["scale"]
    scale = lo + (hi - lo) * u[4]
    return flip, angle, tx, ty, scale


def affine_matrices(flip, angle, tx, ty, scale) -> torch.Tensor:
    """(N, 2, 3) ``theta`` for ``affine_grid``: output pixel p samples the input at ``A p + t``.

    Coordinates are in [-1, 1], so a shift of ``tx`` image widths is ``2 tx``; zooming in by
    ``s`` means sampling at ``p / s``; a flip negates the x coordinate.
    """
    rad = angle * (math.pi / 180)
    cos, sin = torch.cos(rad) / scale, torch.sin(rad) / scale
    f = 1.0 - 2.0 * flip.float()  # -1 flips
    theta = torch.stack(
        [torch.stack([cos * f, -sin, -2 * tx], 1), torch.stack([sin * f, cos, -2 * ty], 1)], 1
    )
    return theta


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None,
                  params: dict | None = None) -> torch.Tensor:
    """A randomly flipped / rotated / shifted / zoomed copy of the float batch ``x`` (N, C, H, W).

    Deterministic given ``generator`` (a CPU generator); runs on ``x.device``. ``params``: a
    profile's ``augment_params`` (default :data:`AUGMENT`).
    """
    if x.ndim != 4:
        raise ValueError(f"augment_batch wants a (N, C, H, W) batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError("augment_batch works on float batches; convert uint8 images first")
    theta = affine_matrices(*random_affine_params(len(x), generator, params)).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    fill = x.amin(dim=(1, 2, 3), keepdim=True)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    return intensity_jitter(out, generator, AUGMENT if params is None else params)


def intensity_jitter(x: torch.Tensor, generator: torch.Generator | None = None,
                     params: dict | None = None) -> torch.Tensor:
    """The ultrasound augmentation of the float batch ``x`` (N, C, H, W) in [0, 1] (issue #31), each image its own
    draw; ``params``' ``gain_jitter``, ``contrast_jitter`` and ``speckle_std`` (a profile's ``augment_*``), all 0:
    ``x`` itself, no random number drawn.

    * gain: every pixel x ``g``, ``log g`` uniform in ``+-log(1 + gain_jitter)`` -- the overall gain turned up or
      down (a product, as in :func:`bcdet_helpers.research.shifts.gain_up`: black stays black);
    * contrast: the spread around the image's own mean x ``a``, drawn the same way -- another dynamic range;
    * speckle: every pixel x log-normal noise of mean 1 and standard deviation about ``speckle_std`` (the
      stress test's speckle is gamma noise of mean 1; a log-normal one draws from a seeded generator on any
      device and is close to it at these sizes);

    then clipped to the display's range: [0, 1] (training's batches), or [0, 255] for a batch of raw pixel values
    (:meth:`~bcdet_helpers.data.splitdata.SplitData.with_test_copies`), told apart without a host sync.
    """
    params = AUGMENT if params is None else params
    gain, contrast = params.get("gain_jitter", 0.0), params.get("contrast_jitter", 0.0)
    speckle = params.get("speckle_std", 0.0)
    if not (gain or contrast or speckle):
        return x
    n = len(x)
    white = torch.where(x.amax() > 1.5, 255.0, 1.0).to(x.dtype)  # the input's scale, read before any jitter
    u = (2 * torch.rand(2, n, 1, 1, 1, generator=generator) - 1).to(x.device, x.dtype)
    x = x * torch.exp(u[0] * math.log1p(gain))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * torch.exp(u[1] * math.log1p(contrast))
    if speckle:
        sigma = math.sqrt(math.log1p(speckle ** 2))  # a log-normal of mean 1 with standard deviation `speckle`
        z = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        x = x * torch.exp(sigma * z - sigma ** 2 / 2)
    return torch.minimum(x.clamp(min=0.0), white)


def v2_transform(params: dict | None = None):
    """The same augmentation as a ``torchvision.transforms.v2`` pipeline (one image at a time).

    For previews and for users of torchvision datasets; training uses :func:`augment_batch`.
    """
    from torchvision.transforms import v2

    params = AUGMENT if params is None else params
    return v2.Compose([
        v2.RandomHorizontalFlip(p=params["hflip_p"]),
        v2.RandomAffine(degrees=params["degrees"], translate=(params["translate"],) * 2,
                        scale=params["scale"]),
    ])
