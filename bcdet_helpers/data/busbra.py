"""BUS-BRA on disk: find the folder, and read its table -- one row per image, with the patient.

BUS-BRA's labels are not folder names (as BUSI's are) but a CSV, ``bus_data.csv``: the image id,
``Case`` (the patient), ``Pathology`` (benign / malignant) and ``Device`` (the scanner). The
patient matters as much as the label: 1,064 patients hold 1,875 images, and an interval that
treats a patient's two views as independent cases comes out too narrow
(:mod:`bcdet_helpers.research.external` resamples patients). So :func:`read_busbra` returns them side by
side, and refuses a table whose label or patient it cannot read rather than guessing.

Where: ``$BCDET_BUSBRA``, else ``<project>/data/BUS-BRA``; the ``BUS-BRA`` folder itself or a
folder that contains it, as for BUSI (:func:`find_busbra`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..busbra import BUSBRA, BUSBRA_FOLDER, device_name
from ..busi import CLASSES
from ..errors import BcdetError
from ..paths import default_busbra_dir

__all__ = ["find_busbra", "locate_busbra", "read_busbra", "HOW_TO_GET_BUSBRA"]

COLUMNS = BUSBRA["columns"]

HOW_TO_GET_BUSBRA = (
    f"Download BUS-BRA from {BUSBRA['source']}, unzip it into data/ (giving "
    f"data/{BUSBRA_FOLDER}/{BUSBRA['images_folder']}/ and data/{BUSBRA_FOLDER}/{BUSBRA['table']}) or point "
    f"BCDET_BUSBRA at the unzipped folder. Cite: {BUSBRA['citation']}."
)


def _looks_like_busbra(folder: Path) -> bool:
    return folder.is_dir() and (folder / BUSBRA["table"]).is_file()


def find_busbra(path: str | Path | None = None) -> Path | None:
    """The BUS-BRA folder at or under ``path`` (default: ``$BCDET_BUSBRA`` or ``data/BUS-BRA``),
    recognised by its ``bus_data.csv``; ``None`` when there is none."""
    base = Path(path).expanduser() if path is not None else default_busbra_dir()
    for candidate in (base, base / BUSBRA_FOLDER):
        if _looks_like_busbra(candidate):
            return candidate.resolve()
    if base.is_dir():  # a parent holding exactly one copy under another name
        nested = [d for d in base.iterdir() if _looks_like_busbra(d)]
        if len(nested) == 1:
            return nested[0].resolve()
    return None


def locate_busbra(path: str | Path | None = None) -> Path:
    """Like :func:`find_busbra`, but a :class:`BcdetError` saying what to do when nothing is found."""
    found = find_busbra(path)
    if found is None:
        where = Path(path).expanduser() if path is not None else default_busbra_dir()
        raise BcdetError(f"No BUS-BRA dataset found at {where} (looked for {BUSBRA['table']} there and in "
                         f"{where / BUSBRA_FOLDER}). {HOW_TO_GET_BUSBRA}")
    return found


def read_busbra(path: str | Path | None = None):
    """BUS-BRA's table as a DataFrame, one row per image of the CSV, in the CSV's order:

    ``id`` (``bus_0001-l``), ``file`` (relative: ``Images/bus_0001-l.png``), ``path`` (absolute),
    ``label`` (benign / malignant), ``y`` (the label's index in BUSI's classes: a BUSI model's
    column), ``patient`` (the CSV's ``Case``, as text), ``device`` (:func:`busbra.device_name`) and
    ``exists`` (whether the image file is there). Every other CSV column is kept as it is.

    Raises :class:`BcdetError` naming the CSV when a column we need is missing, or naming the rows
    whose label is not benign/malignant or whose patient is empty.
    """
    import pandas as pd

    root = locate_busbra(path)
    csv = root / BUSBRA["table"]
    try:
        table = pd.read_csv(csv, dtype={COLUMNS["id"]: str, COLUMNS["patient"]: str})
    except Exception as exc:  # noqa: BLE001 -- pandas raises several types for a broken CSV
        raise BcdetError(f"{csv}: cannot be read as a CSV ({exc}). Restore it from the BUS-BRA download.") from None
    missing = [c for c in COLUMNS.values() if c not in table.columns]
    if missing:
        raise BcdetError(f"{csv}: no column(s) {', '.join(missing)} (found {', '.join(map(str, table.columns))}). "
                         "Restore the file from the BUS-BRA download.")
    out = pd.DataFrame({
        "id": table[COLUMNS["id"]].astype(str).str.strip(),
        "label": table[COLUMNS["label"]].astype(str).str.strip().str.lower(),
        "patient": table[COLUMNS["patient"]].fillna("").astype(str).str.strip(),
        "device": table[COLUMNS["device"]].fillna("unknown").map(device_name),
    })
    bad = out.index[~out["label"].isin(BUSBRA["classes"])]
    if len(bad):
        rows = ", ".join(f"{out.at[i, 'id']} ({table.at[i, COLUMNS['label']]!r})" for i in bad[:5])
        raise BcdetError(f"{csv}: {len(bad)} row(s) with a {COLUMNS['label']} other than "
                         f"{' / '.join(BUSBRA['classes'])}: {rows}. Fix or remove those rows.")
    bad = out.index[out["patient"].isin(["", "nan"])]
    if len(bad):
        raise BcdetError(f"{csv}: {len(bad)} row(s) without a {COLUMNS['patient']} (patient): "
                         f"{', '.join(out.loc[bad[:5], 'id'])}. Intervals resample patients, so every image needs one.")
    out["file"] = BUSBRA["images_folder"] + "/" + out["id"] + ".png"
    out["path"] = [str(root / f) for f in out["file"]]
    out["y"] = np.array([CLASSES.index(label) for label in out["label"]], dtype=int)
    out["exists"] = [Path(p).is_file() for p in out["path"]]
    extra = table.drop(columns=list(COLUMNS.values()))
    out = pd.concat([out, extra.rename(columns=str.lower)], axis=1)
    out.attrs["root"] = str(root)
    return out
