"""The index: one row per BUSI image, everything chapter 01 asks about it, computed once.

Columns: ``file`` (relative, ``benign/benign (1).png``), ``path`` (absolute), ``label``, ``y``
(position in ``CLASSES``), ``number`` (N of ``benign (N).png``), ``width``, ``height``, ``mode``
(the PNG's own colour mode), ``n_masks``, ``lesion_fraction`` (union of the masks / image area),
``mean_intensity``, the annotation flags ``colour_fraction`` / ``colour_overlay`` and
``mark_pixels`` / ``text_or_calipers``, and ``group`` / ``group_size`` from the near-duplicate
measure (:mod:`.similarity`; :mod:`.duplicates` reads the pairs back). Rows are sorted by (label, number).

Decoding 780 PNGs and their masks takes seconds, so the result is cached under
``runs_dir()/cache/index-<key>.pkl`` where ``key`` hashes the relative file names, sizes and
modification times (and this module's ``INDEX_VERSION``): touching, adding or removing a file
rebuilds it; a cached load takes milliseconds.

Annotation detectors (simple on purpose, so a student can check them)
---------------------------------------------------------------------
* **colour overlay** -- a pixel is *coloured* when its RGB channels differ by more than
  ``COLOUR_DELTA``; an image with more than ``COLOUR_SHARE`` of such pixels carries colour
  (Doppler flow, coloured markers). Gray ultrasound has equal channels.
* **text or calipers** -- burned-in text, caliper crosses and dotted measurement lines are *thin
  and bright*: a pixel >= ``MARK_LEVEL`` whose neighbours ``MARK_GAP`` pixels away on *both* sides
  (left and right, or above and below) are at least ``MARK_CONTRAST`` darker. Tissue edges are
  bright on one side only, so they rarely pass. An image with more than ``MARK_PIXELS`` such
  pixels is flagged.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..busi import BUSI_FOLDER, CLASSES
from ..errors import BcdetError
from ..paths import runs_dir
from ..profiles import DEFAULTS
from ..runinfo import write_atomic
from . import similarity
from .check import parse_name, require_usable
from .images import open_image, read_image, read_mask, to_8bit
from .progress import announce

INDEX_VERSION = 2  # bump when the columns or detectors change, to invalidate old caches
COLOUR_DELTA = 30
COLOUR_SHARE = 0.001
MARK_LEVEL = 200
MARK_CONTRAST = 100
MARK_GAP = 3
MARK_PIXELS = 100  # chosen by eye on BUSI: 50-100 is mostly the scanner logo + bright ligaments


def image_number(name: str) -> int:
    """``benign (12).png`` -> 12 (``-1`` when the name does not follow BUSI's pattern)."""
    parsed = parse_name(name)
    return parsed[1] if parsed else -1


def list_images(root: Path) -> list[Path]:
    """The images of the class folders, sorted by (class, number).

    An image is what ``bcdet data check`` calls one (:func:`check.parse_name`): ``<class> (N).png``
    in its own class folder. Masks and stray files such as ``benign (3) copy.png`` are left out, so
    the check and the index always agree on what the dataset holds.
    """
    files = []
    for cls in CLASSES:
        folder = root / cls
        if folder.is_dir():
            named = [(parse_name(p.name), p) for p in folder.iterdir()]
            pics = [(n[1], p) for n, p in named if n is not None and n[0] == cls and n[2] is None]
            files += [p for _, p in sorted(pics)]
    if not files:
        raise BcdetError(f"{root}: no images found in {', '.join(CLASSES)}/ folders. "
                         f"Point BCDET_DATA at the {BUSI_FOLDER} folder.")
    return files


def masks_of(image: Path) -> list[Path]:
    """``X_mask.png``, ``X_mask_1.png``, ... next to image ``X.png``."""
    return sorted(image.parent.glob(f"{glob_escape(image.stem)}_mask*.png"))


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def fingerprint(root: Path) -> str:
    """Hash of (relative name, size, mtime) of every PNG under ``root`` plus the index version."""
    # the default threshold's groups are the ones cached; a profile with another regroups (load_index)
    h = hashlib.sha1(f"v{INDEX_VERSION}|{similarity.THRESHOLD}|{root}".encode())
    for p in sorted(root.glob("*/*.png")):
        st = p.stat()
        h.update(f"{p.parent.name}/{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def colour_fraction(img: Image.Image) -> float:
    """Share of pixels whose RGB channels differ by more than ``COLOUR_DELTA`` (0 for gray)."""
    if img.mode in ("L", "1", "I", "I;16", "F", "LA"):
        return 0.0
    rgb = np.asarray(to_8bit(img).convert("RGB"), dtype=np.int16)
    return float(((rgb.max(2) - rgb.min(2)) > COLOUR_DELTA).mean())


def mark_pixels(gray: np.ndarray) -> int:
    """Number of thin bright pixels (text strokes, caliper marks) in a uint8 grayscale image."""
    a = gray.astype(np.int16)
    g = MARK_GAP
    bright = a[g:-g, g:-g] >= MARK_LEVEL
    centre = a[g:-g, g:-g] - MARK_CONTRAST
    horiz = np.maximum(a[g:-g, : -2 * g], a[g:-g, 2 * g :]) <= centre
    vert = np.maximum(a[: -2 * g, g:-g], a[2 * g :, g:-g]) <= centre
    return int((bright & (horiz | vert)).sum())


def _describe(path: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """One image -> (row fields, thumbnail, 256-bin intensity histogram)."""
    try:
        with open_image(path) as img:
            img.load()
            mode, (w, h) = img.mode, img.size
            colour = colour_fraction(img)
    except (OSError, SyntaxError, ValueError):
        read_image(path)  # raises a BcdetError naming the file
        raise
    gray_img = read_image(path, "L")
    gray = np.asarray(gray_img)
    masks = masks_of(path)
    union = np.zeros(gray.shape, bool)
    for m in masks:
        mk = read_mask(m)
        if mk.shape != union.shape:  # a mask saved at another size: bring it onto the image grid
            mk = np.asarray(Image.fromarray(mk).resize((w, h), Image.Resampling.NEAREST))
        union |= mk
    marks = mark_pixels(gray)
    row = {
        "width": w,
        "height": h,
        "mode": mode,
        "n_masks": len(masks),
        "lesion_fraction": float(union.mean()),
        "mean_intensity": float(gray.mean() / 255.0),
        "colour_fraction": colour,
        "colour_overlay": colour > COLOUR_SHARE,
        "mark_pixels": marks,
        "text_or_calipers": marks > MARK_PIXELS,
    }
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.int64)
    return row, similarity.thumbnail(gray_img), hist


def _build(root: Path) -> dict:
    t0 = time.perf_counter()
    files = list_images(root)
    rows, thumbs, hists = [], [], []
    for p in announce(files, len(files), f"Indexing BUSI in {root}"):
        row, thumb, hist = _describe(p)
        label = p.parent.name
        rows.append({"file": f"{label}/{p.name}", "path": str(p), "label": label,
                     "y": CLASSES.index(label), "number": image_number(p.name), **row})
        thumbs.append(thumb)
        hists.append(hist)
    index = pd.DataFrame(rows)
    thumbs = np.stack(thumbs)
    print(f"  comparing all {len(files) * (len(files) - 1) // 2} pairs for near-duplicates "
          "(often as long as the indexing) ...", flush=True)
    t_dup = time.perf_counter()
    sim = similarity.similarity_matrix(thumbs)
    bundle = similarity.regroup({"index": index, "similarity": sim.astype(np.float32), "threshold": None})
    print(f"  done: {len(bundle['pairs'])} near-duplicate pairs in {time.perf_counter() - t_dup:.1f} s", flush=True)
    return {
        **bundle,
        "thumbs": thumbs,
        "histograms": np.stack(hists),
        "root": str(root),
        "build_seconds": time.perf_counter() - t0,
    }


def index_path(root: Path) -> Path:
    """Where the index of the BUSI folder ``root`` is cached: named by its :func:`fingerprint`."""
    return runs_dir() / "cache" / f"index-{fingerprint(root)}.pkl"


def load_index(root: str | Path | None = None, full: bool = False, rebuild: bool = False,
               threshold: float = DEFAULTS.duplicate_threshold):
    """The index DataFrame of BUSI at ``root`` (cached; see module doc), its near-duplicate ``group`` s
    at ``threshold`` (a profile's ``duplicate_threshold``; another than the default regroups the cached
    similarities, :func:`~.similarity.regroup`).

    ``full=True`` returns the whole bundle: ``index``, ``pairs`` (the near-duplicate pairs), ``threshold``,
    ``similarity`` (N x N), ``thumbs`` (N x 96 x 96 uint8), ``histograms`` (N x 256 pixel counts),
    ``build_seconds`` and ``cache_file``.

    Every reader of BUSI comes through here (the tensor cache, :func:`load_split_data`, the
    notebooks), so this is where an unusable folder is refused (:func:`check.require_usable`).
    """
    root = require_usable(root)
    cache = index_path(root)
    bundle = None
    if cache.exists() and not rebuild:
        try:
            with open(cache, "rb") as fh:
                bundle = pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            bundle = None  # a broken cache is rebuilt, never trusted
    if bundle is None:
        bundle = _build(root)
        write_atomic(cache, lambda tmp: tmp.write_bytes(pickle.dumps(bundle, protocol=pickle.HIGHEST_PROTOCOL)))
    bundle["cache_file"] = str(cache)
    bundle = similarity.regroup(bundle, threshold)
    return bundle if full else bundle["index"].copy()


def build_index(root: str | Path | None = None) -> pd.DataFrame:
    """One row per image (see module doc); cached, so repeated calls are fast."""
    return load_index(root)
