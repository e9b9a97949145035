"""``bcdet data check``: is this BUSI folder complete and readable, and what is in it?

A student's first run should fail *here*, with a list of what is wrong and which file, rather than
an hour later inside a training loop. The check is cheap (about a second for the 1578 PNGs of
BUSI): every PNG's header is read and its chunks are verified with Pillow, without decoding the
pixels. A file that fails is then handed to :func:`~bcdet_helpers.data.images.read_image` so the
message is the same one training would print.

What counts as what, per class folder (``benign/`` ...):

* image -- ``benign (12).png``
* mask  -- ``benign (12)_mask.png``, ``benign (12)_mask_1.png`` ... (never counted as an image)
* ignored with a note -- ``.DS_Store``, ``Thumbs.db``, macOS ``._*`` files, ``desktop.ini``
* unexpected -- anything else (``notes.txt``, ``benign (12) copy.png``, a sub-folder): reported,
  and skipped by the rest of the package.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..busi import BUSI, CLASSES
from ..errors import BcdetError
from .images import MIN_SIDE, open_image, read_image
from .locate import locate_busi

# Counts in the published dataset (the BUSI record). A subset is allowed, so a different count is a
# warning, not an error.
EXPECTED_IMAGES = BUSI["images"]

# Files that operating systems and archivers leave behind; harmless, ignored with a note.
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"}
# Modes that read_image converts on the fly (see images.to_8bit); worth a note, not a problem.
ODD_MODES = {"RGBA", "LA", "PA", "I;16", "I;16B", "I;16L", "I", "F", "P"}

_NAME = re.compile(BUSI["filename"])


def parse_name(name: str) -> tuple[str, int, int | None] | None:
    """``"benign (3)_mask_1.png"`` -> ``("benign", 3, 1)``; an image gives ``(cls, n, None)``.

    The first mask of an image (``_mask.png``) has index 0. Names that do not follow BUSI's pattern
    give ``None``.
    """
    m = _NAME.match(name)
    if m is None or m["cls"] not in CLASSES:
        return None
    if m["mask"] is None:
        return m["cls"], int(m["num"]), None
    return m["cls"], int(m["num"]), int(m["k"]) if m["k"] else 0


def is_junk(name: str) -> bool:
    """OS/archiver leftovers (``.DS_Store``, ``Thumbs.db``, ``._foo.png``)."""
    return name in JUNK_NAMES or name.startswith("._")


@dataclass
class Problem:
    """One thing wrong with one file (or folder). ``fatal`` problems make the data unusable."""

    file: str  # path relative to the BUSI folder, e.g. "benign/benign (3).png"
    what: str
    todo: str
    fatal: bool = False

    def __str__(self) -> str:
        return f"{self.file}: {self.what} -> {self.todo}"


class Verdict:
    """What every check report says the same way: its problems split into errors (fatal) and warnings,
    and whether it passes (no error). Shared by BUSI's :class:`CheckReport` and BUS-BRA's report."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.fatal]

    @property
    def ok(self) -> bool:
        """Nothing fatal: for BUSI, all class folders present, each with an image, nothing unreadable."""
        return not self.errors

    def problem_lines(self) -> list[str]:
        """The report's errors, warnings and notes (``notes``, when the report has them), as indented lists."""
        lines = []
        for title, items in (("Errors (must fix)", self.errors), ("Warnings", self.warnings),
                             ("Notes", getattr(self, "notes", []))):
            if items:
                lines += ["", f"{title} ({len(items)}):"] + [f"  - {p}" for p in items]
        return lines


@dataclass
class CheckReport(Verdict):
    """What :func:`check_dataset` found. ``ok`` means the package can work with this folder."""

    root: Path
    images: dict[str, int] = field(default_factory=dict)  # class -> number of images
    masks: dict[str, int] = field(default_factory=dict)  # class -> number of masks
    width: tuple[int, int] | None = None  # (min, max) over images
    height: tuple[int, int] | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def format(self, verdict: str | None = None) -> str:
        """A plain-text report: counts table, size range, errors, warnings, notes, verdict.

        ``verdict`` replaces the last line when the caller decides more than the check does (a
        download refused for holding fewer images than BUSI must not end on "Result: OK").
        """
        lines = [f"BUSI folder: {self.root}", ""]
        lines.append(f"{'class':<10} {'images':>7} {'masks':>7} {'expected images':>16}")
        for cls in CLASSES:
            n_img = self.images.get(cls, 0)
            n_mask = self.masks.get(cls, 0)
            flag = "" if n_img == EXPECTED_IMAGES[cls] else "  (differs)"
            lines.append(f"{cls:<10} {n_img:>7} {n_mask:>7} {EXPECTED_IMAGES[cls]:>16}{flag}")
        lines.append(
            f"{'total':<10} {sum(self.images.values()):>7} {sum(self.masks.values()):>7} "
            f"{sum(EXPECTED_IMAGES.values()):>16}"
        )
        lines.append("")
        if self.width and self.height:
            lines.append(
                f"image size: width {self.width[0]}-{self.width[1]} px, "
                f"height {self.height[0]}-{self.height[1]} px"
            )
        else:
            lines.append("image size: no readable images")
        lines += self.problem_lines()
        lines.append("")
        if verdict is not None:
            lines.append(verdict)
        elif self.ok:
            lines.append("Result: OK -- this folder is usable.")
        else:
            lines.append(f"Result: NOT USABLE -- fix the {len(self.errors)} error(s) above.")
        return "\n".join(lines)


def _inspect_png(path: Path) -> tuple[tuple[int, int] | None, str | None, str | None]:
    """(size, mode, error) of a PNG, from its header plus a chunk/CRC check (no pixel decoding).

    On failure the error text is read_image's own, so check and training say the same thing.
    """
    try:
        with open_image(path) as img:
            size, mode = img.size, img.mode
            img.verify()
        return size, mode, None
    except Exception as exc:  # noqa: BLE001 -- Pillow raises many types for broken files
        verify_error = f"{type(exc).__name__}: {exc}"
    try:
        img = read_image(path, min_side=1)
    except BcdetError as exc:
        return None, None, str(exc)
    # decodes, but the file's structure is damaged (e.g. cut off after the pixel data)
    return img.size, None, f"{path}: damaged PNG ({verify_error}), although its pixels decode"


def check_dataset(path: str | Path | None = None) -> CheckReport:
    """Validate the BUSI folder at ``path`` (default ``$BCDET_DATA`` or ``data/``).

    Raises :class:`BcdetError` only when no BUSI folder is found at all; everything else is
    collected into the returned :class:`CheckReport` (print ``report.format()``).
    """
    root = locate_busi(path)
    report = CheckReport(root=root)
    sizes: list[tuple[int, int]] = []  # of the usable images, for the size range
    odd: dict[str, list[str]] = {}  # mode -> files
    junk: list[str] = []
    for extra in sorted(root.iterdir()):
        if extra.name not in CLASSES:
            if is_junk(extra.name):
                junk.append(extra.name)
            else:
                report.notes.append(f"{extra.name}: not a class folder, ignored")
    for cls in CLASSES:
        _check_class(root, cls, report, sizes, odd, junk)
    if sizes:
        widths, heights = zip(*sizes)
        report.width, report.height = (min(widths), max(widths)), (min(heights), max(heights))
    for mode, files in sorted(odd.items()):
        report.notes.append(f"{len(files)} file(s) stored as {mode}, converted to 8-bit when read: "
                            + _short_list(files))
    if junk:
        report.notes.append(f"ignored {len(junk)} system file(s): " + _short_list(junk))
    return report


def _check_class(root: Path, cls: str, report: CheckReport, sizes: list, odd: dict,
                 junk: list) -> None:
    """Scan one class folder: sort its files into images / masks / junk / unexpected, inspect
    every PNG, then pair images with masks. Results are appended to ``report`` and the lists."""
    problems = report.problems
    folder = root / cls
    report.images[cls] = report.masks[cls] = 0
    if not folder.is_dir():
        problems.append(Problem(
            f"{cls}/", f"class folder missing ({folder})",
            f"restore {cls}/ from the original zip (bcdet data download --force)", fatal=True))
        return
    images: dict[int, tuple[int, int] | None] = {}  # number -> size (None: unreadable)
    masks: dict[int, list[tuple[str, tuple[int, int] | None]]] = {}  # number -> [(name, size)]
    for entry in sorted(folder.iterdir()):
        rel = f"{cls}/{entry.name}"
        if is_junk(entry.name):
            junk.append(rel)
            continue
        parsed = parse_name(entry.name) if entry.is_file() else None
        if parsed is None or parsed[0] != cls:
            kind = "folder" if entry.is_dir() else "file"
            problems.append(Problem(
                rel, f"unexpected {kind} (expected '{cls} (N).png' or '{cls} (N)_mask.png')",
                "it is ignored; move it out of the dataset folder"))
            continue
        _, number, mask_index = parsed
        size, mode, error = _inspect_png(entry)
        if error is not None:
            # still counted below (the file is there), so its partner is not reported as orphan
            what = "unreadable " + ("image" if mask_index is None else "mask")
            problems.append(Problem(rel, what if size is None else "damaged PNG", error,
                                    fatal=size is None))
        if mode in ODD_MODES:
            odd.setdefault(mode, []).append(rel)
        if mask_index is not None:
            masks.setdefault(number, []).append((entry.name, size))
            continue
        images[number] = size
        if size is not None and min(size) < MIN_SIDE:
            problems.append(Problem(
                rel, f"image is only {size[0]}x{size[1]} px (need {MIN_SIDE}+ per side)",
                "remove it from the dataset folder", fatal=True))
        elif size is not None:
            sizes.append(size)

    report.images[cls] = len(images)
    report.masks[cls] = sum(len(m) for m in masks.values())
    for number in sorted(set(images) - set(masks)):
        problems.append(Problem(
            f"{cls}/{cls} ({number}).png", "image has no mask",
            f"add '{cls} ({number})_mask.png' from the original zip (the image is still used "
            "for classification)"))
    for number in sorted(set(masks) - set(images)):
        for name, _ in masks[number]:
            problems.append(Problem(f"{cls}/{name}", "mask has no image",
                                    f"restore '{cls} ({number}).png' or delete the mask"))
    for number in sorted(set(masks) & set(images)):
        image_size = images[number]
        for name, size in masks[number]:
            if None not in (size, image_size) and size != image_size:
                problems.append(Problem(
                    f"{cls}/{name}", f"mask is {size[0]}x{size[1]} px but its image is "
                    f"{image_size[0]}x{image_size[1]} px", "replace the mask with the original one"))
    if not images:
        problems.append(Problem(f"{cls}/", "no images in this class folder",
                                "restore the class from the original zip", fatal=True))
    elif len(images) != EXPECTED_IMAGES[cls]:
        problems.append(Problem(
            f"{cls}/", f"{len(images)} images, the published dataset has {EXPECTED_IMAGES[cls]}",
            "fine for a deliberate subset; otherwise re-download (bcdet data download --force)"))


def _short_list(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# (root, signature) -> None when usable, else the refusal message; see require_usable
_VERDICTS: dict[tuple[str, tuple], str | None] = {}


def _signature(root: Path) -> tuple:
    """(name, size, mtime) of every entry one and two levels down: any change a check could see
    (a class folder removed, a PNG replaced or truncated) changes it; a few ms for BUSI."""
    entries = []
    for p in sorted([*root.iterdir(), *root.glob("*/*")]):
        st = p.stat()
        entries.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return tuple(entries)


def unusable_message(report: CheckReport) -> str:
    """The one refusal every entry point prints for a folder ``bcdet data check`` calls NOT USABLE."""
    errors = report.errors
    shown = "; ".join(str(p) for p in errors[:5])
    more = f"; ... and {len(errors) - 5} more" if len(errors) > 5 else ""
    return (f"The BUSI folder {report.root} is NOT USABLE ({len(errors)} error(s)): {shown}{more}. "
            f"`bcdet data check {report.root}` prints the full report. Fix the folder (or point BCDET_DATA "
            "at a complete copy) and run again.")


def require_usable(path: str | Path | None = None) -> Path:
    """The BUSI folder at ``path`` (as :func:`locate_busi` finds it), or :class:`BcdetError` when
    :func:`check_dataset` finds errors there.

    Training, ``bcdet reproduce`` and every notebook call this before they read the data, so a
    class folder gone missing stops them all with the same message -- never a model trained on two
    classes or a ``KeyError`` deep inside a notebook. The verdict is kept per folder (and per state
    of its files), so calling it again costs a directory listing, not a new check.
    """
    root = locate_busi(path)
    key = (str(root), _signature(root))
    if key not in _VERDICTS:
        report = check_dataset(root)
        _VERDICTS[key] = None if report.ok else unusable_message(report)
    if _VERDICTS[key] is not None:
        raise BcdetError(_VERDICTS[key])
    return root
