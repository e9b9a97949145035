"""Evaluating the study from its files alone: pooled scores with clustered CIs, paired differences,
the corrected t-test, the leakage gap, the weights check (:func:`evaluate_study`). See
:mod:`bcdet_helpers.research.study`."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ...errors import BcdetError
from ...metrics import confusion, scores_from_confusion
from ...paths import CLASSES
from ...profiles import DEFAULTS, KINDS, get_profile
from ...runkey import RunKey
from .files import RUN_COLUMNS, label_conflicts, load_predictions, read_folds, with_partition
from .result import (OPERATING_SENSITIVITY, ArmScore, COMPARISONS, Conflict, Coverage, Difference, LeakageGap, METRICS, PAPER_CLAIM,
                     RunScore, SCHEMA, SCHEMA_VERSION, Study, VERDICT_ANALYSIS, WEIGHTS, WEIGHTS_RULE, WeightsCheck)


# ------------------------------------------------------------------------------------- evaluation
def _proba(df: pd.DataFrame, tta: bool = False) -> np.ndarray:
    p = df[[f"p_{c}" for c in CLASSES]].to_numpy(float)
    if tta:
        p = (p + df[[f"p_{c}_hflip" for c in CLASSES]].to_numpy(float)) / 2
    return p


def _run_metrics(df: pd.DataFrame) -> tuple[float, float]:
    if not len(df):
        return math.nan, math.nan
    s = scores_from_confusion(confusion(df["y"].to_numpy(int), _proba(df).argmax(1), len(CLASSES)))
    return float(s["accuracy"]), float(s["macro_f1"])


def _units(df: pd.DataFrame) -> np.ndarray:
    """Each row's training replicate: its fold partition (``partition`` column; one partition when
    absent) and seed -- the runs that together predict every image once."""
    part = df["partition"].astype(str) if "partition" in df else pd.Series("0", index=df.index)
    return (part + "/" + df["seed"].astype(str)).to_numpy()


MALIGNANT = CLASSES.index("malignant")


def _operating_point(test: pd.DataFrame, val: pd.DataFrame) -> np.ndarray | None:
    """Per test row: is it called malignant at the threshold its own run chose on its validation images
    for :data:`OPERATING_SENSITIVITY` (:func:`~bcdet_helpers.metrics.choose_threshold`; never read off
    the test fold)? ``None`` when a run's validation part holds no malignant image (tiny subsets)."""
    from ...metrics import choose_threshold

    called = pd.Series(False, index=test.index)
    test, val = with_partition(test), with_partition(val)
    for (p, fold, s), rows in test.groupby(["partition", "fold", "seed"]):
        v = val[(val["partition"] == p) & (val["fold"] == fold) & (val["seed"] == s)]
        try:
            t = choose_threshold(v["y"] == MALIGNANT, v[f"p_{CLASSES[MALIGNANT]}"], OPERATING_SENSITIVITY)
        except ValueError:
            return None
        called[rows.index] = rows[f"p_{CLASSES[MALIGNANT]}"] >= t
    return called.to_numpy()


def _score(df, arm, kind, weights, rows, n_seeds, n_boot, seed, alpha, val=None) -> ArmScore:
    y, proba, groups = df["y"].to_numpy(int), df["_proba"].tolist(), df["group"].to_numpy()
    proba = np.asarray(proba)
    clustered = stats.cluster_bootstrap(y, proba, groups, n_boot=n_boot, seed=seed, alpha=alpha)
    image = stats.cluster_bootstrap(y, proba, df["file"].to_numpy(), n_boot=n_boot, seed=seed, alpha=alpha)
    training = clinical = None
    if "seed" in df:  # pooled rows: every interval carries training variance too
        units = _units(df)
        training = stats.hierarchical_bootstrap(y, proba, groups, units, n_boot=n_boot, seed=seed, alpha=alpha)
        called = _operating_point(df, val) if val is not None else None
        if called is not None:
            clinical = stats.hierarchical_bootstrap((y == MALIGNANT).astype(int), called.astype(int), groups, units,
                                                    n_classes=2, n_boot=n_boot, seed=seed, alpha=alpha)["recall"]
    return ArmScore(arm=arm, kind=kind, weights=weights, rows=rows, n_images=int(df["file"].nunique()),
                    n_seeds=int(n_seeds), n_predictions=len(df),
                    n_groups=clustered["n_groups"], accuracy=clustered["accuracy"], macro_f1=clustered["macro_f1"],
                    recall=dict(zip(CLASSES, clustered["recall"])), accuracy_image_level=image["accuracy"],
                    accuracy_training=training["accuracy"] if training else None,
                    balanced_accuracy=training["balanced_accuracy"] if training else None,
                    malignant_sensitivity=clinical[1] if clinical else None,
                    malignant_specificity=clinical[0] if clinical else None)


def _ensemble(df: pd.DataFrame) -> pd.DataFrame:
    """One row per image: mean over seeds of the mean of plain and flipped probabilities."""
    p = _proba(df, tta=True)
    cols = [f"_e{k}" for k in range(p.shape[1])]
    tmp = df[["file", "y", "group"]].copy()
    tmp[cols] = p
    agg = tmp.groupby("file", sort=True).agg({"y": "first", "group": "first", **{c: "mean" for c in cols}})
    agg["_proba"] = list(agg[cols].to_numpy())
    return agg.reset_index()[["file", "y", "group", "_proba"]]


def evaluate_study(folder: str | Path, *, include_conflicts: bool = False, weights: str = WEIGHTS_RULE,
                   n_boot: int | None = None, seed: int = 0, alpha: float = 0.05, comparisons=COMPARISONS,
                   claim: float = PAPER_CLAIM) -> Study:
    """The :class:`Study` of a study folder, from its files alone (``folds.csv``, ``oof/``,
    ``val/``, ``runs.csv``, ``design.json``): no model is loaded, so a committed
    ``results/<profile>-cv/`` can be re-evaluated anywhere.

    Label conflicts (:func:`label_conflicts`) are left out of every score unless
    ``include_conflicts``; they are listed in :attr:`Study.conflicts` either way. ``weights`` is
    the headline rule; every number is also computed for the other weights present.
    ``n_boot`` defaults to the profile's ``bootstrap``.
    """
    from ...runinfo import git_commit

    folder = Path(folder)
    folds = read_folds(folder)
    design = json.loads((folder / "design.json").read_text()) if (folder / "design.json").exists() else {}
    prof_name = (design.get("profile") or {}).get("name", folder.name)
    if n_boot is None:
        try:
            n_boot = get_profile(prof_name).bootstrap
        except ValueError:  # a folder of a profile this version does not know
            n_boot = DEFAULTS.bootstrap
    if weights not in WEIGHTS:
        raise BcdetError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    oof = load_predictions(folder, "test")
    val = load_predictions(folder, "val")
    if not len(oof):
        raise BcdetError(f"{folder}/oof holds no predictions: run run_study first.")
    runs_csv = pd.read_csv(folder / "runs.csv") if (folder / "runs.csv").exists() else pd.DataFrame(columns=RUN_COLUMNS)
    runs_csv = runs_csv.assign(partition=runs_csv["partition"].fillna(0).astype(int)  # one partition before #28
                               if "partition" in runs_csv else 0)
    group_of = folds.drop_duplicates("file").set_index("file")["group"]
    oof["group"] = oof["file"].map(group_of)
    val["group"] = val["file"].map(group_of)
    if oof["group"].isna().any():
        missing = oof.loc[oof["group"].isna(), "file"].unique()[:3]
        raise BcdetError(f"{folder}: predictions for images not in folds.csv (e.g. {list(missing)}).")

    images = folds.drop_duplicates("file")
    conf_tab = label_conflicts(images)
    conflicts = [Conflict(r.file, r.label, int(r.group), list(r.other_labels)) for r in conf_tab.itertuples()]
    excluded = set() if include_conflicts else set(conf_tab["file"])
    scored = oof[~oof["file"].isin(excluded)].copy()
    scored_val = val[~val["file"].isin(excluded)].copy()
    scored["_proba"] = list(_proba(scored))

    present = set(oof["arm"])
    arms = [a for a in dict.fromkeys(design.get("arms") or []) if a in present]
    arms += sorted(present - set(arms))  # arms of earlier calls that this design.json does not name
    kinds = [k for k in KINDS if k in set(oof["kind"])]
    weights_present = [w for w in WEIGHTS if w in set(oof["weights"])]
    seeds = {k: sorted(int(s) for s in oof.loc[oof["kind"] == k, "seed"].unique()) for k in kinds}
    n_folds = {k: int(folds.loc[folds["kind"] == k, "fold"].max()) + 1 for k in kinds if (folds["kind"] == k).any()}

    # coverage: every image once per (arm, kind, weights, partition, seed)
    coverage = []
    for (arm, kind, w, p, s), g in oof.groupby(["arm", "kind", "weights", "partition", "seed"], sort=True):
        n_img = int(((folds["kind"] == kind) & (folds["partition"] == p)).sum())
        counts = g["file"].value_counts()
        coverage.append(Coverage(arm=arm, kind=kind, weights=w, seed=int(s),
                                 folds=sorted(int(f) for f in g["fold"].unique()), images=n_img,
                                 predicted=len(counts), duplicates=int((counts > 1).sum()),
                                 complete=bool(len(counts) == n_img and (counts == 1).all()), partition=int(p)))

    # per-arm pooled and ensemble scores
    scores = []
    for w in weights_present:
        for kind in kinds:
            for arm in arms:
                g = scored[(scored["arm"] == arm) & (scored["kind"] == kind) & (scored["weights"] == w)]
                if not len(g):
                    continue
                n_seeds = g["seed"].nunique()
                v = scored_val[(scored_val["arm"] == arm) & (scored_val["kind"] == kind) & (scored_val["weights"] == w)]
                scores.append(_score(g, arm, kind, w, "pooled", n_seeds, n_boot, seed, alpha, val=v))
                raw = oof[(oof["arm"] == arm) & (oof["kind"] == kind) & (oof["weights"] == w)
                          & ~oof["file"].isin(excluded)]
                scores.append(_score(_ensemble(raw), arm, kind, w, "ensemble_tta", n_seeds, n_boot, seed, alpha))

    # per-run scores
    n_train_of = {RunKey(r.arm, r.kind, int(r.fold), int(r.seed), int(r.partition)): int(r.n_train)
                  for r in runs_csv.itertuples()}
    runs = []
    for (arm, kind, p, fold, s, w), g in scored.groupby(["arm", "kind", "partition", "fold", "seed", "weights"],
                                                        sort=True):
        v = scored_val[(scored_val["arm"] == arm) & (scored_val["kind"] == kind) & (scored_val["fold"] == fold)
                       & (scored_val["seed"] == s) & (scored_val["weights"] == w) & (scored_val["partition"] == p)]
        acc, f1 = _run_metrics(g)
        vacc, vf1 = _run_metrics(v)
        key = RunKey(arm, kind, int(fold), int(s), int(p))
        if key not in n_train_of:
            raise BcdetError(f"{folder}/runs.csv has no row for {key.name}: re-run run_study to record it.")
        runs.append(RunScore(arm=arm, kind=kind, fold=int(fold), seed=int(s), weights=w,
                             epoch=int(g["epoch"].iloc[0]), n_train=n_train_of[key], n_test=len(g),
                             accuracy=acc, macro_f1=f1, val_accuracy=vacc, val_macro_f1=vf1, partition=int(p)))
    run_of = {(r.arm, r.kind, r.partition, r.fold, r.seed, r.weights): r for r in runs}

    # paired differences
    differences = []
    for w in weights_present:
        for kind in kinds:
            for a, b, question in comparisons:
                if a not in arms or b not in arms:
                    continue
                pairs = sorted({(p, f, s) for (x, k, p, f, s, ww) in run_of if x == a and k == kind and ww == w}
                               & {(p, f, s) for (x, k, p, f, s, ww) in run_of if x == b and k == kind and ww == w})
                if not pairs:
                    continue
                differences += _differences(scored, run_of, a, b, question, kind, w, pairs, n_boot, seed, alpha, claim)

    # leak-free vs leaky
    leakage = []
    if {"grouped", "random"} <= set(kinds):
        for w in weights_present:
            for arm in arms:
                ga = scored[(scored["arm"] == arm) & (scored["kind"] == "grouped") & (scored["weights"] == w)
                            & (scored["partition"] == 0)]  # the random split has the first partition only
                ra = scored[(scored["arm"] == arm) & (scored["kind"] == "random") & (scored["weights"] == w)]
                if not len(ga) or not len(ra):
                    continue
                common = sorted(set(ga["seed"]) & set(ra["seed"]))
                if common:
                    ga, ra = ga[ga["seed"].isin(common)], ra[ra["seed"].isin(common)]
                gap = stats.paired_cluster_bootstrap(ra["y"], np.stack(ra["_proba"]), ra["group"], ga["y"],
                                                     np.stack(ga["_proba"]), ga["group"], n_boot=n_boot,
                                                     seed=seed, alpha=alpha)
                for m in METRICS:
                    leakage.append(LeakageGap(arm=arm, weights=w, metric=m, grouped=_run_metrics(ga)[METRICS.index(m)],
                                              random=_run_metrics(ra)[METRICS.index(m)], gap=gap[m],
                                              seeds=[int(s) for s in (common or sorted(set(ga["seed"]) | set(ra["seed"])))]))

    # the weights rule on validation data
    checks = compare_weights(runs)

    return Study(
        schema=SCHEMA, version=SCHEMA_VERSION, profile=prof_name, weights=weights,
        include_conflicts=include_conflicts, classes=list(CLASSES), arms=arms, kinds=kinds, seeds=seeds,
        folds=n_folds, n_images=len(images), n_scored=int(len(images) - len(excluded & set(images["file"]))),
        n_boot=int(n_boot), alpha=alpha, claim=claim, conflicts=conflicts, coverage=coverage, scores=scores,
        runs=runs, differences=differences, leakage=leakage, weights_checks=checks, commit=git_commit(),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), design=design, verdict_analysis=VERDICT_ANALYSIS,
    )


def _differences(scored, run_of, a, b, question, kind, w, pairs, n_boot, seed, alpha, claim) -> list[Difference]:
    """Both metrics' :class:`Difference` of ``a - b`` over the (partition, fold, seed) ``pairs`` both arms ran."""
    run_ids = pd.Series(list(zip(scored["partition"], scored["fold"], scored["seed"])), index=scored.index)
    sel = lambda arm: scored[(scored["arm"] == arm) & (scored["kind"] == kind) & (scored["weights"] == w)  # noqa: E731
                             & run_ids.isin(pairs)]
    da, db = sel(a), sel(b)
    pa, pb = np.stack(da["_proba"]), np.stack(db["_proba"])
    clustered = stats.paired_cluster_bootstrap(da["y"], pa, da["group"], db["y"], pb, db["group"],
                                               n_boot=n_boot, seed=seed, alpha=alpha)
    image = stats.paired_cluster_bootstrap(da["y"], pa, da["file"], db["y"], pb, db["file"],
                                           n_boot=n_boot, seed=seed, alpha=alpha)
    training = stats.paired_hierarchical_bootstrap(da["y"], pa, da["group"], _units(da), db["y"], pb, db["group"],
                                                   _units(db), n_boot=n_boot, seed=seed, alpha=alpha)
    ra = [run_of[(a, kind, p, f, s, w)] for p, f, s in pairs]
    rb = [run_of[(b, kind, p, f, s, w)] for p, f, s in pairs]
    n_train = float(np.mean([r.n_train for r in ra + rb]))
    n_test = float(np.mean([r.n_test for r in ra + rb]))
    out = []
    for m in METRICS:
        per_run = [float(getattr(x, m) - getattr(y, m)) for x, y in zip(ra, rb)]
        test = stats.corrected_ttest(per_run, n_train, n_test, alpha)
        fold_test = stats.repeated_cv_ttest(per_run, [f for _, f, _ in pairs], [p for p, _, _ in pairs],
                                            n_train=n_train, n_test=n_test, alpha=alpha)
        out.append(Difference(
            a=a, b=b, question=question, kind=kind, weights=w, metric=m, pooled=clustered[m],
            image_level=image[m], per_run=per_run, runs=[[int(f), int(s)] for _, f, s in pairs], test=test,
            detectable=stats.detectable_difference(test.se, test.df if test.n > 1 else None, alpha)
            if test.n > 1 else math.nan,
            detectable_bootstrap=stats.bootstrap_detectable_difference(clustered[m], alpha),
            power_at_claim=stats.power_at(claim, test.se, test.df, alpha) if test.n > 1 else math.nan,
            training=training[m], fold_test=fold_test,
            partitions=[int(p) for p, _, _ in pairs] if any(p for p, _, _ in pairs) else None,
        ))
    return out


def compare_weights(runs: list[RunScore]) -> list[WeightsCheck]:
    """Final weights against best-by-validation on each run's *validation* images, per (arm, kind)
    -- the numbers that decide the weights rule without looking at a test image. Runs that have
    only one of the two are skipped. (``best`` was picked on these images, so its side is
    optimistic; see the module doc.)"""
    run_of = {(r.arm, r.kind, (r.partition, r.fold, r.seed), r.weights): r for r in runs}
    checks = []
    for arm, kind in dict.fromkeys((r.arm, r.kind) for r in runs):
        keys = sorted({run for (x, k, run, _w) in run_of if x == arm and k == kind})
        pairs = [(run_of[(arm, kind, r, "last")], run_of[(arm, kind, r, "best")]) for r in keys
                 if (arm, kind, r, "last") in run_of and (arm, kind, r, "best") in run_of]
        if not pairs:
            continue
        d = np.array([b.val_accuracy - la.val_accuracy for la, b in pairs])
        checks.append(WeightsCheck(
            arm=arm, kind=kind, n_runs=len(pairs),
            last_val_accuracy=float(np.mean([la.val_accuracy for la, _ in pairs])),
            best_val_accuracy=float(np.mean([b.val_accuracy for _, b in pairs])),
            last_val_macro_f1=float(np.mean([la.val_macro_f1 for la, _ in pairs])),
            best_val_macro_f1=float(np.mean([b.val_macro_f1 for _, b in pairs])),
            mean_difference=float(d.mean()), sd_difference=float(d.std(ddof=1)) if len(d) > 1 else math.nan,
            best_better=int((d > 0).sum()), last_better=int((d < 0).sum()),
            mean_best_epoch=float(np.mean([b.epoch for _, b in pairs])),
            epochs=int(max(la.epoch for la, _ in pairs)),
        ))
    return checks
