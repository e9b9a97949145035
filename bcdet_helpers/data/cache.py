"""The tensor cache: every image decoded and resized once, kept as one uint8 tensor on disk.

Decoding 780 PNGs takes seconds; loading one ``torch.save`` file of ``780 x 1 x 64 x 64`` bytes
takes milliseconds. One file per (image size, channels, resize filter):
``runs_dir()/cache/images-<size>px-<channels>ch.pt`` (``...ch-<filter>.pt`` for a filter other than the
default) holding ``images`` (uint8, N x C x S x S),
``labels`` (int64), ``files`` (relative names, index order) and ``meta`` (``data_hash`` -- the
index fingerprint of file names, sizes and mtimes -- image size, channels, resize method, build
seconds). When the data hash, the size, the channels or the resize method differs from what is asked,
it is rebuilt by itself: a cache squashed with another filter is never reused.

Resizing: the whole image is *squashed* to a square (aspect ratio not kept), by default with PIL's
antialiased bicubic filter (the profile table's ``resize``, a run-shaping field). Our choice, the
paper says only "64 x 64": padding would spend a quarter of a 64-pixel input on black bars for the
wider scans, cropping would cut lesions near the edge; squashing keeps every pixel of the scan and
changes shapes by at most ~1.5x, the same for train and test. Channels: 1 = grayscale ("L"), 3 = RGB
(the 16 colour images keep colour).

:func:`load_images` and :func:`lesion_mask` read other files (``bcdet predict``, ``bcdet evaluate``,
notebook 05's masks) through the same :func:`resize_image`, so they see what training saw.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..paths import runs_dir
from ..profiles import DEFAULTS
from ..runinfo import write_atomic
from .images import read_image
from .index import fingerprint, load_index, masks_of
from .locate import locate_busi
from .progress import announce

# the values of Profile.resize: PIL's resampling filters (all but "nearest" antialias when shrinking)
FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
           "lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX, "nearest": Image.Resampling.NEAREST}


def resize_method(resize: str = DEFAULTS.resize) -> str:
    """How a cache built with filter ``resize`` resized, as its ``meta["resize"]`` records it (the
    default's record, ``squash, PIL bicubic (antialiased)``, is what every earlier cache holds)."""
    if resize not in FILTERS:
        raise ValueError(f"resize must be one of {', '.join(FILTERS)}, not {resize!r}")
    return f"squash, PIL {resize}" + (" (antialiased)" if resize != "nearest" else "")


RESIZE = resize_method()  # the default's record


def cache_path(image_size: int, channels: int, resize: str = DEFAULTS.resize) -> Path:
    suffix = "" if resize == DEFAULTS.resize else f"-{resize}"  # the default keeps the name earlier caches have
    return runs_dir() / "cache" / f"images-{image_size}px-{channels}ch{suffix}.pt"


def resize_image(path, image_size: int, channels: int = DEFAULTS.channels,
                 resize: str = DEFAULTS.resize) -> np.ndarray:
    """One image file -> uint8 array (C, S, S): decoded, converted, squashed to S x S with filter ``resize``."""
    return squash(read_image(path, "L" if channels == 1 else "RGB"), image_size, resize)


def squash(img: Image.Image, image_size: int, resize: str = DEFAULTS.resize) -> np.ndarray:
    """A decoded image -> uint8 array (C, S, S), squashed to S x S with filter ``resize`` (:data:`FILTERS`)."""
    resize_method(resize)  # refuses an unknown filter
    img = img.resize((image_size, image_size), FILTERS[resize], reducing_gap=3.0)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def build_cache(root=None, image_size: int = DEFAULTS.image_size, channels: int = DEFAULTS.channels,
                resize: str = DEFAULTS.resize) -> dict:
    """Decode and resize every image of the index; save and return the cache dict."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), not {channels}")
    method = resize_method(resize)
    root = locate_busi(root)
    t0 = time.perf_counter()
    index = load_index(root)
    paths = announce(index["path"], len(index), f"Resizing to {image_size} x {image_size} px, {channels} channel(s)")
    images = np.stack([resize_image(p, image_size, channels, resize) for p in paths])
    data = {
        "images": torch.from_numpy(images),
        "labels": torch.tensor(index["y"].to_numpy(), dtype=torch.int64),
        "files": list(index["file"]),
        "meta": {
            "data_hash": fingerprint(root),
            "root": str(root),
            "image_size": image_size,
            "channels": channels,
            "resize": method,
            "n_images": len(index),
            "build_seconds": round(time.perf_counter() - t0, 3),
        },
    }
    # two processes may build at once
    write_atomic(cache_path(image_size, channels, resize), lambda tmp: torch.save(data, tmp))
    return data


def load_cache(root=None, image_size: int = DEFAULTS.image_size, channels: int = DEFAULTS.channels,
               rebuild: bool = False, resize: str = DEFAULTS.resize) -> dict:
    """The cached tensors for (size, channels, resize filter), rebuilt when missing, stale (another data
    hash, size, channels or resize method in its ``meta``) or ``rebuild``.

    ``meta["loaded_from_cache"]`` says whether this call rebuilt, ``meta["load_seconds"]`` how long
    it took.
    """
    root = locate_busi(root)
    t0 = time.perf_counter()
    path = cache_path(image_size, channels, resize)
    data = None
    if path.exists() and not rebuild:
        try:
            data = torch.load(path, weights_only=False)
        except Exception:  # noqa: BLE001  a broken cache file is rebuilt, never trusted
            data = None
        if data is not None:
            m = data.get("meta", {})
            current = (m.get("data_hash"), m.get("image_size"), m.get("channels"), m.get("resize"))
            if current != (fingerprint(root), image_size, channels, resize_method(resize)):
                data = None
    fresh = data is None
    if fresh:
        data = build_cache(root, image_size, channels, resize)
    data["meta"]["loaded_from_cache"] = not fresh
    data["meta"]["load_seconds"] = round(time.perf_counter() - t0, 3)
    data["meta"]["file"] = str(path)
    return data


def load_images(paths, image_size: int, channels: int = DEFAULTS.channels, resize: str = DEFAULTS.resize):
    """uint8 tensor ``(N, C, S, S)`` of image files, decoded and resized exactly like the cache.

    Decoding (RGBA, 16-bit, palette, grayscale...) and resizing are the cache's own
    :func:`resize_image`, so ``bcdet predict`` sees what training saw.
    """
    if not len(paths):
        return torch.zeros((0, channels, image_size, image_size), dtype=torch.uint8)
    return torch.from_numpy(np.stack([resize_image(p, image_size, channels, resize) for p in paths]))


def load_scan_areas(paths, image_size: int, channels: int = DEFAULTS.channels, resize: str = DEFAULTS.resize):
    """``(images, infos)``: like :func:`load_images`, but each image first cut to its scan area
    (:func:`~bcdet_helpers.data.scanarea.crop_scan_area`; ``infos`` its :class:`CropInfo` per file).

    The crop is found on the RGB image (colour marks the overlays it must not take for tissue), then
    the crop is converted as :func:`resize_image` converts a whole file -- an image with no frame
    comes out bit-identical to :func:`load_images`' (``tests/test_external.py``). ``bcdet evaluate
    --crop auto`` reads folders this way; training reads BUSI whole (its images are scan areas).
    """
    from .scanarea import crop_scan_area

    images, infos = [], []
    for p in paths:
        cropped, _, info = crop_scan_area(read_image(p, "RGB"))
        images.append(squash(cropped.convert("L" if channels == 1 else "RGB"), image_size, resize))
        infos.append(info)
    if not images:
        return torch.zeros((0, channels, image_size, image_size), dtype=torch.uint8), infos
    return torch.from_numpy(np.stack(images)), infos


def lesion_mask(image_path, image_size: int, resize: str = DEFAULTS.resize) -> np.ndarray:
    """The union of an image's lesion masks (``X_mask.png``, ``X_mask_1.png``...), resized like
    the image itself (the cache's squash with filter ``resize``), as a float ``(S, S)`` array in
    0..1 -- a pixel half covered by lesion is 0.5. All zeros for normal tissue (BUSI's normal images have
    empty masks) and for images without a mask file."""
    masks = masks_of(Path(image_path))
    if not masks:
        return np.zeros((image_size, image_size), dtype=np.float32)
    stack = [resize_image(m, image_size, 1, resize)[0].astype(np.float32) / 255.0 for m in masks]
    return np.max(stack, axis=0)
