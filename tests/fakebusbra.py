"""Generate small BUS-BRA-shaped copies and synthetic scanner screen captures for tests.

``make_busbra`` follows the real layout (``Images/bus_NNNN-x.png``, ``bus_data.csv`` with the
authors' columns, ``SHA256SUMS`` in ``sha256sum`` format, ``LICENSE.txt``, ``5-fold-cv.csv``);
the pixels are :mod:`fakebusi`'s crude scans. ``screen_capture`` draws what an external image
often is: a speckle scan inside a black UI frame with text bands, a depth ruler, a colour bar, and
text, calipers and a colour overlay inside the scan -- with the true scan box, so a crop can be
checked to the pixel.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bcdet_helpers.busbra import BUSBRA
from fakebusi import _scan

DEVICES = ("GE Logiq 7 @10-14MHz", "GE Logiq 5 @10-12MHz", "Toshiba Aplio 300 @12-14 MHz", "U-Systems @10-14MHz")
COLUMNS = ["ID", "Case", "Histology", "Pathology", "BIRADS", "Device", "Width", "Height", "Side", "BBOX"]


def make_busbra(root: str | Path, n_patients: int = 12, seed: int = 0, checksums: bool = True,
                folder: str = BUSBRA["folder"]) -> Path:
    """Write a mini-BUS-BRA under ``root/folder`` and return that folder.

    Each patient has one pathology, one scanner, and one (``-s``) or two (``-l``, ``-r``) images;
    about a third of the patients are malignant.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    out = Path(root) / folder
    (out / BUSBRA["images_folder"]).mkdir(parents=True, exist_ok=True)
    rows = []
    for case in range(1, n_patients + 1):
        label = "malignant" if case % 3 == 0 else "benign"
        device = DEVICES[(case // 2) % 3]
        sides = ("single",) if case % 4 == 0 else ("left", "right")
        for side in sides:
            image_id = f"bus_{case:04d}-{side[0]}"
            w, h = int(rng.integers(60, 110)), int(rng.integers(60, 110))
            img, _ = _scan(rng, label, w, h)
            Image.fromarray(img, "L").save(out / BUSBRA["images_folder"] / f"{image_id}.png")
            rows.append({"ID": image_id, "Case": case, "Histology": "fibroadenoma" if label == "benign" else
                         "invasive ductal carcinoma", "Pathology": label, "BIRADS": 4 if label == "malignant" else 3,
                         "Device": device, "Width": w, "Height": h, "Side": side, "BBOX": "[10,10,20,20]"})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(out / BUSBRA["table"], index=False)
    pd.DataFrame({"ID": [r["ID"] for r in rows], "Pathology": [r["Pathology"] for r in rows],
                  "kFold": [1 + i % 5 for i in range(len(rows))]}).to_csv(out / "5-fold-cv.csv", index=False)
    (out / "LICENSE.txt").write_text("test licence\n")
    if checksums:
        write_sums(out)
    return out


def write_sums(folder: Path) -> Path:
    """``SHA256SUMS`` of every file under ``folder`` (but itself), as ``sha256sum ./x`` writes it."""
    lines = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != BUSBRA["checksums"]:
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  ./{p.relative_to(folder).as_posix()}")
    path = folder / BUSBRA["checksums"]
    path.write_text("\n".join(lines) + "\n")
    return path


def speckle(rng: np.random.Generator, h: int, w: int, dark_bottom: bool = False) -> np.ndarray:
    """A grey ``(h, w)`` B-mode look-alike: multiplicative (Rayleigh) speckle brightening with depth, a
    bright skin line on top and a dark lesion. ``dark_bottom``: from 60 % of the depth the echoes fade
    to black at 95 %, as below the chest wall (speckle's heavy tail keeps some pixels lit far down)."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    mean = 80 + 60 * yy
    mean[: max(h // 30, 2)] += 90  # skin line
    lesion = ((yy - 0.45) / 0.12) ** 2 + ((xx - 0.5) / 0.15) ** 2 <= 1
    mean[lesion] = 30
    if dark_bottom:
        mean = mean * (1 - np.clip((yy - 0.6) / 0.35, 0, 1))
    img = mean * rng.rayleigh(1 / np.sqrt(np.pi / 2), (h, w))  # unit-mean speckle
    return np.clip(img, 0, 255).astype(np.uint8)


def screen_capture(seed: int = 0, size=(640, 480), box=(150, 70, 540, 400), dark_bottom: bool = False):
    """``(RGB image, box)``: a scanner screen capture of ``size`` (width, height) whose scan area is
    ``box`` (left, top, right, bottom; right/bottom exclusive).

    Outside the scan: a black frame (with the faint noise of a lossy capture), a header and a footer
    of white text, a side panel of settings text, a depth ruler's ticks beside the scan, a colour
    bar. Inside: burned-in text, a yellow caliper cross and a coloured (Doppler-like) patch -- all of
    which must stay.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    left, top, right, bottom = box
    frame = rng.integers(0, 4, (h, w)).astype(np.uint8)  # near black, not exactly 0
    canvas = np.dstack([frame] * 3)
    canvas[top:bottom, left:right] = speckle(rng, bottom - top, right - left, dark_bottom)[..., None]
    img = Image.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(img)
    white = (235, 235, 235)
    draw.text((10, 8), "GE LOGIQ E9   ML6-15   MI 0.9  TIs 0.2   FR 31 Hz   12 cm   BREAST SMALL PARTS", fill=white)
    draw.text((10, 24), "PATIENT 0001   2024-05-17 10:42:13", fill=white)
    for i, line in enumerate(("Gn 52", "DR 66", "FRQ 12.0", "D 4.0cm", "AO 100%", "CHI", "PWR 0dB", "MAP G")):
        draw.text((12, top + 10 + 28 * i), line, fill=white)
    for y in range(top, bottom, 20):  # depth ruler beside the scan
        draw.line((right + 6, y, right + 12, y), fill=white)
    for y in range(top + 40, top + 200):  # colour bar
        t = (y - top - 40) / 160
        draw.line((w - 40, y, w - 25, y), fill=(int(255 * (1 - t)), 40, int(255 * t)))
    draw.text((left + 10, bottom + 12), "MAMA ESQUERDA  QSE", fill=white)
    draw.text((left + 10, bottom + 30), "Dist 1.24 cm   Area 0.98 cm2", fill=white)
    # inside the scan: text, a caliper, a Doppler-like colour patch
    draw.text((left + 20, bottom - 30), "LEFT BREAST", fill=white)
    cx, cy = left + (right - left) // 3, top + (bottom - top) // 3
    draw.line((cx - 5, cy, cx + 5, cy), fill=(255, 255, 0))
    draw.line((cx, cy - 5, cx, cy + 5), fill=(255, 255, 0))
    draw.rectangle((left + 200, top + 60, left + 260, top + 110), fill=(200, 30, 30))
    return img, tuple(box)


def plain_scan(seed: int = 0, size=(300, 240), dark_bottom: bool = False) -> Image.Image:
    """A scan that is already its scan area (BUSI-, BUS-BRA-like): speckle to every edge, in mode L."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(speckle(rng, size[1], size[0], dark_bottom), "L")
