"""Scoring the improvement ladder (:mod:`~bcdet_helpers.research.study.improve`) like the verdict: one row per rung.

Reads only the scored folder :func:`~bcdet_helpers.research.study.improve_runs.collect` wrote (one study folder whose arms
are the rungs) and BUS-BRA's table. Two scoreboards, each rung with its own interval and its difference from
the rung it was built on (``below``), paired -- the same training replicates (fold partition x seed) and the
same near-duplicate groups / patients drawn for both in every resample, so what the two share cancels and
what differs between trainings stays in the interval:

* **BUSI out-of-fold** (final weights, label conflicts left out, every run's test fold pooled): accuracy,
  balanced accuracy, and malignant sensitivity and specificity with each run at the threshold it chose on its
  own *validation* images for :data:`~bcdet_helpers.research.study.OPERATING_SENSITIVITY` (as
  :class:`~bcdet_helpers.research.study.ArmScore` scores them) -- :func:`~bcdet_helpers.research.stats.hierarchical_bootstrap`
  and :func:`~bcdet_helpers.research.stats.paired_hierarchical_bootstrap`.
* **BUS-BRA** (the external test of issue #30): lesion AUC and malignant sensitivity at each run's carried-over
  threshold -- :func:`~bcdet_helpers.research.study.external_eval.evaluate_external`, each rung paired with its ``below``.

The ensemble rung trains nothing: it is the rung below's runs averaged over seeds and partitions with flip
TTA, at the mean of its members' validation thresholds (:data:`~bcdet_helpers.research.study.external_eval.ENSEMBLE_RULE`).
Its resamples are the ensemble of the drawn training replicates on the drawn groups or patients
(:func:`ensemble_busi`), under the very draws of the pooled rows it is paired with.

Every interval is a 95 % percentile interval; ``*_gain`` columns are ``rung - below``. The cost columns come
from the runs' own records (``result.json``: wall time and device).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ...busi import CLASSES
from ...errors import BcdetError
from ..stats import Interval
from .evaluation import _operating_point, _units
from .files import load_predictions, read_folds
from .result import OPERATING_SENSITIVITY, WEIGHTS_RULE

__all__ = ["BUSI_METRICS", "BUSBRA_METRICS", "METRIC_LABELS", "score_ladder", "rung_scores", "paired_scores",
           "ensemble_busi"]

MALIGNANT = CLASSES.index("malignant")
P_COLS = [f"p_{c}" for c in CLASSES]
H_COLS = [f"p_{c}_hflip" for c in CLASSES]
BUSI_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity")
BUSBRA_METRICS = ("busbra_auc", "busbra_sensitivity")
METRIC_LABELS = {"accuracy": "BUSI accuracy", "balanced_accuracy": "BUSI balanced accuracy",
                 "sensitivity": "BUSI malignant sensitivity", "specificity": "BUSI malignant specificity",
                 "busbra_auc": "BUS-BRA lesion AUC", "busbra_sensitivity": "BUS-BRA malignant sensitivity"}
_CHUNK = 256  # resamples at once in the ensemble's bootstrap


def _nan_interval() -> Interval:
    return Interval(math.nan, math.nan, math.nan, math.nan)


# ---------------------------------------------------------------------------------------- BUSI
def _rows(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scored folder's out-of-fold and validation rows: final weights, label conflicts out, groups joined."""
    folds = read_folds(folder)
    conflicts = set(folds.loc[folds["conflict"].astype(bool), "file"])
    group = folds.drop_duplicates("file").set_index("file")["group"]
    out = []
    for part in ("test", "val"):
        df = load_predictions(folder, part)
        df = df[(df["weights"] == WEIGHTS_RULE) & ~df["file"].isin(conflicts)].copy()
        df["group"] = df["file"].map(group)
        out.append(df.reset_index(drop=True))
    return out[0], out[1]


def rung_scores(rows: pd.DataFrame, val: pd.DataFrame, *, n_boot: int, seed: int = 0, alpha: float = 0.05) -> dict:
    """One rung's pooled BUSI :data:`BUSI_METRICS` (intervals with training variance)."""
    y, groups, units = rows["y"].to_numpy(int), rows["group"].to_numpy(), _units(rows)
    main = stats.hierarchical_bootstrap(y, rows[P_COLS].to_numpy(float), groups, units, n_boot=n_boot, seed=seed,
                                        alpha=alpha)
    out = {"accuracy": main["accuracy"], "balanced_accuracy": main["balanced_accuracy"],
           "sensitivity": _nan_interval(), "specificity": _nan_interval()}
    called = _operating_point(rows, val)
    if called is not None:
        clinical = stats.hierarchical_bootstrap((y == MALIGNANT).astype(int), called.astype(int), groups, units,
                                                n_classes=2, n_boot=n_boot, seed=seed, alpha=alpha)["recall"]
        out["specificity"], out["sensitivity"] = clinical
    return out


def paired_scores(a: pd.DataFrame, va: pd.DataFrame, b: pd.DataFrame, vb: pd.DataFrame, *, n_boot: int,
                  seed: int = 0, alpha: float = 0.05) -> dict:
    """``a - b`` of :data:`BUSI_METRICS`, paired (the same replicates and groups drawn for both). ``a`` and ``b``
    must share their training replicates: two rungs on the verdict's partitions and seeds do."""
    args = dict(n_boot=n_boot, seed=seed, alpha=alpha)
    d = stats.paired_hierarchical_bootstrap(a["y"], a[P_COLS].to_numpy(float), a["group"], _units(a),
                                            b["y"], b[P_COLS].to_numpy(float), b["group"], _units(b), **args)
    out = {"accuracy": d["accuracy"], "balanced_accuracy": d["balanced_accuracy"],
           "sensitivity": _nan_interval(), "specificity": _nan_interval()}
    ca, cb = _operating_point(a, va), _operating_point(b, vb)
    if ca is not None and cb is not None:
        mal_a, mal_b = (a["y"].to_numpy(int) == MALIGNANT), (b["y"].to_numpy(int) == MALIGNANT)
        clinical = stats.paired_hierarchical_bootstrap(mal_a.astype(int), ca.astype(int), a["group"], _units(a),
                                                       mal_b.astype(int), cb.astype(int), b["group"], _units(b),
                                                       n_classes=2, **args)["recall"]
        out["specificity"], out["sensitivity"] = clinical
    return out


def _run_thresholds(val: pd.DataFrame) -> dict:
    """``{(partition, fold, seed): (plain threshold, flip-TTA threshold)}`` chosen on each run's validation images
    (NaN where a run validated no malignant image)."""
    from ...metrics import choose_threshold

    out = {}
    for (p, f, s), v in val.groupby(["partition", "fold", "seed"]):
        is_mal = v["y"].to_numpy(int) == MALIGNANT
        plain = v[P_COLS[MALIGNANT]].to_numpy(float)
        tta = (plain + v[H_COLS[MALIGNANT]].to_numpy(float)) / 2
        try:
            out[(int(p), int(f), int(s))] = (choose_threshold(is_mal, plain, OPERATING_SENSITIVITY),
                                             choose_threshold(is_mal, tta, OPERATING_SENSITIVITY))
        except ValueError:
            out[(int(p), int(f), int(s))] = (math.nan, math.nan)
    return out


def _weighted(correct, called, y, c) -> dict:
    """The metrics of resamples: ``correct`` / ``called`` ``(B, N)`` per image (already combined over the drawn
    replicates), weighted by the drawn groups' counts ``c`` ``(B, N)``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (c * correct).sum(1) / c.sum(1)
        recalls = []
        for k in range(len(CLASSES)):
            m = y == k
            recalls.append(np.where(c[:, m].sum(1) > 0, (c[:, m] * correct[:, m]).sum(1) / c[:, m].sum(1), np.nan))
        balanced = np.nanmean(np.stack(recalls, 1), 1)
        mal = y == MALIGNANT
        sens = (c[:, mal] * called[:, mal]).sum(1) / c[:, mal].sum(1)
        spec = (c[:, ~mal] * (1 - called[:, ~mal])).sum(1) / c[:, ~mal].sum(1)
    return {"accuracy": acc, "balanced_accuracy": balanced, "sensitivity": sens, "specificity": spec}


def ensemble_busi(rows: pd.DataFrame, val: pd.DataFrame, *, n_boot: int, seed: int = 0,
                  alpha: float = 0.05) -> tuple[dict, dict]:
    """``(scores, gains)`` of the seed ensemble with flip TTA of ``rows`` (one rung's pooled out-of-fold rows):
    its :data:`BUSI_METRICS` and their difference from the pooled rows themselves, paired.

    Each training replicate (fold partition x seed) predicts every image once (the run whose test fold holds
    it); the ensemble of an image is the mean over the replicates of the mean of its plain and flipped
    probabilities, called malignant at the mean of those runs' flip-TTA validation thresholds. A resample
    draws replicates ``w`` and groups ``c`` (:func:`~bcdet_helpers.research.stats.two_way_counts`, the draws of
    :func:`~bcdet_helpers.research.stats.hierarchical_bootstrap` for the same sizes and seed): the ensemble of the drawn
    replicates, scored on the drawn groups, against the pooled rows under the same draws."""
    units = _units(rows)
    u_labels, u = np.unique(units, return_inverse=True)
    files, i = np.unique(rows["file"].to_numpy(), return_inverse=True)
    g_labels, g_of_row = np.unique(rows["group"].to_numpy(), return_inverse=True)
    n_u, n_i, k = len(u_labels), len(files), len(CLASSES)
    count = np.zeros((n_u, n_i))
    np.add.at(count, (u, i), 1)
    if (count != 1).any():
        raise BcdetError("the ensemble needs every training replicate (partition x seed) to predict every image "
                         "exactly once: some runs of the rung below are missing. Run `bcdet improve` again.")
    plain, tta = np.zeros((n_u, n_i, k)), np.zeros((n_u, n_i, k))
    plain[u, i] = rows[P_COLS].to_numpy(float)
    tta[u, i] = (rows[P_COLS].to_numpy(float) + rows[H_COLS].to_numpy(float)) / 2
    thresholds = _run_thresholds(val)
    run = list(zip(rows["partition"].astype(int), rows["fold"].astype(int), rows["seed"].astype(int)))
    t_plain, t_tta = np.full((n_u, n_i), np.nan), np.full((n_u, n_i), np.nan)
    t_plain[u, i] = [thresholds.get(r, (math.nan, math.nan))[0] for r in run]
    t_tta[u, i] = [thresholds.get(r, (math.nan, math.nan))[1] for r in run]
    y = np.zeros(n_i, int)
    y[i] = rows["y"].to_numpy(int)
    g = np.zeros(n_i, int)
    g[i] = g_of_row
    correct_p = (plain.argmax(-1) == y).astype(float)  # (U, N): the pooled rows
    called_p = (plain[..., MALIGNANT] >= t_plain).astype(float)

    def score(w: np.ndarray, c: np.ndarray) -> tuple[dict, dict]:
        cw = c[:, g].astype(float)  # (B, N): each image's group count
        wn = w / w.sum(1, keepdims=True)
        pe = np.einsum("bu,unk->bnk", wn, tta)
        te = wn @ t_tta
        ens = _weighted((pe.argmax(-1) == y).astype(float), (pe[..., MALIGNANT] >= te).astype(float), y, cw)
        pooled = _weighted(wn @ correct_p, wn @ called_p, y, cw)  # each replicate's rows weighted by its draws
        return ens, pooled

    point_e, point_p = score(np.ones((1, n_u)), np.ones((1, len(g_labels))))
    w, c = stats.two_way_counts(n_u, len(g_labels), n_boot, seed)
    parts = [score(w[lo:lo + _CHUNK], c[lo:lo + _CHUNK]) for lo in range(0, n_boot, _CHUNK)]
    reps_e = {m: np.concatenate([p[0][m] for p in parts]) for m in BUSI_METRICS}
    reps_p = {m: np.concatenate([p[1][m] for p in parts]) for m in BUSI_METRICS}
    no_t = not np.isfinite(t_tta).all()
    scores, gains = {}, {}
    for m in BUSI_METRICS:
        if no_t and m in ("sensitivity", "specificity"):
            scores[m] = gains[m] = _nan_interval()
            continue
        scores[m] = stats._interval(float(point_e[m][0]), reps_e[m], alpha)
        gains[m] = stats._interval(float(point_e[m][0] - point_p[m][0]), reps_e[m] - reps_p[m], alpha)
    return scores, gains


# -------------------------------------------------------------------------------------- BUS-BRA
def _busbra(folder: Path, pairs: list[tuple[str, str, str]], ensembles: dict, busbra, n_boot: int, seed: int,
            alpha: float) -> tuple[dict, str]:
    """``({rung: {metric: (score, gain)}}, note)``: :func:`evaluate_external` of the scored folder with each rung
    paired with its below; the ensemble rungs (``{rung: source}``) from :func:`ensemble_busbra`. Without BUS-BRA
    predictions or BUS-BRA's table: ``({}, why)``."""
    from .external_eval import evaluate_external

    if not any((folder / "external").glob("*.csv.gz")):
        return {}, "no BUS-BRA predictions: the runs predicted without a BUS-BRA copy (set BCDET_BUSBRA and run again)"
    try:
        table = _busbra_table(busbra)
        res = evaluate_external(folder, table, n_boot=n_boot, seed=seed, alpha=alpha, comparisons=pairs)
    except (BcdetError, FileNotFoundError, OSError) as exc:
        return {}, f"BUS-BRA not scored: {exc}"
    out = {}
    names = {"busbra_auc": "auc", "busbra_sensitivity": "sensitivity"}
    below = {a: b for a, b, _ in pairs}
    for arm in res.arms:
        s = res.score(arm)
        out[arm] = {}
        for col, m in names.items():
            gain = res.difference(arm, below[arm], metric=m).difference if arm in below else _nan_interval()
            out[arm][col] = (getattr(s, m), gain)
    for rung, source in ensembles.items():
        if source in res.arms:
            out[rung] = ensemble_busbra(folder, source, table, n_boot=n_boot, seed=seed, alpha=alpha)
    return out, ""


def _busbra_table(busbra):
    from .external_eval import _busbra_table as table

    return table(busbra)


def ensemble_busbra(folder: Path, arm: str, table: pd.DataFrame, *, n_boot: int, seed: int = 0,
                    alpha: float = 0.05) -> dict:
    """``{metric: (score, gain)}`` of :data:`BUSBRA_METRICS` for the ensemble with flip TTA of ``arm``'s runs on
    BUS-BRA, against the same runs pooled, under the same draws of replicates and patients (the ensemble and
    pooled replicates of :mod:`~bcdet_helpers.research.study.external_bootstrap`; the threshold rule of
    :func:`~bcdet_helpers.research.study.external_eval.evaluate_external`)."""
    from .external_bootstrap import NORMAL, _codes_in, _ensemble_reps, _pooled_reps
    from .external_eval import RUN, _thresholds, load_external
    from .files import label_conflicts

    ext = load_external(folder)
    ext = ext[ext["arm"] == arm].copy()
    info = table.drop_duplicates("file").set_index("file")
    ext["patient"] = ext["file"].map(info["patient"]).astype(str)
    ext = ext[ext["y"].isin([CLASSES.index("benign"), MALIGNANT])].reset_index(drop=True)
    ext["is_mal"] = ext["y"].to_numpy(int) == MALIGNANT
    val, oof = load_predictions(folder, "val"), load_predictions(folder, "test")
    val = val[~val["file"].isin(set(label_conflicts(oof.drop_duplicates("file"))["file"]))]
    t = _thresholds(val, ext[RUN].drop_duplicates(), OPERATING_SENSITIVITY, folder)
    ext = ext.merge(t[[*RUN, "threshold", "threshold_tta"]], on=RUN, how="left", validate="many_to_one")
    units = _units(ext)
    unit_labels, patients = np.unique(units), np.unique(ext["patient"].to_numpy())
    p = ext[P_COLS[MALIGNANT]].to_numpy(float)
    has_t = bool(np.isfinite(ext["threshold"]).all())
    pooled = _pooled_reps(ext["is_mal"], p, ext[P_COLS].to_numpy(float).argmax(1) == NORMAL,
                          p >= ext["threshold"].to_numpy(float) if has_t else None, units, ext["patient"].to_numpy(),
                          unit_labels, patients, n_boot=n_boot, seed=seed)
    files = np.sort(ext["file"].unique())
    tta = (ext[P_COLS].to_numpy(float) + ext[H_COLS].to_numpy(float)) / 2
    u, col = _codes_in(units, unit_labels), _codes_in(ext["file"].to_numpy(), files)
    total, count = np.zeros((len(unit_labels), len(files), len(CLASSES))), np.zeros((len(unit_labels), len(files), 1))
    np.add.at(total, (u, col), tta)
    np.add.at(count, (u, col), 1)
    runs = ext.drop_duplicates(RUN)
    t_units = runs.groupby(_units(runs))["threshold_tta"].mean().reindex(unit_labels).to_numpy(float)
    by_file = ext.drop_duplicates("file").set_index("file").loc[files]
    ens = _ensemble_reps(by_file["is_mal"].to_numpy(), total / np.maximum(count, 1), t_units,
                         by_file["patient"].to_numpy(), patients, n_boot=n_boot, seed=seed)
    out = {}
    for col_name, m in (("busbra_auc", "auc"), ("busbra_sensitivity", "sensitivity")):
        (ve, re), (vp, rp) = ens[m], pooled[m]
        out[col_name] = (stats._interval(ve, re, alpha), stats._interval(ve - vp, re - rp, alpha))
    return out


# ------------------------------------------------------------------------------------------ the table
def score_ladder(folder: str | Path, choices: list[dict], *, n_boot: int, seed: int = 0, alpha: float = 0.05,
                 busbra=None) -> tuple[pd.DataFrame, str]:
    """``(table, note)``: one row per rung of ``choices`` (:func:`~bcdet_helpers.research.study.improve_runs.collect`'s
    records) that the scored ``folder`` holds, in order -- what it changed, what validation chose, every metric
    of :data:`BUSI_METRICS` and :data:`BUSBRA_METRICS` with its interval and its paired gain over ``below``
    (``<metric>``, ``_low``, ``_high``, ``_gain``, ``_gain_low``, ``_gain_high``), and the cost. ``note`` says
    why the BUS-BRA columns are empty, when they are."""
    folder = Path(folder)
    oof, val = _rows(folder)
    present = set(oof["arm"])
    rows, pairs, ensembles, busi = [], [], {}, {}
    for c in choices:
        rung, below = c["rung"], c["below"]
        if c["candidates"]:
            if rung not in present:
                continue  # not decided yet
            r, v = oof[oof["arm"] == rung], val[val["arm"] == rung]
            scores = rung_scores(r, v, n_boot=n_boot, seed=seed, alpha=alpha)
            gains = {m: _nan_interval() for m in BUSI_METRICS}
            if below is not None and below in present:
                gains = paired_scores(r, v, oof[oof["arm"] == below], val[val["arm"] == below], n_boot=n_boot,
                                      seed=seed, alpha=alpha)
                pairs.append((rung, below, c["adds"]))
        else:
            if below not in present:
                continue
            scores, gains = ensemble_busi(oof[oof["arm"] == below], val[val["arm"] == below], n_boot=n_boot,
                                          seed=seed, alpha=alpha)
            ensembles[rung] = below
        busi[rung] = (scores, gains)
        rows.append(c)
    ext, note = _busbra(folder, pairs, ensembles, busbra, n_boot, seed, alpha)
    out = []
    for c in rows:
        rung = c["rung"]
        chosen = c["candidates"].get(c["chosen"] or "", {})
        cost = chosen.get("cost") or {}
        row = {"rung": rung, "adds": c["adds"], "chosen": c["chosen"] or "", "adopted": bool(c["adopted"]),
               "below": c["below"] or "", "choice": c["how"], "profile": chosen.get("profile", ""),
               "validation": c["value"] if c.get("value") is not None else chosen.get("validation", math.nan),
               "runs": cost.get("runs", 0)}
        scores, gains = busi[rung]
        for m in BUSI_METRICS:
            row |= _columns(m, scores[m], gains[m])
        for m in BUSBRA_METRICS:
            s, gain = ext.get(rung, {}).get(m, (_nan_interval(), _nan_interval()))
            row |= _columns(m, s, gain)
        row |= {"seconds_per_run": cost.get("seconds_per_run", math.nan if c["candidates"] else 0.0),
                "rung_seconds": sum((x.get("cost") or {}).get("seconds", 0.0) for x in c["candidates"].values()),
                "device": cost.get("device", "")}
        out.append(row)
    return pd.DataFrame(out), note


def _columns(metric: str, score: Interval, gain: Interval) -> dict:
    return {metric: score.value, f"{metric}_low": score.low, f"{metric}_high": score.high,
            f"{metric}_gain": gain.value, f"{metric}_gain_low": gain.low, f"{metric}_gain_high": gain.high}
