"""Each arm of the study on BUS-BRA: the external result with the study's fold x seed spread, paired across
arms (issue #30), beside the BUSI out-of-fold numbers of the same runs.

Every study run leaves its final weights' BUS-BRA predictions in ``external/<run>.csv.gz``
(:mod:`bcdet_helpers.research.study.external`); :func:`evaluate_external` reads only the study folder's files and
BUS-BRA's table (patient and scanner of each image, by ``file``) and returns an
:class:`~bcdet_helpers.research.study.external_result.ExternalStudy`:

* **per arm, pooled over its runs** (every run predicts every BUS-BRA image, so an arm of 30 runs has 30
  predictions of each image): the AUC of p(malignant) among benign and malignant images; malignant
  sensitivity and specificity with **each run at its own threshold**, chosen on that run's BUSI
  *validation* images (``val/<run>.csv``, final weights, :data:`~bcdet_helpers.research.study.OPERATING_SENSITIVITY`,
  :func:`~bcdet_helpers.metrics.choose_threshold`) and carried over -- BUS-BRA's labels choose nothing; the
  ECE and reliability of the malignant-or-not question; the share of lesions the model calls normal.
  Then the same on every scanner with at least :data:`~bcdet_helpers.research.external.MIN_DEVICE_IMAGES` images.
* **the ensemble with flip TTA**: one prediction per image, the mean over *all* the arm's runs (its
  partitions, folds and seeds -- each is a model that never saw BUS-BRA) of the mean of the plain and
  the left-right flipped probabilities. Its threshold is the mean of its members' thresholds, each
  chosen on the member's own validation images with the same flip TTA. Not a threshold chosen on
  averaged validation predictions: each seed and fold carves its own validation images out of its own
  training folds, so an image that validates one member trained another, and no image has the
  ensemble's prediction without a member that trained on it.
* **BUSI out-of-fold, the same runs**: AUC of p(malignant) for malignant vs the rest (benign and normal),
  and sensitivity/specificity at the same thresholds, pooled over the runs' test folds (label conflicts
  left out, as in :func:`~bcdet_helpers.research.study.evaluate_study`) -- how much of the internal score transfers.
* **paired differences** ``a - b`` of :data:`~bcdet_helpers.research.study.COMPARISONS` (AUC, sensitivity,
  specificity on the whole set): the runs both arms have, and in each resample the same training
  replicates and the same patients for both, so what the arms share cancels.

Every interval is a crossed two-way bootstrap (:func:`~bcdet_helpers.research.stats.two_way_counts`, the draws
of :func:`~bcdet_helpers.research.stats.hierarchical_bootstrap`): each resample draws the training replicates
(fold partition x seed: the runs that together are one "training of the arm") and the **patients**
(BUS-BRA's ``Case``; BUSI's near-duplicate groups for the BUSI numbers) independently with replacement,
and a row counts ``w[replicate] * c[patient]`` times -- a patient's images always move together. The
ensemble's resample is the ensemble of the drawn replicates, at the mean of their thresholds.

:func:`~bcdet_helpers.research.study.external_report.write_external` writes the record (``bcdet external``):
``external.json`` (strict JSON of :class:`~bcdet_helpers.research.study.external_result.ExternalStudy`), ``table.csv``
(:meth:`~bcdet_helpers.research.study.external_result.ExternalStudy.table`), ``reliability.png``, ``devices.png`` and a
``README.md`` with the command and commit. The bootstrap itself is :mod:`bcdet_helpers.research.study.external_bootstrap`.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ...busi import CLASSES
from ...errors import BcdetError
from ..external import MIN_DEVICE_IMAGES
from ...metrics import choose_threshold
from ...runkey import RunKey
from ...uncertainty import reliability
from .evaluation import _units  # each row's training replicate, "<partition>/<seed>"
from .external import WEIGHTS_EXTERNAL
from .external_bootstrap import MALIGNANT, N_BINS, NORMAL, _codes_in, _ensemble_reps, _intervals, _pooled_reps
from .external_result import (DIFFERENCE_METRICS, SCHEMA, SCHEMA_VERSION, BusiScore, ExternalDifference, ExternalScore,
                              ExternalStudy, RunThreshold)
from .files import EXTERNAL, label_conflicts, load_predictions
from .result import COMPARISONS, OPERATING_SENSITIVITY

__all__ = ["evaluate_external", "load_external"]

P_COLS = [f"p_{c}" for c in CLASSES]
H_COLS = [f"p_{c}_hflip" for c in CLASSES]

THRESHOLD_RULE = ("each run's own threshold: the highest p(malignant) that still finds {target:.0%} of the malignant "
                  "images of its BUSI validation part (final weights), carried over unchanged; never chosen on BUS-BRA")
ENSEMBLE_RULE = ("mean over all the arm's runs (partitions x folds x seeds) of the mean of plain and left-right "
                 "flipped probabilities; threshold: the mean of the members' thresholds, each chosen on its own "
                 "validation images with the same flip TTA (the members' validation images differ, so no "
                 "ensemble prediction of a validation image exists)")
RESAMPLED = ("two-way bootstrap: training replicates (fold partition x seed) and patients (BUS-BRA's Case; BUSI: "
             "near-duplicate groups) drawn independently with replacement; a patient's images move together")


# ------------------------------------------------------------------------------ reading the folder
def load_external(folder: str | Path) -> pd.DataFrame:
    """Every ``external/<run>.csv.gz`` of a study folder, one frame with the run's ``partition`` (from its
    name) added. Raises :class:`BcdetError`, saying how to get them, when there are none."""
    from .ladder import study_profile

    folder = Path(folder)
    files = sorted((folder / EXTERNAL).glob("*.csv.gz"))
    if not files:
        raise BcdetError(f"{folder / EXTERNAL} holds no BUS-BRA predictions (external/<run>.csv.gz): the study ran "
                         f"without BUS-BRA. Set BCDET_BUSBRA to a BUS-BRA copy and run `bcdet study --profile "
                         f"{study_profile(folder) or 'P'}` again: finished runs are loaded and predict BUS-BRA from "
                         "their weights.")
    frames = []
    for f in files:
        key = RunKey.parse(f.name[: -len(".csv.gz")])
        frames.append(pd.read_csv(f).assign(partition=key.partition, kind=key.kind, arm=key.arm, fold=key.fold,
                                            seed=key.seed))
    return pd.concat(frames, ignore_index=True)


def _busbra_table(busbra) -> pd.DataFrame:
    """BUS-BRA's table (:func:`~bcdet_helpers.data.busbra.read_busbra`): ``busbra`` a folder, ``None``
    (``$BCDET_BUSBRA`` or ``data/BUS-BRA``), or the table itself."""
    if isinstance(busbra, pd.DataFrame):
        return busbra
    from ...data.busbra import read_busbra

    return read_busbra(busbra)


RUN = ["arm", "kind", "partition", "fold", "seed"]


def _thresholds(val: pd.DataFrame, runs: pd.DataFrame, target: float, folder: Path) -> pd.DataFrame:
    """:class:`RunThreshold` fields per run of ``runs``, from the run's validation rows (final weights)."""
    val = val[val["weights"] == WEIGHTS_EXTERNAL]
    by_run = dict(iter(val.groupby(RUN, sort=False)))
    rows, missing = [], []
    for r in runs[RUN].drop_duplicates().itertuples(index=False):
        v = by_run.get(tuple(r))
        if v is None:
            missing.append(RunKey(r.arm, r.kind, int(r.fold), int(r.seed), int(r.partition)).name)
            continue
        is_mal = v["y"].to_numpy(int) == MALIGNANT
        p_plain = v[P_COLS[MALIGNANT]].to_numpy(float)
        p_tta = (p_plain + v[H_COLS[MALIGNANT]].to_numpy(float)) / 2
        try:
            t, t_tta = (choose_threshold(is_mal, p, target) for p in (p_plain, p_tta))
        except ValueError:  # no malignant validation image (tiny subsets): no operating point
            t = t_tta = math.nan
        rows.append({**r._asdict(), "threshold": t, "threshold_tta": t_tta, "n_val": len(v),
                     "n_val_malignant": int(is_mal.sum())})
    if missing:
        raise BcdetError(f"{folder / 'val'} lacks the validation predictions of {len(missing)} run(s) with BUS-BRA "
                         f"predictions ({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}): their "
                         "thresholds are chosen there. Run `bcdet study` again to write them.")
    out = pd.DataFrame(rows, columns=[*RUN, "threshold", "threshold_tta", "n_val", "n_val_malignant"])
    return out.astype({"partition": int, "fold": int, "seed": int})


# ------------------------------------------------------------------------------------ evaluation
def evaluate_external(study_folder: str | Path, busbra=None, *, n_boot: int | None = None, seed: int = 0,
                      alpha: float = 0.05, min_device_images: int = MIN_DEVICE_IMAGES, comparisons=COMPARISONS,
                      target_sensitivity: float = OPERATING_SENSITIVITY) -> ExternalStudy:
    """The :class:`ExternalStudy` of a study folder from its files alone (``external/``, ``val/``, ``oof/``,
    ``design.json``) and BUS-BRA's table (``busbra``: a folder, the table of
    :func:`~bcdet_helpers.data.busbra.read_busbra`, or ``None`` for ``$BCDET_BUSBRA`` / ``data/BUS-BRA``).
    No model is loaded and no image read. ``n_boot`` defaults to the study profile's ``bootstrap``."""
    from ...busbra import BUSBRA
    from ...profiles import DEFAULTS, get_profile
    from ...runinfo import git_commit
    from .ladder import _shown, study_profile

    folder = Path(study_folder)
    ext = load_external(folder)
    profile = study_profile(folder)
    if n_boot is None:
        try:
            n_boot = get_profile(profile).bootstrap if profile else DEFAULTS.bootstrap
        except ValueError:  # a profile this version does not know
            n_boot = DEFAULTS.bootstrap
    n_boot = int(n_boot)
    table = _busbra_table(busbra)
    info = table.drop_duplicates("file").set_index("file")[["patient", "device"]]
    unknown = sorted(set(ext["file"]) - set(info.index))
    if unknown:
        raise BcdetError(f"{folder / EXTERNAL}: {len(unknown)} image(s) not in BUS-BRA's table "
                         f"{table.attrs.get('root', '')} (e.g. {unknown[:3]}): point BCDET_BUSBRA at the copy the "
                         "study predicted.")
    ext["patient"] = ext["file"].map(info["patient"]).astype(str)
    ext["device"] = ext["file"].map(info["device"]).astype(str)
    lesion = ext["y"].isin([CLASSES.index("benign"), MALIGNANT])
    n_other = int(ext.loc[~lesion, "file"].nunique())
    ext = ext[lesion].reset_index(drop=True)
    ext["is_mal"] = ext["y"].to_numpy(int) == MALIGNANT

    val, oof = load_predictions(folder, "val"), load_predictions(folder, "test")
    conflicts = set(label_conflicts(oof.drop_duplicates("file"))["file"]) if len(oof) else set()
    val = val[~val["file"].isin(conflicts)]
    oof = oof[(oof["weights"] == WEIGHTS_EXTERNAL) & ~oof["file"].isin(conflicts)]
    runs = ext[RUN].drop_duplicates().reset_index(drop=True)
    thresholds = _thresholds(val, runs, target_sensitivity, folder)
    ext = ext.merge(thresholds[[*RUN, "threshold", "threshold_tta"]], on=RUN, how="left", validate="many_to_one")

    design = json.loads((folder / "design.json").read_text()) if (folder / "design.json").exists() else {}
    present = list(dict.fromkeys(ext["arm"]))
    arms = [a for a in dict.fromkeys(design.get("arms") or []) if a in present]
    arms += sorted(set(present) - set(arms))
    kinds = [k for k in ("grouped", "random") if k in set(ext["kind"])]
    kinds += sorted(set(ext["kind"]) - set(kinds))

    images = ext.drop_duplicates("file")
    device_sizes = images["device"].value_counts()
    devices = {str(d): int(n) for d, n in sorted(device_sizes.items(), key=lambda t: (-t[1], str(t[0])))}
    big = [d for d, n in devices.items() if n >= min_device_images]
    too_small = {d: n for d, n in devices.items() if n < min_device_images}
    patients_all = np.unique(images["patient"].to_numpy())
    patients_of = {d: np.unique(images.loc[images["device"] == d, "patient"].to_numpy()) for d in big}

    scores, busi_scores, whole = [], [], {}  # whole: (arm, kind, runs) -> the pooled replicates, for the differences
    for kind in kinds:
        for arm in arms:
            rows = ext[(ext["arm"] == arm) & (ext["kind"] == kind)]
            if not len(rows):
                continue
            scores += _arm_scores(rows, arm, kind, patients_all, patients_of, n_boot, seed, alpha, whole)
            busi = _busi_score(oof, rows, thresholds, arm, kind, n_boot, seed, alpha)
            if busi is not None:
                busi_scores.append(busi)

    differences = []
    for kind in kinds:
        for a, b, question in comparisons:
            if a not in arms or b not in arms:
                continue
            differences += _differences(ext, a, b, question, kind, patients_all, n_boot, seed, alpha, whole)

    return ExternalStudy(
        schema=SCHEMA, version=SCHEMA_VERSION, profile=profile, study=_shown(folder), weights=WEIGHTS_EXTERNAL,
        target_sensitivity=float(target_sensitivity), threshold_rule=THRESHOLD_RULE.format(target=target_sensitivity),
        ensemble_rule=ENSEMBLE_RULE, resampled=RESAMPLED, n_boot=n_boot, seed=int(seed), alpha=float(alpha),
        min_device_images=int(min_device_images), arms=arms, kinds=kinds, n_images=len(images),
        n_patients=len(patients_all), n_other=n_other, devices=devices, devices_too_small=too_small,
        thresholds=[RunThreshold(**r) for r in thresholds.to_dict("records")], scores=scores, busi=busi_scores,
        differences=differences, citation=BUSBRA["citation"], commit=git_commit(),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def _counts(rows: pd.DataFrame) -> dict:
    img = rows.drop_duplicates("file")
    return {"n_images": len(img), "n_patients": int(img["patient"].nunique()),
            "n_benign": int((~img["is_mal"]).sum()), "n_malignant": int(img["is_mal"].sum())}


def _run_ids(rows: pd.DataFrame) -> frozenset:
    return frozenset(map(tuple, rows[["partition", "fold", "seed"]].drop_duplicates().to_numpy().tolist()))


def _arm_scores(rows: pd.DataFrame, arm: str, kind: str, patients_all, patients_of: dict, n_boot: int, seed: int,
                alpha: float, whole: dict) -> list[ExternalScore]:
    """The pooled and the ensemble :class:`ExternalScore` of one arm: the whole set, then each big scanner
    (the whole set's pooled replicates kept in ``whole`` for :func:`_differences`)."""
    unit_labels = np.unique(_units(rows))
    n_runs = len(rows[RUN].drop_duplicates())
    t = rows.drop_duplicates(RUN)
    has_t = bool(np.isfinite(t["threshold"]).all())
    # the ensemble's members: each replicate's mean over its runs (folds) of the flip-TTA probabilities
    files = np.sort(rows["file"].unique())
    tta = (rows[P_COLS].to_numpy(float) + rows[H_COLS].to_numpy(float)) / 2
    unit = _codes_in(_units(rows), unit_labels)
    col = _codes_in(rows["file"].to_numpy(), files)
    total = np.zeros((len(unit_labels), len(files), len(CLASSES)))
    count = np.zeros((len(unit_labels), len(files), 1))
    np.add.at(total, (unit, col), tta)
    np.add.at(count, (unit, col), 1)
    if (count == 0).any():
        raise BcdetError(f"{arm} ({kind}): not every run predicted every BUS-BRA image; run `bcdet study` again "
                         "to rewrite its external predictions.")
    members = total / count
    t_units = t.groupby(_units(t))["threshold_tta"].mean().reindex(unit_labels).to_numpy(float)
    by_file = rows.drop_duplicates("file").set_index("file").loc[files]

    out = []
    for device in ["all", *patients_of]:
        sel = rows if device == "all" else rows[rows["device"] == device]
        cluster_labels = patients_all if device == "all" else patients_of[device]
        p = sel[P_COLS[MALIGNANT]].to_numpy(float)
        pooled = _pooled_reps(sel["is_mal"], p, sel[P_COLS].to_numpy(float).argmax(1) == NORMAL,
                              p >= sel["threshold"].to_numpy(float) if has_t else None, _units(sel),
                              sel["patient"].to_numpy(), unit_labels, cluster_labels, n_boot=n_boot, seed=seed)
        if device == "all":
            whole[(arm, kind, _run_ids(rows))] = pooled
        y = sel["is_mal"].to_numpy()
        base = dict(arm=arm, kind=kind, device=device, **_counts(sel), n_runs=n_runs, n_units=len(unit_labels))
        out.append(ExternalScore(rows="pooled", threshold=float(t["threshold"].mean()), **base,
                                 **_intervals(pooled, alpha), reliability=reliability(y.astype(int), np.c_[1 - p, p], N_BINS)))
        keep = np.ones(len(files), bool) if device == "all" else (by_file["device"] == device).to_numpy()
        ens = _ensemble_reps(by_file["is_mal"].to_numpy()[keep], members[:, keep], t_units,
                             by_file["patient"].to_numpy()[keep], cluster_labels, n_boot=n_boot, seed=seed)
        pe = members[:, keep].mean(0)[:, MALIGNANT]
        out.append(ExternalScore(rows="ensemble_tta", threshold=float(t_units.mean()), **base, **_intervals(ens, alpha),
                                 reliability=reliability(by_file["is_mal"].to_numpy()[keep].astype(int),
                                                         np.c_[1 - pe, pe], N_BINS)))
    return out


def _busi_score(oof: pd.DataFrame, rows: pd.DataFrame, thresholds: pd.DataFrame, arm: str, kind: str, n_boot: int,
                seed: int, alpha: float) -> BusiScore | None:
    """The same runs' BUSI out-of-fold rows (final weights), malignant vs the rest, at the same thresholds."""
    runs = rows[RUN].drop_duplicates()
    o = oof.merge(runs, on=RUN).merge(thresholds[[*RUN, "threshold"]], on=RUN, how="left")
    if not len(o):
        return None
    y = o["y"].to_numpy(int) == MALIGNANT
    p = o[P_COLS[MALIGNANT]].to_numpy(float)
    has_t = bool(np.isfinite(o["threshold"]).all())
    units, groups = _units(o), o["group"].to_numpy()
    reps = _pooled_reps(y, p, np.zeros(len(o), bool), p >= o["threshold"].to_numpy(float) if has_t else None,
                        units, groups, np.unique(units), np.unique(groups), n_boot=n_boot, seed=seed)
    iv = _intervals(reps, alpha)
    return BusiScore(arm=arm, kind=kind, n_images=int(o["file"].nunique()), n_groups=int(len(np.unique(groups))),
                     n_runs=len(o[RUN].drop_duplicates()), n_units=len(np.unique(units)), auc=iv["auc"],
                     sensitivity=iv["sensitivity"], specificity=iv["specificity"])


def _differences(ext: pd.DataFrame, a: str, b: str, question: str, kind: str, patients_all, n_boot: int, seed: int,
                 alpha: float, whole: dict) -> list[ExternalDifference]:
    """``a - b`` of :data:`DIFFERENCE_METRICS` on the runs both arms have (whole set), paired draws: the same
    replicate and patient labels and seed give both arms the same resamples (an arm whose runs are all
    common reuses its own score's replicates from ``whole``)."""
    sel = {arm: ext[(ext["arm"] == arm) & (ext["kind"] == kind)] for arm in (a, b)}
    common = _run_ids(sel[a]) & _run_ids(sel[b])
    if not common:
        return []
    for arm, rows in sel.items():
        sel[arm] = rows[pd.Series(list(map(tuple, rows[["partition", "fold", "seed"]].to_numpy().tolist())),
                                  index=rows.index).isin(common)]
    unit_labels = np.unique(_units(sel[a]))
    reps = {}
    for arm, rows in sel.items():
        if (arm, kind, common) in whole:
            reps[arm] = whole[(arm, kind, common)]
            continue
        p = rows[P_COLS[MALIGNANT]].to_numpy(float)
        has_t = bool(np.isfinite(rows["threshold"]).all())
        reps[arm] = _pooled_reps(rows["is_mal"], p, rows[P_COLS].to_numpy(float).argmax(1) == NORMAL,
                                 p >= rows["threshold"].to_numpy(float) if has_t else None, _units(rows),
                                 rows["patient"].to_numpy(), unit_labels, patients_all, n_boot=n_boot, seed=seed)
    out = []
    for m in DIFFERENCE_METRICS:
        (va, ra), (vb, rb) = reps[a][m], reps[b][m]
        out.append(ExternalDifference(a=a, b=b, question=question, kind=kind, metric=m, device="all", a_value=va,
                                      b_value=vb, difference=stats._interval(va - vb, ra - rb, alpha),
                                      n_runs=len(common), n_units=len(unit_labels)))
    return out
