"""The data path of training: every image on the device once, seeded batches, mixed precision.

:func:`~bcdet_helpers.train.fit` and :func:`~bcdet_helpers.train.train_epoch` read their batches
from :class:`Batches` and run their forward and backward passes under :class:`Precision`; notebook
04's hand-written loop uses the same two, so its batches are the ones ``fit`` sees.

* :class:`Batches`    the data on the device once; each epoch a seeded order and augmentation
* :class:`Precision`  bfloat16 autocast (fp16 + GradScaler on older GPUs) on CUDA, float32 elsewhere
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .data.preprocess import standardize, to_unit
from .errors import BcdetError

# channels_last on every device: on a 2-core CPU a width-16 ResNet9 step took 579 ms vs 803 ms
# contiguous (issue #17); on CUDA it is what the tensor cores want. benchmarks/throughput.py flips it
# to measure the difference.
MEMORY_FORMAT = torch.channels_last


class Batches:
    """All training and validation images on ``device`` once (a few MB of uint8).

    :meth:`train` yields one epoch of normalised (and augmented) batches in a seeded random order;
    the order and the augmentation draw from one CPU ``torch.Generator`` seeded with ``seed``, so a
    seed gives the same batches on any device. The last, partial batch is kept (``drop_last=False``):
    with ~540 training images and batch 128, dropping it would throw away 6 % of the data per epoch.

    ``augment``: ``False`` (none), ``True`` (the default parameters, ``data.augment.AUGMENT``) or a
    mapping of augmentation parameters -- a profile's :attr:`~bcdet_helpers.profiles.Profile.augmentation`.
    """

    def __init__(self, data, batch_size: int, seed: int, device: torch.device, augment: bool | Mapping):
        x, y = data.part("train")
        xv, yv = data.part("val")
        if len(x) == 0 or len(xv) == 0:
            raise BcdetError(f"fit needs training and validation images; got {len(x)} train, {len(xv)} val.")
        self.x, self.y, self.x_val, self.y_val = x.to(device), y.to(device), xv.to(device), yv.to(device)
        self.mean, self.std = float(data.mean), float(data.std)
        self.classes = len(data.classes)
        self.batch_size, self.augment, self.device = batch_size, bool(augment), device
        self.augment_params = dict(augment) if isinstance(augment, Mapping) else None  # None: the defaults
        self.steps = math.ceil(len(x) / batch_size)
        self.gen = torch.Generator().manual_seed(seed)

    def prepare(self, x_uint8: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """uint8 -> float in [0, 1] -> (augmented) -> normalised, in :data:`MEMORY_FORMAT` layout
        (the two halves of :func:`~bcdet_helpers.data.preprocess.normalize`, augmentation between)."""
        x = to_unit(x_uint8)
        if augment:
            from .data.augment import augment_batch

            x = augment_batch(x, self.gen, self.augment_params)
        x = standardize(x, self.mean, self.std)
        return x.contiguous(memory_format=MEMORY_FORMAT)

    def train(self):
        perm = torch.randperm(len(self.x), generator=self.gen).to(self.device, non_blocking=True)
        for s in range(self.steps):
            idx = perm[s * self.batch_size:(s + 1) * self.batch_size]
            yield self.prepare(self.x[idx], self.augment), self.y[idx]

    def val(self, chunk: int = 1024):
        for s in range(0, len(self.x_val), chunk):
            yield self.prepare(self.x_val[s:s + chunk]), self.y_val[s:s + chunk]


class Precision:
    """Mixed precision where it pays: bfloat16 autocast on CUDA (float16 + GradScaler on GPUs
    without bfloat16); plain float32 on the CPU and MPS."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.dtype = torch.bfloat16 if self.cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.cuda and self.dtype == torch.float16 else None
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype) if self.cuda else torch.autocast("cpu", enabled=False)

    def backward_step(self, loss: torch.Tensor, optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
