"""Read one image or mask the same way everywhere (index, cache, ``bcdet predict``).

BUSI's PNGs are mostly grayscale stored as RGB, a few are colour (Doppler overlays), two masks are
RGBA; other ultrasound sets bring 16-bit, palette or tiny images. All of them come out of
:func:`read_image` as an 8-bit PIL image in the requested mode, or as a :class:`BcdetError` that names
the file.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import BcdetError

MIN_SIDE = 16  # smaller than this is not an ultrasound image we can learn from
MASK_SUFFIX = "_mask"


def is_mask(path: str | Path) -> bool:
    """``benign (3)_mask.png`` and ``benign (3)_mask_1.png`` are masks; ``benign (3).png`` is not."""
    stem = Path(path).stem
    return stem.endswith(MASK_SUFFIX) or (MASK_SUFFIX + "_") in stem


def to_8bit(img: Image.Image) -> Image.Image:
    """Convert 16-bit / 32-bit / float images to 8-bit by scaling their actual range, and flatten
    alpha onto black. Palette, RGB and L images pass through ``convert`` unchanged in content."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return Image.fromarray(((arr - lo) * scale).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img


def open_image(path: str | Path) -> Image.Image:
    """``Image.open(path)``, refused with a :class:`BcdetError` naming the file when it has more pixels
    than Pillow's decompression-bomb limit, ``Image.MAX_IMAGE_PIXELS`` (~89 megapixels; an ultrasound
    scan has about one).

    Pillow reads only the header here and checks the size itself, but lets an image of 1-2 times its
    limit through with a bare "decompression bomb DOS attack" warning and stops a larger one with a
    ``DecompressionBombError`` traceback. Both become one message, before any pixel is decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        found = re.search(r"(\d+) pixels", str(exc))  # "Image size (225000000 pixels) exceeds limit ..."
        size = f"{int(found[1]) / 1e6:.0f} megapixels" if found else "too many pixels"
        raise BcdetError(
            f"{path}: image has {size}, over the limit of {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
            "(Pillow's guard against decompression bombs); an ultrasound image has about one. Downscale it to "
            "a few thousand pixels a side (any image editor, or ImageMagick: magick BIG.png -resize 2000x2000 "
            "SMALL.png) and pass the copy (in a dataset folder: replace the file with it, or remove it)."
        ) from None


def read_image(path: str | Path, mode: str = "L", min_side: int = MIN_SIDE) -> Image.Image:
    """Decode ``path`` fully and return it as an 8-bit image in ``mode`` ("L" or "RGB").

    Raises :class:`BcdetError` naming the file when it cannot be decoded or is too small.
    """
    path = Path(path)
    try:
        with open_image(path) as img:
            img.load()
            img = to_8bit(img).convert(mode)
    except FileNotFoundError:
        raise BcdetError(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise BcdetError(f"{path} is a folder, not an image: pass image files (or use "
                         f"`bcdet evaluate FOLDER` for a folder per class).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BcdetError(
            f"{path}: cannot be read as an image ({exc}). Use an undamaged copy (in a "
            f"dataset folder: replace the file from the original download, or delete it)."
        ) from None
    if min(img.size) < min_side:
        raise BcdetError(
            f"{path}: image is only {img.size[0]}x{img.size[1]} pixels (need at least {min_side} on "
            f"each side), too small for the model. Use a larger image (in a dataset folder: remove this one)."
        )
    return img


def read_mask(path: str | Path) -> np.ndarray:
    """A lesion mask as a boolean array (any non-zero pixel in any channel is lesion)."""
    img = read_image(path, mode="L", min_side=1)
    return np.asarray(img) > 0
