"""What the improvement ladder's choices read (issue #31): the validation score a rung chooses and adopts on
(:func:`validation_score`) and the verdict's arm the ladder starts from (:func:`verdict_arm`) -- validation images
only, never a test fold or BUS-BRA. Split from :mod:`~bcdet_helpers.research.study.improve`, which decides with
them, by job (issue #32)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...paths import runs_dir
from ...profiles import TUNED_ARMS, Profile
from .design import study_design
from .ladder import LADDER_ARM, _shown

__all__ = ["CHOICE_METRIC", "FALLBACK_ARM", "verdict_folders", "verdict_arm", "validation_score"]

# what a rung's choice among its candidates -- and whether the next rung builds on it -- is read from: the
# mean recall of the three classes on the runs' validation images. Accuracy alone rewards leaning to the 56 %
# majority class, the very thing rung 2 undoes; the goals name balanced accuracy and the malignant operating point.
CHOICE_METRIC = "balanced_accuracy"
FALLBACK_ARM = LADDER_ARM  # the paper's method, when no recorded study names a best arm


def verdict_folders(prof: Profile) -> list[Path]:
    """Where the verdict of ``prof`` may be recorded: the committed ``results/<profile>-cv``, then
    ``runs/<profile>/cv``."""
    from ... import paths

    return [paths.project_root() / "results" / f"{prof.name}-cv", runs_dir(prof.name) / "cv"]


def verdict_arm(prof: Profile, folders=None) -> tuple[str, str]:
    """``(arm, how it was chosen)``: the tuned arm of the verdict whose grouped runs score the best pooled
    validation :data:`CHOICE_METRIC` (final weights, label conflicts left out) in the first study folder of
    ``folders`` (default :func:`verdict_folders`) with a ``study.json`` and validation predictions -- chosen,
    like every choice of the ladder, on validation images, never on the out-of-fold numbers the verdict
    reports. Without such a folder: :data:`FALLBACK_ARM`, said so."""
    for folder in (verdict_folders(prof) if folders is None else [Path(f) for f in folders]):
        if not (folder / "study.json").exists() or not (folder / "val").is_dir():
            continue
        scores = {}
        for arm in [a for a in TUNED_ARMS if a in prof.study_arms]:
            keys = study_design(prof, arms=[arm], kinds=["grouped"], ladder=False).runs()
            score = validation_score(folder, keys, partial=True)  # the partitions the record holds
            if score is not None:
                scores[arm] = score
        if scores:
            best = max(scores, key=scores.get)
            listed = ", ".join(f"{a} {v:.3f}" for a, v in sorted(scores.items(), key=lambda t: -t[1]))
            return best, (f"the best pooled validation {CHOICE_METRIC.replace('_', ' ')} of the verdict's tuned arms "
                          f"in {_shown(folder)} ({listed})")
    return FALLBACK_ARM, (f"{FALLBACK_ARM}, the paper's method: no recorded study of {prof.name!r} with validation "
                          f"predictions ({', '.join(_shown(f) for f in verdict_folders(prof))}) to choose from")


def validation_score(folder: str | Path, keys, *, partial: bool = False) -> float | None:
    """The pooled validation :data:`CHOICE_METRIC` of the runs ``keys`` in a study folder: every run's
    validation images (``val/<run>.csv``, final weights), label conflicts left out (``folds.csv``), pooled.
    ``None`` when a run's file is missing (``partial``: score the ones there, ``None`` only when none is)."""
    from ...busi import CLASSES
    from ...metrics import confusion, scores_from_confusion
    from .files import read_folds
    from .result import WEIGHTS_RULE

    folder = Path(folder)
    frames = []
    for key in keys:
        path = folder / "val" / f"{key.name}.csv"
        if not path.exists():
            if partial:
                continue
            return None
        frames.append(pd.read_csv(path))
    if not frames:
        return None
    val = pd.concat(frames, ignore_index=True)
    val = val[val["weights"] == WEIGHTS_RULE]
    folds = read_folds(folder)
    val = val[~val["file"].isin(set(folds.loc[folds["conflict"].astype(bool), "file"]))]
    proba = val[[f"p_{c}" for c in CLASSES]].to_numpy(float)
    scores = scores_from_confusion(confusion(val["y"].to_numpy(int), proba.argmax(1), len(CLASSES)))
    return float(np.asarray(scores[CHOICE_METRIC]).ravel()[0])
