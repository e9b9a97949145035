"""The study's folds and label conflicts: the images a study covers (:func:`study_index`), their folds
in ``folds.csv`` (:func:`write_folds`) and the folder a study keeps its files in (:func:`study_dir`). Split
from :mod:`~bcdet_helpers.research.study.cv`, which runs the study on them, by job (issue #32). See
:mod:`bcdet_helpers.research.study`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...errors import BcdetError
from ...paths import runs_dir
from ...profiles import KINDS, Profile, get_profile
from .files import label_conflicts, read_folds


# ------------------------------------------------------------------------------ folds + conflicts
def study_dir(profile: str | Profile) -> Path:
    """``runs/<profile>/cv``: where :func:`~bcdet_helpers.research.study.cv.run_study` keeps its files by default."""
    return runs_dir(get_profile(profile).name) / "cv"


def study_index(profile: str | Profile, root=None) -> pd.DataFrame:
    """The images of the study (the profile's subset of the index) with ``file``, ``label``,
    ``y``, ``group`` and ``conflict``, in index order -- the rows :func:`data.split.make_split`
    assigns folds to."""
    from ...data.dataset import select_subset
    from ...data.index import load_index

    prof = get_profile(profile)
    index = load_index(root, threshold=prof.duplicate_threshold)  # groups at the profile's threshold
    index = select_subset(index, prof.max_per_class).reset_index(drop=True)
    out = index[["file", "label", "y", "group"]].copy()
    conflicts = label_conflicts(out)
    out["conflict"] = out["file"].isin(conflicts["file"])
    return out


def write_folds(profile: str | Profile, kinds=None, out: str | Path | None = None, root=None,
                partitions=(0,)) -> Path:
    """``folds.csv`` in ``out`` (default :func:`study_dir`): one row per (partition, kind, image) with
    ``partition, kind, fold, file, label, y, group, conflict``. The folds are
    :func:`data.split.assign_folds` with the profile's ``folds`` and ``fold_seed`` (+ the partition; a
    partition past the first has the grouped split only) -- the very assignment every run's test part
    comes from (checked when its predictions are written)."""
    from ...data.split import assign_folds
    from ...runinfo import write_atomic

    prof = get_profile(profile)
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or prof.kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise BcdetError(f"Unknown kind(s) {bad}. Choose from {', '.join(KINDS)}.")
    index = study_index(prof, root)
    frames = []
    for p in partitions:
        for kind in (kinds if p == 0 else [k for k in kinds if k == "grouped"]):
            f = index.copy()
            f.insert(0, "fold", assign_folds(index, kind, prof.folds, prof.fold_seed + p))
            f.insert(0, "kind", kind)
            f.insert(0, "partition", p)
            frames.append(f)
    out = Path(out) if out is not None else study_dir(prof)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "folds.csv"
    table = pd.concat(frames, ignore_index=True)
    if path.exists():  # keep the folds of kinds and partitions not asked for this time
        old = read_folds(out)
        asked = set(zip(table["partition"], table["kind"]))
        old = old[[pk not in asked for pk in zip(old["partition"], old["kind"])]]
        table = pd.concat([old, table], ignore_index=True)
    # atomic: the processes of a job array (`bcdet study --run K`) may all write it at once, the same table each,
    # and each reads it straight after -- never half a file
    write_atomic(path, lambda tmp: table.to_csv(tmp, index=False))
    return path
