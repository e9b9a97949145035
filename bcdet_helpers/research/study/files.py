"""The files of a study folder: the columns of its prediction CSVs (``oof/``, ``val/``) and of
``runs.csv``, the readers of ``folds.csv`` and the predictions (with the label conflicts of its
near-duplicate groups), and a copier of runs' records from one study folder to another. See
:mod:`bcdet_helpers.research.study`."""
from __future__ import annotations

from pathlib import Path

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
    table = pd.read_csv(path)
    return table if "partition" in table else table.assign(partition=0)  # one partition before #28


def load_predictions(folder: str | Path, part: str = "test") -> pd.DataFrame:
    """All prediction CSVs of a study folder: ``part="test"`` the out-of-fold ones (``oof/``),
    ``"val"`` the validation ones (``val/``)."""
    sub = {"test": "oof", "val": "val"}[part]
    files = sorted((Path(folder) / sub).glob("*.csv"))
    if not files:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return df if "partition" in df else df.assign(partition=0)  # recorded before fold partitions (#28)


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
    recorded = pd.read_csv(src / "runs.csv")
    if "partition" not in recorded:
        recorded = recorded.assign(partition=0)
    dst.mkdir(parents=True, exist_ok=True)
    have = pd.read_csv(dst / "runs.csv") if (dst / "runs.csv").exists() else recorded.iloc[:0]
    rows = []
    for key in keys:
        row = recorded[(recorded["arm"] == key.arm) & (recorded["kind"] == key.kind) & (recorded["fold"] == key.fold)
                       & (recorded["seed"] == key.seed) & (recorded["partition"] == key.partition)]
        made = [src / part / f"{key.name}.csv" for part in ("oof", "val")]
        if row.empty or not all(f.exists() for f in made) or (dst / "oof" / f"{key.name}.csv").exists():
            continue
        for f in [*made, *(src / "external").glob(f"{key.name}.csv*")]:  # external/: gzipped, when BUS-BRA was here
            (dst / f.parent.name).mkdir(exist_ok=True)
            shutil.copy2(f, dst / f.parent.name / f.name)
        rows.append(row)
    if rows:
        pd.concat([have, *rows], ignore_index=True).to_csv(dst / "runs.csv", index=False)
    return len(rows)
