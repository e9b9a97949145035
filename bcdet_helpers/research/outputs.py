"""Folders that a command writes whole (``bcdet publish``, ``bcdet ladder``), and the rule that keeps them
from destroying anything else (issue #27).

``publish`` replaces its destination folder (and ``<dest>-cv`` beside it) and ``ladder`` overwrites its
files. That is only safe in a folder the command made itself, so each such folder gets a marker file
(:data:`MARKER`, naming the command that wrote it). A folder may be written when it does not exist, is
empty, or carries the marker; anything else is refused, naming the folder and ``--force``. Files that
git tracks are committed records: replacing them needs ``--force`` even in a marked folder, and then
says how many it replaces. ``--force`` is the only way past either refusal.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import BcdetError

__all__ = ["MARKER", "claim", "mark", "tracked_files"]

MARKER = ".bcdet-output"


def tracked_files(folder: Path) -> int:
    """How many files under ``folder`` git tracks: 0 outside a repository, or where git is missing."""
    try:
        out = subprocess.run(["git", "ls-files", "--", "."], cwd=folder, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return 0
    return len(out.stdout.splitlines()) if out.returncode == 0 else 0


def claim(folder: str | Path, *, force: bool = False, records: bool = True, names=None) -> bool:
    """Refuse to write ``folder`` unless it is new, empty or ours (:data:`MARKER`) and -- when ``records``
    -- holds no file committed to git; ``force`` overrides both and prints what it replaces (``names``:
    the files the write replaces, when it keeps the rest). Call it for every folder before writing any,
    so a refusal leaves everything as it was. ``records=False`` is for a snapshot that is replaced by
    design (``bcdet publish --partial``'s). Returns whether the folder is new, empty or ours: a command that
    keeps the rest of a forced folder (``ladder``) must not mark it as its own."""
    folder = Path(folder)
    if not folder.exists():
        return True
    if not folder.is_dir():
        raise BcdetError(f"{folder} is a file, not a folder: choose another destination.")
    if not any(folder.iterdir()):
        return True
    foreign = not (folder / MARKER).is_file()
    tracked = tracked_files(folder) if records else 0
    if not foreign and not tracked:
        return True
    why = "; ".join([*([f"bcdet did not write it (no {MARKER} file)"] if foreign else []),
                     *([f"{tracked} of its files are committed to git (recorded results)"] if tracked else [])])
    if not force:
        raise BcdetError(f"Refusing to replace {folder}: {why}. Choose a new or empty folder, or pass --force "
                         "to replace it.")
    files = [p for p in folder.rglob("*") if not p.is_dir()] if names is None else \
        [folder / n for n in names if (folder / n).exists()]
    # --force must say what it replaces wherever it was called from: the command line or a notebook
    print(f"--force: replacing {len(files)} file(s) in {folder} ({why}).")
    return not foreign


def mark(folder: str | Path, command: str) -> None:
    """Put the marker in ``folder``: ``command`` wrote it and may replace it. No date, so writing the same
    record again changes nothing in git."""
    (Path(folder) / MARKER).write_text(
        f"Written by `{command}`. bcdet writes over a folder only when it is new or empty or holds this file, and "
        "over files committed to git only with --force. Delete this file to keep the folder from bcdet.\n")
