"""``bcdet data check --busbra``: is this BUS-BRA copy complete, readable and the authors' own?

The external test is only worth its numbers when the set is the published one: a missing file
shifts the counts, a re-saved one no longer matches anyone else's copy, a broken one stops the
evaluation half way. So, as ``bcdet data check`` does for BUSI (:mod:`.check`, whose
:class:`~.check.Problem` and PNG inspection this reuses), the check reads everything cheaply
and names every file that is wrong:

* the table (``bus_data.csv``): the columns we need, a benign/malignant label and a patient per row,
  no id twice (:func:`.busbra.read_busbra`);
* the images: every listed image present, every PNG's header and chunks intact (no pixels decoded),
  none too small; files without a row are named (they have no label);
* checksums, where ``SHA256SUMS`` is given: every file it lists hashed and compared;
* counts: images per class, patients, images per scanner, against the published ones in the
  :data:`~bcdet_helpers.busbra.BUSBRA` record -- a subset is allowed, so a difference is a warning.

Errors make the copy unusable (an unreadable image, a checksum mismatch, a table we cannot read, a
class with no image); warnings and notes do not.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..busbra import BUSBRA
from ..errors import BcdetError
from .busbra import locate_busbra, read_busbra
from .check import Problem, Verdict, _inspect_png, _short_list, is_junk
from .checksums import read_sums, verify_sums
from .images import MIN_SIDE

__all__ = ["BusbraReport", "check_busbra"]


@dataclass
class BusbraReport(Verdict):
    """What :func:`check_busbra` found; ``ok`` means an evaluation can use this copy."""

    root: Path
    images: dict[str, int] = field(default_factory=dict)  # class -> readable images listed in the table
    patients: int = 0
    devices: dict[str, int] = field(default_factory=dict)  # scanner -> images
    width: tuple[int, int] | None = None
    height: tuple[int, int] | None = None
    checksums: str = "not verified"  # one line: how many files were verified, or why none
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        """A plain-text report: counts against the published ones, sizes, checksums, problems, verdict."""
        lines = [f"BUS-BRA folder: {self.root}", "", f"{'':<20} {'images':>7} {'published':>10}"]
        for cls, expected in BUSBRA["images"].items():
            n = self.images.get(cls, 0)
            lines.append(f"{cls:<20} {n:>7} {expected:>10}" + ("" if n == expected else "  (differs)"))
        total, expected_total = sum(self.images.values()), sum(BUSBRA["images"].values())
        lines.append(f"{'total':<20} {total:>7} {expected_total:>10}")
        lines.append(f"{'patients (Case)':<20} {self.patients:>7} {BUSBRA['patients']:>10}")
        lines += ["", f"{'scanner':<20} {'images':>7} {'published':>10}"]
        for device in sorted(set(self.devices) | set(BUSBRA["devices"]), key=lambda d: -self.devices.get(d, 0)):
            n, expected = self.devices.get(device, 0), BUSBRA["devices"].get(device, 0)
            lines.append(f"{device:<20} {n:>7} {expected:>10}" + ("" if n == expected else "  (differs)"))
        lines.append("")
        if self.width and self.height:
            lines.append(f"image size: width {self.width[0]}-{self.width[1]} px, "
                         f"height {self.height[0]}-{self.height[1]} px")
        lines.append(f"checksums: {self.checksums}")
        lines += self.problem_lines()
        lines.append("")
        lines.append("Result: OK -- this copy is usable." if self.ok
                     else f"Result: NOT USABLE -- fix the {len(self.errors)} error(s) above.")
        lines.append(f"Cite it as: {BUSBRA['citation']}")
        return "\n".join(lines)


def check_busbra(path: str | Path | None = None) -> BusbraReport:
    """Check the BUS-BRA copy at ``path`` (default ``$BCDET_BUSBRA`` or ``data/BUS-BRA``).

    Raises :class:`BcdetError` only when no copy is found at all; everything else goes into the
    returned :class:`BusbraReport` (print ``report.format()``).
    """
    root = locate_busbra(path)
    report = BusbraReport(root=root)
    table_name, images_name = BUSBRA["table"], BUSBRA["images_folder"]
    try:
        table = read_busbra(root)
    except BcdetError as exc:
        report.problems.append(Problem(table_name, "cannot be used", str(exc), fatal=True))
        return report
    if not (root / images_name).is_dir():
        report.problems.append(Problem(f"{images_name}/", "image folder missing",
                                       f"restore {images_name}/ from the BUS-BRA download", fatal=True))
        return report
    twice = table["id"][table["id"].duplicated()].unique()
    if len(twice):
        report.problems.append(Problem(
            table_name, f"{len(twice)} id(s) on more than one row: {_short_list(list(twice))}",
            "keep one row per image (restore the file from the download)", fatal=True))
    unreadable = _check_images(root, table, report)
    usable = table[table["exists"] & ~table["file"].isin(unreadable)]
    report.images = {cls: int((usable["label"] == cls).sum()) for cls in BUSBRA["classes"]}
    report.patients = int(usable["patient"].nunique())
    report.devices = dict(Counter(usable["device"]))
    _check_sums(root, table, report, unreadable)
    _check_counts(report)
    return report


def _check_images(root: Path, table, report: BusbraReport) -> set[str]:
    """Inspect every listed image that is there (header + chunk check, no decoding); note the missing
    and the unlisted ones. Returns the relative names of the unreadable images."""
    images_name = BUSBRA["images_folder"]
    missing = list(table.loc[~table["exists"], "file"])
    if missing:
        report.problems.append(Problem(
            f"{images_name}/",
            f"{len(missing)} image(s) listed in {BUSBRA['table']} are missing: {_short_list(missing)}",
            "they are left out of every count and score; restore them from the download for the full set"))
    listed = set(table["file"])
    unlisted, junk = [], []
    for entry in sorted((root / images_name).iterdir()):
        rel = f"{images_name}/{entry.name}"
        if is_junk(entry.name):
            junk.append(rel)
        elif rel not in listed:
            unlisted.append(rel)
    if unlisted:
        report.problems.append(Problem(
            f"{images_name}/", f"{len(unlisted)} file(s) with no row in {BUSBRA['table']} (so no label): "
            f"{_short_list(unlisted)}", "they are ignored; move them out of the folder"))
    if junk:
        report.notes.append(f"ignored {len(junk)} system file(s): {_short_list(junk)}")
    unreadable, sizes, off_size = set(), [], []
    declared = {c: table[c.lower()] for c in ("Width", "Height") if c.lower() in table.columns}
    for i, row in table[table["exists"]].iterrows():
        size, _, error = _inspect_png(Path(row["path"]))
        if error is not None:
            report.problems.append(Problem(row["file"], "unreadable image" if size is None else "damaged PNG", error,
                                           fatal=True))
            unreadable.add(row["file"])
            continue
        if min(size) < MIN_SIDE:
            report.problems.append(Problem(
                row["file"], f"image is only {size[0]}x{size[1]} px (need {MIN_SIDE}+ per side)",
                "restore it from the download", fatal=True))
            unreadable.add(row["file"])
            continue
        sizes.append(size)
        if len(declared) == 2 and (declared["Width"][i], declared["Height"][i]) != size:
            off_size.append(f"{row['id']} ({size[0]}x{size[1]}, table {declared['Width'][i]}x{declared['Height'][i]})")
    if sizes:
        widths, heights = zip(*sizes)
        report.width, report.height = (min(widths), max(widths)), (min(heights), max(heights))
    if off_size:  # the authors' own copy has 4 (e.g. bus_0856-l): a fact of the data, not damage
        report.notes.append(f"{len(off_size)} image(s) differ in size from the table's Width/Height (harmless: "
                            f"images are read as they are): {_short_list(off_size)}")
    return unreadable


def _check_sums(root: Path, table, report: BusbraReport, unreadable: set[str]) -> None:
    """Verify the files ``SHA256SUMS`` lists (the unreadable ones are already named)."""
    sums_path = root / BUSBRA["checksums"]
    if not sums_path.is_file():
        report.checksums = f"not verified (no {BUSBRA['checksums']} in this copy)"
        return
    try:
        sums = read_sums(sums_path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        report.checksums = f"not verified ({BUSBRA['checksums']} is damaged)"
        report.problems.append(Problem(BUSBRA["checksums"], "cannot be read", f"{exc}; restore it from the download"))
        return
    result = verify_sums(root, sums, skip=unreadable)
    for name in result.mismatched:
        report.problems.append(Problem(
            name, f"content differs from {BUSBRA['checksums']} (not the file the authors distributed)",
            "restore it from the BUS-BRA download", fatal=True))
    absent = [n for n in result.missing if n not in set(table["file"])]  # missing images are named above
    if absent:
        report.notes.append(f"{len(absent)} file(s) listed in {BUSBRA['checksums']} are absent: {_short_list(absent)}")
    unverified = sorted(set(table.loc[table["exists"], "file"]) - set(sums))
    if unverified:
        report.notes.append(f"{len(unverified)} image(s) not listed in {BUSBRA['checksums']}, so not verified: "
                            f"{_short_list(unverified)}")
    verdict = "all match" if not result.mismatched else f"{len(result.mismatched)} differ"
    report.checksums = f"{result.checked} file(s) verified against {BUSBRA['checksums']}: {verdict}"


def _check_counts(report: BusbraReport) -> None:
    """Published counts: a class with no image is an error, any other difference a warning."""
    for cls, expected in BUSBRA["images"].items():
        n = report.images.get(cls, 0)
        if n == 0:
            report.problems.append(Problem(
                BUSBRA["table"], f"no readable {cls} image", "the lesion question needs both benign and malignant "
                "images: restore the set from the download", fatal=True))
        elif n != expected:
            report.problems.append(Problem(
                BUSBRA["table"], f"{n} {cls} images, the published set has {expected}",
                "fine for a deliberate subset; otherwise restore the set from the download"))
    if report.patients and report.patients != BUSBRA["patients"]:
        report.problems.append(Problem(
            BUSBRA["table"], f"{report.patients} patients, the published set has {BUSBRA['patients']}",
            "fine for a deliberate subset; otherwise restore the set from the download"))
