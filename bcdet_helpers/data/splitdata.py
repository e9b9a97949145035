"""`SplitData`: the tensors a training run consumes, with their split and normalisation.

All images of the run live in one uint8 tensor (small: 780 x 64 x 64 bytes is ~3 MB), so training
can move them to the device once and never decode a PNG again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..paths import CLASSES

PARTS = ("train", "val", "test")


@dataclass
class SplitData:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    files: list[str]  # relative file names, aligned with images
    split: np.ndarray  # "train" / "val" / "test" per image
    mean: float = 0.0  # train-pixel mean on the 0..1 scale
    std: float = 1.0  # train-pixel std on the 0..1 scale
    classes: tuple[str, ...] = CLASSES
    kind: str = "grouped"
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
        return self.split == name

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(uint8 images, labels)`` of ``"train"``, ``"val"`` or ``"test"``."""
        idx = torch.from_numpy(np.flatnonzero(self.mask(name)))
        return self.images[idx], self.labels[idx]

    def files_of(self, name: str) -> list[str]:
        return [f for f, keep in zip(self.files, self.mask(name)) if keep]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float, scaled by the training split's statistics (no test information)."""
        return (x.float() / 255.0 - self.mean) / self.std

    @staticmethod
    def train_stats(images: torch.Tensor, split: np.ndarray) -> tuple[float, float]:
        """Mean and std of the training images' pixels on the 0..1 scale."""
        train = images[torch.from_numpy(np.flatnonzero(split == "train"))].float() / 255.0
        return float(train.mean()), float(train.std().clamp_min(1e-6))
