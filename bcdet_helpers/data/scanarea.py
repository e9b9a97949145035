"""Find the scan area of an ultrasound screen capture and crop to it (``bcdet evaluate --crop``).

Images from another hospital often arrive as *screen captures*: the B-mode scan sits inside the
scanner's user interface -- black borders, a header and footer of burned-in text (patient, probe,
depth, gain), a depth ruler, a grey-scale or colour bar, a logo. BUSI and BUS-BRA were cropped to
the scan area by their authors, so a BUSI model has never seen such a frame; squashed to 64 x 64
px, a capture would give the scan a third less of the input and the model pixels it has never
learned to read. :func:`crop_scan_area` finds the scan area and cuts the frame away.

How (rows first, then columns within the rows kept, alternating until the box is stable -- a side
panel of text dilutes the rows' shares in the first pass, not in the second):

1. *Content* pixels: grey (colour channels within :data:`COLOUR` of each other, the index's colour
   measure -- a coloured pixel is a colour bar, a logo or an overlay, never B-mode tissue), brighter
   than :data:`DARK` (the frame's black) and darker than :data:`BRIGHT` (white text, ruler ticks and
   lines are strokes at full brightness; tissue is mostly mid-grey). Each row gets its share of
   content pixels.
2. *Black gaps split the frame from the scan.* Rows under :data:`EMPTY` x the fullest row's share are
   black; of the runs of rows between black ones, the scan is the run holding the most content. A
   header, a footer, a text block or a ruler beyond a black gap is dropped with the gap.
3. *Text right against the scan:* rows under :data:`MIN_SHARE` x the fullest share are peeled off the
   ends of that run. Only its ends: a dark cyst or an acoustic shadow inside the scan cannot split
   or shrink the box.
4. *Only where the scan has an edge.* Row by row, the deep field of a scan -- black below the chest
   wall, as in many BUSI and BUS-BRA images, sometimes with a label burned into it -- looks just like
   a black frame. But the tissue fades into it: speckle thins out over dozens of rows, while a
   screen's frame meets the scan at once. So an end is cut only when the scan's first
   :data:`EDGE_WIDTH` rows there hold at least :data:`EDGE` x the fullest share; a fading bottom
   stays, and with it any frame below (a capture then keeps some black, never loses tissue).
   Likewise text that touches the scan with no black gap fails the test and that side stays uncut.

What it keeps: text, calipers and overlays *inside* the scan area stay (removing them would need
inpainting, and BUSI's own images carry them too: the model has seen them). What it does not do:
find a scan area on a bright or coloured UI background (the frame must be dark), or cut a sector
(fan) scan to its fan -- a fan widens gradually, so its bounding box is kept whole.

Images that are already a scan area (BUSI, BUS-BRA) come through unchanged: a border is cut only
when it holds at least :data:`MIN_REMOVED` of the image, so a one-pixel black line stays. On the
real copies (issue #30) none of BUSI's 780 images is cut and one of BUS-BRA's 1,875 (bus_0250-l:
the bottom 9 rows, 2 % of it, a label in its black deep field); ``tests/test_external.py`` checks a
sample of both when the copies are present.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from .index import COLOUR_DELTA

__all__ = ["DARK", "BRIGHT", "COLOUR", "EMPTY", "MIN_SHARE", "EDGE", "MIN_REMOVED", "CropInfo", "crop_scan_area",
           "scan_area_box", "crop_counts", "crop_summary"]

DARK = 12  # grey level at or below which a pixel is the frame's black background (0..255)
BRIGHT = 230  # grey level at or above which a pixel is text, a ruler tick or a line, not tissue
COLOUR = COLOUR_DELTA  # largest spread between R, G and B of a grey (tissue) pixel: the index's own measure
EMPTY = 0.05  # a row/column with a content share below this x the fullest one's is black: a gap in the frame
MIN_SHARE = 0.3  # at the scan's ends, a row/column below this x the fullest one's share is frame (text)
EDGE = 0.6  # an end is cut only when the scan's first rows/columns there reach this x the fullest share
EDGE_WIDTH = 3  # rows/columns averaged for that edge test
MIN_REMOVED = 0.02  # crop only when the frame holds at least this share of the image's area
MIN_KEPT = 0.1  # a "scan area" smaller than this share of the image is not believed: no crop


@dataclass(frozen=True)
class CropInfo:
    """What :func:`crop_scan_area` did to one image. ``box`` is ``(left, top, right, bottom)`` in
    the original's pixels (PIL's convention: right and bottom exclusive)."""

    size: tuple[int, int]  # the original's (width, height)
    box: tuple[int, int, int, int]  # the scan area found (the whole image when nothing was cut)
    cropped: bool  # whether the returned image is the box (False: the original came back)
    removed: float  # share of the original's area cut away (0.0 when not cropped)
    reason: str  # why: "cropped", "no frame", "frame under 2 % of the area", "no scan area found"

    def as_dict(self) -> dict:
        return asdict(self)


def _content(arr: np.ndarray) -> np.ndarray:
    """Boolean ``(H, W)``: the content pixels of step 1 (see the module doc)."""
    if arr.ndim == 2:
        return (arr > DARK) & (arr < BRIGHT)
    rgb = arr[..., :3].astype(np.int16)
    grey = rgb.mean(axis=-1)
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)
    return (grey > DARK) & (grey < BRIGHT) & (spread <= COLOUR)


def _peel(share: np.ndarray) -> tuple[int, int]:
    """``(start, stop)`` of the scan's rows (or columns), given each row's share of content pixels:
    steps 2-4 of the module doc. ``(0, 0)`` when everything is black."""
    top = share.max() if share.size else 0.0
    if top <= 0:
        return 0, 0
    filled = np.r_[False, share >= EMPTY * top, False].astype(np.int8)
    starts, stops = np.flatnonzero(np.diff(filled) == 1), np.flatnonzero(np.diff(filled) == -1)
    best = int(np.argmax([share[a:b].sum() for a, b in zip(starts, stops)]))  # step 2: the fullest run
    keep = starts[best] + np.flatnonzero(share[starts[best]:stops[best]] >= MIN_SHARE * top)  # step 3
    start, stop = int(keep[0]), int(keep[-1]) + 1
    if share[start:start + EDGE_WIDTH].mean() < EDGE * top:  # step 4: no edge, no cut
        start = 0
    if share[max(stop - EDGE_WIDTH, start):stop].mean() < EDGE * top:
        stop = len(share)
    return start, stop


def scan_area_box(img: Image.Image | np.ndarray) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the scan area (the whole image when it is all scan)."""
    content = _content(np.asarray(img))
    h, w = content.shape
    left, top, right, bottom = 0, 0, w, h
    for _ in range(4):  # converges in two passes on every capture we tried; four is a safe bound
        c = content[top:bottom, left:right]
        t, b = _peel(c.mean(axis=1))
        if b <= t:
            return 0, 0, 0, 0
        l, r = _peel(c[t:b].mean(axis=0))
        if r <= l:
            return 0, 0, 0, 0
        new = (left + l, top + t, left + r, top + b)
        if new == (left, top, right, bottom):
            break
        left, top, right, bottom = new
    return left, top, right, bottom


def crop_scan_area(img: Image.Image) -> tuple[Image.Image, tuple[int, int, int, int], CropInfo]:
    """``(cropped, box, info)``: ``img`` cut to its scan area, the box, and a :class:`CropInfo`.

    The image comes back unchanged (``info.cropped`` False, ``box`` the whole image) when there
    is no frame, when the frame holds less than :data:`MIN_REMOVED` of the area, or when the box
    found is implausibly small (under :data:`MIN_KEPT` of the area: an almost black image).
    The crop is the only change: pixels, mode and colour are those of ``img`` (any mode; the box is
    found on its RGB or L version, as :func:`~bcdet_helpers.data.images.read_image` returns them).
    """
    w, h = img.size
    whole = (0, 0, w, h)
    box = scan_area_box(img if img.mode in ("L", "RGB") else img.convert("RGB"))
    kept = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    removed = 1.0 - kept / float(w * h) if w * h else 0.0
    if box == whole:
        return img, whole, CropInfo((w, h), whole, False, 0.0, "no frame")
    if kept < MIN_KEPT * w * h:
        return img, whole, CropInfo((w, h), whole, False, 0.0, "no scan area found")
    if removed < MIN_REMOVED:
        return img, whole, CropInfo((w, h), whole, False, 0.0,
                                    f"frame under {MIN_REMOVED:.0%} of the area".replace("%", " %"))
    return img.crop(box), box, CropInfo((w, h), box, True, round(removed, 4), "cropped")


def crop_counts(infos) -> dict:
    """``{"images", "cropped", "median_removed", "max_removed"}`` over :class:`CropInfo` s (the
    removed shares over the cropped images only; ``None`` when none was cropped)."""
    infos = list(infos)
    cut = [i.removed for i in infos if i.cropped]
    return {"images": len(infos), "cropped": len(cut),
            "median_removed": float(np.median(cut)) if cut else None, "max_removed": max(cut) if cut else None}


def crop_summary(infos) -> str:
    """One line for a person: ``"cropped 12 of 40 images (median 18 % of the area removed, at most 31 %)"``."""
    c = crop_counts(infos)
    if not c["cropped"]:
        return f"cropped 0 of {c['images']} images (no screen-capture frame found)"
    return (f"cropped {c['cropped']} of {c['images']} images (median {100 * c['median_removed']:.0f} % of the area "
            f"removed, at most {100 * c['max_removed']:.0f} %)")
