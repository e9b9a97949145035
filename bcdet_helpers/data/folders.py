"""A folder-per-class image set from someone else (``bcdet evaluate``): which files, which labels.

Labels come from folder names only, so a wrong reading of the layout silently mislabels every
image -- and an evaluation on mislabelled images still prints a confident-looking accuracy. The
rules are therefore strict and explicit:

* ``FOLDER/<class>/...`` -- a class folder (its name, or its ``--map`` target, is a class of the
  model, compared without case). Its images are read with those of its sub-folders
  (``benign/patient7/a.png``), unless a sub-folder is itself named after a class: then the layout
  contradicts itself and we stop rather than guess.
* ``FOLDER/<batch>/<class>/...`` -- a folder that is not a class but holds class folders
  (``batch1/benign``) is a *batch*: its class folders are read by their own names. Mapping such a
  folder to one class (``--map batch1=malignant``) is refused -- that would label all of its
  classes as one.
* hidden and system folders (``.ipynb_checkpoints``, ``__MACOSX``) are skipped at every level.
* any other folder is an error naming it. We do not suggest a class for it: nothing in the name
  ``Healthy`` or ``batch1`` tells us what its images are; the user has to say (``--map``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BcdetError
from ..busi import CLASSES
from .check import is_junk
from .images import is_mask

__all__ = ["IMAGE_SUFFIXES", "folder_dataset", "parse_map", "single_class_warning", "is_hidden"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def is_hidden(name: str) -> bool:
    """Folders and files no one means as data: ``.ipynb_checkpoints``, ``.git``, ``__MACOSX``."""
    return name.startswith(".") or is_junk(name)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p.name))


class _Classes:
    """Folder name -> class index, through ``--map`` (case-insensitive)."""

    def __init__(self, classes, mapping):
        self.classes = tuple(classes)
        self.mapping = {k.lower(): v for k, v in (mapping or {}).items()}
        self.index = {c.lower(): i for i, c in enumerate(self.classes)}
        for src, dst in self.mapping.items():
            if dst.lower() not in self.index:
                raise BcdetError(f"--map {src}={dst}: {dst!r} is not a class of this model "
                                 f"({', '.join(self.classes)}).")

    def of(self, name: str) -> int | None:
        return self.index.get(self.mapping.get(name.lower(), name).lower())

    def mapped(self, name: str) -> bool:
        return name.lower() in self.mapping


def _images_below(class_dir: Path, classes: _Classes, root: Path) -> list[Path]:
    """Image files in ``class_dir`` and its (non-hidden) sub-folders, masks left out.

    A sub-folder named after a class (``benign/normal/``) would put two labels on its images; we
    refuse instead of picking one.
    """
    found = []
    for here, dirs, files in os.walk(class_dir):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        for d in dirs:
            if classes.of(d) is not None:
                inner = (Path(here) / d).relative_to(root)
                outer = class_dir.relative_to(root)
                raise BcdetError(
                    f"{root}: {inner}/ is named like a class but lies inside the class folder {outer}/, so "
                    f"its images would get the label of {outer}/. Move {inner}/ out to its own class folder "
                    f"(or rename it), then run again.")
        for f in sorted(files):
            p = Path(here) / f
            if p.suffix.lower() in IMAGE_SUFFIXES and not is_mask(p) and not is_hidden(f):
                found.append(p)
    return found


def parse_map(pairs) -> dict:
    """``["malign=malignant", ...]`` (``--map`` options) -> ``{"malign": "malignant"}``, the
    ``mapping`` of :func:`folder_dataset` (BcdetError on bad syntax)."""
    out = {}
    for item in pairs or []:
        src, sep, dst = str(item).partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise BcdetError(f"--map {item!r}: write it as SRC=DST, e.g. --map malign=malignant")
        out[src.strip()] = dst.strip()
    return out


def folder_dataset(folder, classes=CLASSES, mapping=None) -> tuple[list[Path], np.ndarray]:
    """Image paths and class indices of ``folder`` laid out as the module doc says.

    Raises :class:`BcdetError` naming the folder for anything it cannot label with certainty.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BcdetError(f"{folder}: not a folder. Pass a folder with one sub-folder per class "
                         f"({', '.join(classes)}).")
    cls = _Classes(classes, mapping)
    sources: list[tuple[Path, int]] = []  # (class folder, class index)
    unknown: list[str] = []
    for sub in _subfolders(folder):
        inner = [d for d in _subfolders(sub) if cls.of(d.name) is not None]
        k = cls.of(sub.name)
        if k is not None and inner and cls.mapped(sub.name):
            raise BcdetError(
                f"--map {sub.name}={classes[k]}: {sub}/ holds class folders of its own "
                f"({', '.join(d.name for d in inner)}), so every one of its images would be labelled "
                f"{classes[k]}. Drop this --map: a folder of class folders is read by their own names.")
        if k is not None:
            sources.append((sub, k))
        elif inner:  # a batch folder: batch1/benign, batch1/malignant ...
            sources += [(d, cls.of(d.name)) for d in inner]
            unknown += [f"{sub.name}/{d.name}" for d in _subfolders(sub) if cls.of(d.name) is None]
        else:
            unknown.append(sub.name)
    if unknown:
        choices = "|".join(classes)
        raise BcdetError(
            f"{folder}: sub-folder(s) {', '.join(unknown)} match no class of the model ({', '.join(classes)}), "
            f"and a folder's name does not tell which class its images are. Rename each to its class, or "
            f"say which class it holds with --map {unknown[0]}=<{choices}>, or move it out of {folder}. "
            "(Hidden folders such as .ipynb_checkpoints are skipped; batch folders such as "
            "batch1/benign are read by their class sub-folders.)")
    paths, labels = [], []
    for src, k in sources:
        found = _images_below(src, cls, folder)
        paths += found
        labels += [k] * len(found)
    if not paths:
        raise BcdetError(f"{folder}: no images found in class sub-folders ({', '.join(classes)}).")
    return paths, np.asarray(labels, dtype=int)


def single_class_warning(labels, classes) -> str | None:
    """The warning every metric of a one-class set must carry, or ``None`` with 2+ classes.

    With one class, accuracy is just the share of images predicted as that class, and a wrong
    folder layout (everything labelled alike) produces exactly this situation -- the numbers can
    read 1.000 and mean nothing.
    """
    present = sorted(set(int(v) for v in np.asarray(labels).ravel()))
    if len(present) != 1:
        return None
    name = classes[present[0]]
    return (f"WARNING: ONLY ONE CLASS ({name}) in this folder: all {len(labels)} images are labelled "
            f"{name}. Accuracy is then just the share predicted as {name}, macro-F1 covers one class and "
            "AUC is undefined: these numbers say nothing about telling the classes apart. If the folder "
            "should hold several classes, check its layout and any --map.")
