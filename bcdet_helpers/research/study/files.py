"""The files of a study folder: the columns of its prediction CSVs (``oof/``, ``val/``) and of
``runs.csv``, where a run's BUS-BRA predictions live, the readers of ``folds.csv`` and the predictions (with the
label conflicts of its near-duplicate groups), and a copier of runs' records from one study folder to another. See
:mod:`bcdet_helpers.research.study`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import BcdetError
from ...paths import CLASSES

PROBA_DECIMALS = 5  # probabilities in the prediction CSVs (keeps results/<profile>-cv/ small)
PREDICTION_COLUMNS = (
    ["file", "label", "y", "group", "kind", "fold", "seed", "arm", "weights", "epoch", "part"]
    + [f"p_{c}" for c in CLASSES] + [f"p_{c}_hflip" for c in CLASSES] + ["pred", "partition"]
)
RUN_COLUMNS = ["arm", "kind", "fold", "seed", "n_train", "n_val", "n_test", "epochs", "best_epoch",
               "max_phase_ratio", "wall_time_s", "seconds_per_epoch", "run", "partition"]
EXTERNAL = "external"  # the study folder's part with each run's BUS-BRA predictions (issue #30)


def external_csv(out: Path, key) -> Path:
    """Where a study folder keeps one run's BUS-BRA predictions (gzip: 1,875 rows, about 40 kB)."""
    return Path(out) / EXTERNAL / f"{key.name}.csv.gz"


KEY_COLUMNS = ("arm", "kind", "fold", "seed", "partition")  # a run's identity in runs.csv and the predictions


def key_columns(key) -> dict:
    """A run's identity as the columns of ``runs.csv`` (``partition`` 0: the profile's own folds)."""
    return {c: getattr(key, c) for c in KEY_COLUMNS}


def key_rows(table: pd.DataFrame, key) -> np.ndarray:
    """Which rows of ``table`` (``runs.csv``, with a ``partition`` column) are the run ``key``'s."""
    return np.logical_and.reduce([table[c] == v for c, v in key_columns(key).items()])


def with_partition(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (``runs.csv``, predictions) with a ``partition`` column: 0 where a record predates partitions."""
    return df if "partition" in df else df.assign(partition=0)


def label_conflicts(index: pd.DataFrame) -> pd.DataFrame:
    """Images whose near-duplicate group (``group``) holds another label: ``file``, ``label``,
    ``group``, ``other_labels`` (a list). Every member of such a group is listed."""
    labels = index.groupby("group")["label"].agg(lambda s: sorted(set(s)))
    mixed = labels[labels.map(len) > 1]
    rows = index[index["group"].isin(mixed.index)]
    return pd.DataFrame({
        "file": rows["file"].to_numpy(),
        "label": rows["label"].to_numpy(),
        "group": rows["group"].astype(int).to_numpy(),
        "other_labels": [[x for x in mixed[g] if x != lab] for g, lab in zip(rows["group"], rows["label"])],
    }, columns=["file", "label", "group", "other_labels"])


def read_folds(folder: str | Path) -> pd.DataFrame:
    path = Path(folder) / "folds.csv"
    if not path.exists():
        raise BcdetError(f"{path} is missing: run write_folds / run_study for this study first.")
    return with_partition(pd.read_csv(path))  # one partition before #28


def load_predictions(folder: str | Path, part: str = "test") -> pd.DataFrame:
    """All prediction CSVs of a study folder: ``part="test"`` the out-of-fold ones (``oof/``),
    ``"val"`` the validation ones (``val/``)."""
    sub = {"test": "oof", "val": "val"}[part]
    files = sorted((Path(folder) / sub).glob("*.csv"))
    if not files:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return with_partition(pd.concat([pd.read_csv(f) for f in files], ignore_index=True))  # before partitions (#28)


def copy_run_records(src: str | Path, dst: str | Path, keys) -> int:
    """Copy study folder ``src``'s records of the runs ``keys`` -- their ``oof/``, ``val/`` and ``external/`` files
    and ``runs.csv`` rows -- into study folder ``dst`` where it has none; returns how many runs.

    What for: the improvement ladder's baseline *is* the verdict's runs, in a study folder of its own, and a verdict
    run without weights (restored from a committed snapshot, or trained on a lent GPU whose checkpoints stayed
    there) can only be taken from a record: :func:`~bcdet_helpers.research.study.run_study` refuses it otherwise.
    Copying changes no number: the files are the same runs' own predictions, with their times (newer than the run)."""
    import shutil

    src, dst = Path(src), Path(dst)
    if not (src / "runs.csv").exists():
        return 0
    recorded = with_partition(pd.read_csv(src / "runs.csv"))
    dst.mkdir(parents=True, exist_ok=True)
    have = pd.read_csv(dst / "runs.csv") if (dst / "runs.csv").exists() else recorded.iloc[:0]
    rows = []
    for key in keys:
        row = recorded[key_rows(recorded, key)]
        made = [src / part / f"{key.name}.csv" for part in ("oof", "val")]
        if row.empty or not all(f.exists() for f in made) or (dst / "oof" / f"{key.name}.csv").exists():
            continue
        for f in [*made, external_csv(src, key)]:  # external/: only when BUS-BRA was there
            if f.exists():
                (dst / f.parent.name).mkdir(exist_ok=True)
                shutil.copy2(f, dst / f.parent.name / f.name)
        rows.append(row)
    if rows:
        pd.concat([have, *rows], ignore_index=True).to_csv(dst / "runs.csv", index=False)
    return len(rows)
