"""Generate small BUSI-shaped datasets for tests: the real layout, synthetic pixels.

The pictures are crude ultrasound look-alikes (speckle, a dark lesion for benign, a spiky one for
malignant, none for normal) so that a model can learn *something* in a few steps, and the layout,
names and masks follow BUSI exactly (``benign (3).png`` + ``benign (3)_mask.png``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bcdet_helpers.busi import CLASSES  # noqa: E402  (the one record; fixtures follow it)


def _scan(rng: np.random.Generator, cls: str, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    img = 90 + 60 * (yy / h) + rng.normal(0, 25, (h, w))  # brighter with depth, speckle
    mask = np.zeros((h, w), bool)
    if cls != "normal":
        cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
        rx, ry = rng.uniform(0.12, 0.22) * w, rng.uniform(0.10, 0.18) * h
        ang = np.arctan2(yy - cy, xx - cx)
        wobble = 1.0 if cls == "benign" else 1 + 0.35 * np.sin(7 * ang + rng.uniform(0, 6))
        mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= wobble**2
        img[mask] = 25 + rng.normal(0, 8, mask.sum())
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_busi(
    root: str | Path,
    per_class: dict[str, int] | int = 10,
    seed: int = 0,
    with_duplicates: bool = True,
    folder: str = "Dataset_BUSI_with_GT",
) -> Path:
    """Write a mini-BUSI under ``root/folder`` and return that folder.

    With ``with_duplicates``: ``malignant (N)`` is a byte-identical copy of ``benign (1)`` (a
    cross-class label conflict, like the real ``benign (433)`` / ``malignant (145)``), and
    ``benign (N)`` is a re-crop-and-rescale of ``benign (2)``.
    """
    if isinstance(per_class, int):
        per_class = {c: per_class for c in CLASSES}
    rng = np.random.default_rng(seed)
    out = Path(root) / folder
    for cls in CLASSES:
        (out / cls).mkdir(parents=True, exist_ok=True)
        for i in range(1, per_class[cls] + 1):
            w, h = int(rng.integers(90, 160)), int(rng.integers(70, 120))
            img, mask = _scan(rng, cls, w, h)
            Image.fromarray(img, "L").save(out / cls / f"{cls} ({i}).png")
            Image.fromarray((mask * 255).astype(np.uint8), "L").save(out / cls / f"{cls} ({i})_mask.png")
    if with_duplicates and per_class["benign"] >= 2 and per_class["malignant"] >= 1:
        # exact cross-class copy
        n = per_class["malignant"]
        for suffix in ("", "_mask"):
            data = (out / "benign" / f"benign (1){suffix}.png").read_bytes()
            (out / "malignant" / f"malignant ({n}){suffix}.png").write_bytes(data)
        # re-crop (drop a 10% border) and rescale of benign (2)
        n = per_class["benign"]
        for suffix in ("", "_mask"):
            src = Image.open(out / "benign" / f"benign (2){suffix}.png")
            w, h = src.size
            crop = src.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((w, h))
            crop.save(out / "benign" / f"benign ({n}){suffix}.png")
    return out


def big_png(path: Path, side: int) -> Path:
    """A valid ``side`` x ``side`` black 8-bit grayscale PNG, written row by row without an image in
    memory: 15000 x 15000 (225 megapixels) is under 1 MB and takes a fraction of a second."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(1)
    row = bytes(side + 1)  # filter type 0, then black pixels
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path
