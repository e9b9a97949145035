"""`SplitData`: the tensors a training run consumes, with their parts (train / val / test) and normalisation.

All images of the run live in one uint8 tensor (small: 780 x 64 x 64 bytes is ~3 MB), so training
can move them to the device once and never decode a PNG again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..busi import CLASSES
from .preprocess import normalize, to_unit

PARTS = ("train", "val", "test")


@dataclass
class SplitData:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    files: list[str]  # relative file names, aligned with images
    parts: np.ndarray  # the part of each image: "train" / "val" / "test"
    mean: float = 0.0  # train-pixel mean on the 0..1 scale
    std: float = 1.0  # train-pixel std on the 0..1 scale
    classes: tuple[str, ...] = CLASSES
    kind: str = "grouped"  # how the folds were drawn: grouped / random
    seed: int = 0
    fold: int = 0  # the test fold
    meta: dict = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def mask(self, name: str) -> np.ndarray:
        if name not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, not {name!r}")
        return self.parts == name

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(uint8 images, labels)`` of ``"train"``, ``"val"`` or ``"test"``."""
        idx = torch.from_numpy(np.flatnonzero(self.mask(name)))
        return self.images[idx], self.labels[idx]

    def files_of(self, name: str) -> list[str]:
        return [f for f, keep in zip(self.files, self.mask(name)) if keep]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float, scaled by the training part's statistics (no test information):
        :func:`~bcdet_helpers.data.preprocess.normalize`, the step training and prediction use."""
        return normalize(x, self.mean, self.std)

    @staticmethod
    def train_stats(images: torch.Tensor, parts: np.ndarray) -> tuple[float, float]:
        """Mean and std of the training images' pixels on the 0..1 scale (``parts``: each image's part)."""
        train = to_unit(images[torch.from_numpy(np.flatnonzero(parts == "train"))])
        return float(train.mean()), float(train.std().clamp_min(1e-6))

    def with_test_copies(self, copies: int, params: dict | None = None, seed: int = 0) -> "SplitData":
        """A copy of this split with ``copies`` augmented versions of every *test* image added to
        the training part -- what augmenting a dataset *before* splitting it does: each test image's
        flipped / rotated / shifted twins are trained on. For the leakage ladder only (its
        ``augment_before_split`` rung); never for a number we report as a result.

        The copies are fixed once (seeded CPU generator, ``params`` = a profile's ``augment_params``),
        named ``<file>#copy<i>``, and go through training's own augmentation like any training image.
        The test, validation and normalisation are unchanged."""
        from .augment import augment_batch

        if copies < 1:
            raise ValueError(f"copies must be at least 1, got {copies}")
        idx = torch.from_numpy(np.flatnonzero(self.mask("test")))
        x = self.images[idx].float()
        gen = torch.Generator().manual_seed(seed)
        made = [augment_batch(x, gen, params).round().clamp(0, 255).to(torch.uint8) for _ in range(copies)]
        test_files = [self.files[i] for i in idx.tolist()]
        return replace(
            self,
            images=torch.cat([self.images, *made]),
            labels=torch.cat([self.labels] + [self.labels[idx]] * copies),
            files=self.files + [f"{f}#copy{c}" for c in range(copies) for f in test_files],
            parts=np.concatenate([self.parts, np.full(copies * len(idx), "train", dtype=self.parts.dtype)]),
            meta={**self.meta, "test_copies_in_train": copies},
        )
