"""Find the BUSI folder: ``$BCDET_DATA`` wins, else ``<project>/data``.

Both the ``Dataset_BUSI_with_GT`` folder itself and any folder that contains it are accepted, so
``BCDET_DATA=~/Downloads`` works as well as ``BCDET_DATA=~/Downloads/Dataset_BUSI_with_GT``.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..busi import BUSI, BUSI_FOLDER, CLASSES
from ..errors import BcdetError
from ..paths import default_data_dir, project_root

BY_HAND = (
    f"Download {BUSI_FOLDER}.zip by "
    f"hand from the authors' page ({BUSI['homepage']}) or the Kaggle "
    f"mirror ({BUSI['mirror']}), unzip it "
    f"into data/ (giving data/{BUSI_FOLDER}/benign, .../malignant, .../normal) or point "
    "BCDET_DATA at the unzipped folder."
)
HOW_TO_GET = "Get BUSI with `make data` (or `bcdet data download`). Or: " + BY_HAND


def _looks_like_busi(folder: Path) -> bool:
    return folder.is_dir() and any((folder / c).is_dir() for c in CLASSES)


def find_busi(path: str | Path | None = None) -> Path | None:
    """The BUSI folder at or under ``path`` (default: ``$BCDET_DATA`` or ``data/``), or ``None``."""
    base = Path(path).expanduser() if path is not None else default_data_dir()
    for candidate in (base, base / BUSI_FOLDER):
        if _looks_like_busi(candidate):
            return candidate.resolve()
    # a parent holding exactly one extracted copy under another name (e.g. Kaggle's layout)
    if base.is_dir():
        nested = [d for d in base.iterdir() if _looks_like_busi(d)]
        if len(nested) == 1:
            return nested[0].resolve()
        nested = [d for d in base.glob(f"*/{BUSI_FOLDER}") if _looks_like_busi(d)]
        if len(nested) == 1:
            return nested[0].resolve()
    return None


def locate_busi(path: str | Path | None = None) -> Path:
    """Like :func:`find_busi` but raises :class:`BcdetError` with what to do when nothing is found --
    for a file (often the downloaded zip itself), what to do with it."""
    found = find_busi(path)
    if found is None:
        where = Path(path).expanduser() if path is not None else default_data_dir()
        if where.is_file():
            from_env = path is None and os.environ.get("BCDET_DATA")
            raise BcdetError(_not_a_folder(where, " (BCDET_DATA)" if from_env else ""))
        raise BcdetError(
            f"No BUSI dataset found at {where} (looked for benign/, malignant/, normal/ folders "
            f"there and in {where / BUSI_FOLDER}). {HOW_TO_GET}"
        )
    return found


def _not_a_folder(where: Path, source: str) -> str:
    """The message for a dataset path that is a file: for a zip, how to unpack and check it."""
    import zipfile

    if zipfile.is_zipfile(where):
        data = project_root() / "data"  # where bcdet looks when BCDET_DATA is not set
        return (f"{where}{source} is a zip file, not a folder. Unpack and check it in one step with "
                f"`bcdet data download --url {where.resolve().as_uri()} --dest {data}`: it puts BUSI in "
                f"{data / BUSI_FOLDER}, where bcdet finds it (with BCDET_DATA unset or pointing there).")
    return (f"{where}{source} is a file, not a folder: give the BUSI folder, the one holding benign/, "
            "malignant/ and normal/. " + HOW_TO_GET)
