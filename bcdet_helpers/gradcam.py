"""Where does the model look? Grad-CAM maps and how much of them falls on the lesion.

Taught in notebook 05 (BUSI's lesion masks make the question answerable):

* :func:`last_conv_block` -- the layer hooked by default (ResNet9's ``res2``)
* :func:`grad_cam`        -- one map per image for its predicted (or a chosen) class
* :func:`upsample_cam`    -- a map at the image's size, for overlays
* :func:`cam_mass_in_mask` -- the share of a map inside the lesion mask (0..1)
"""
from __future__ import annotations

import numpy as np


def last_conv_block(model):
    """The module Grad-CAM hooks by default: the last ResidualBlock of the network (ResNet9's
    ``res2``, output ``F(x) + x``), else the last ConvBlock, else the last ``Conv2d`` -- the deepest
    layer that still has a spatial map, so the map is as semantic as possible while still saying
    *where* (8 x 8 cells for a 64 x 64 input)."""
    import torch.nn as nn

    for kind in ("ResidualBlock", "ConvBlock"):  # a residual block's output includes its skip
        blocks = [m for m in model.modules() if type(m).__name__ == kind]
        if blocks:
            return blocks[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("grad_cam: the model has no convolution layer to hook")
    return convs[-1]


def grad_cam(model, images, target_layer=None, class_idx=None):
    """Grad-CAM maps (Selvaraju et al., 2017) for a batch of *normalised* float images.

    For the chosen class (``class_idx``: an int, one per image, or ``None`` = the predicted
    class) we take the gradient of its logit with respect to the feature maps of
    ``target_layer`` (default :func:`last_conv_block`), average it over space to get one weight
    per channel, and sum the channels with those weights; a ReLU keeps only evidence *for* the
    class. Returns ``(cams, class_idx)``: ``cams`` is ``(N, h, w)`` at the layer's resolution
    (e.g. 8 x 8 for 64 x 64 inputs), each scaled to max 1 (all-zero when nothing supports the class).
    """
    import torch

    x = torch.as_tensor(images)
    if not x.is_floating_point():
        raise ValueError("grad_cam expects normalised float images; use data.normalize(x_uint8) first")
    layer = target_layer if target_layer is not None else last_conv_block(model)
    device = next(model.parameters()).device
    x = x.to(device)
    saved = {}

    def hook(_module, _inp, output):
        saved["act"] = output

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x)
            if class_idx is None:
                idx = logits.argmax(1)
            else:
                idx = torch.as_tensor(class_idx, device=logits.device).long().expand(len(x))
            score = logits.gather(1, idx[:, None]).sum()
            (grads,) = torch.autograd.grad(score, saved["act"])
    finally:
        handle.remove()
        model.train(was_training)
    act = saved["act"].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cams = torch.relu((weights * act).sum(1))
    peak = cams.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    cams = torch.where(peak > 1e-12, cams / peak, torch.zeros_like(cams))
    return cams.cpu().numpy(), idx.cpu().numpy()


def upsample_cam(cam, size: int | tuple[int, int]) -> np.ndarray:
    """A ``(h, w)`` or ``(N, h, w)`` cam bilinearly resized to the image size, for overlays."""
    import torch
    import torch.nn.functional as F

    cam = np.asarray(cam, dtype=np.float32)
    size = (size, size) if isinstance(size, int) else tuple(size)
    t = torch.from_numpy(cam)
    t = t[None, None] if t.ndim == 2 else t[:, None]
    up = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return up[0, 0].numpy() if cam.ndim == 2 else up[:, 0].numpy()


def cam_mass_in_mask(cam, mask) -> float:
    """Fraction of the Grad-CAM mass that falls inside the lesion mask (0..1).

    The mask (any resolution, bool) is shrunk to the cam's resolution by area averaging, so a
    cam cell that is 30% lesion counts 30% of its mass as inside. Returns ``nan`` when the mask
    is empty (normal tissue has no lesion) or the cam is all zero. Compare it with the mask's
    area fraction: a model that looks everywhere equally scores exactly that.
    """
    import torch
    import torch.nn.functional as F

    cam = np.clip(np.asarray(cam, dtype=np.float64), 0, None)
    mask = np.asarray(mask, dtype=np.float32)
    if cam.ndim != 2 or mask.ndim != 2:
        raise ValueError(f"cam and mask must be 2-D, got {cam.shape} and {mask.shape}")
    if not mask.any() or cam.sum() <= 0:
        return float("nan")
    if mask.shape != cam.shape:
        mask = F.adaptive_avg_pool2d(torch.from_numpy(mask)[None, None], cam.shape)[0, 0].numpy()
    return float((cam * mask).sum() / cam.sum())
