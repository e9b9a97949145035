"""Each arm of the study on BUS-BRA: the external result with the study's fold x seed spread, paired across
arms (issue #30), beside the BUSI out-of-fold numbers of the same runs.

Every study run leaves its final weights' BUS-BRA predictions in ``external/<run>.csv.gz``
(:mod:`bcdet_helpers.study.external`); :func:`evaluate_external` reads only the study folder's files and
BUS-BRA's table (patient and scanner of each image, by ``file``) and returns an :class:`ExternalStudy`:

* **per arm, pooled over its runs** (every run predicts every BUS-BRA image, so an arm of 30 runs has 30
  predictions of each image): the AUC of p(malignant) among benign and malignant images; malignant
  sensitivity and specificity with **each run at its own threshold**, chosen on that run's BUSI
  *validation* images (``val/<run>.csv``, final weights, :data:`~bcdet_helpers.study.OPERATING_SENSITIVITY`,
  :func:`~bcdet_helpers.external.choose_threshold`) and carried over -- BUS-BRA's labels choose nothing; the
  ECE and reliability of the malignant-or-not question; the share of lesions the model calls normal.
  Then the same on every scanner with at least :data:`~bcdet_helpers.external.MIN_DEVICE_IMAGES` images.
* **the ensemble with flip TTA**: one prediction per image, the mean over *all* the arm's runs (its
  partitions, folds and seeds -- each is a model that never saw BUS-BRA) of the mean of the plain and
  the left-right flipped probabilities. Its threshold is the mean of its members' thresholds, each
  chosen on the member's own validation images with the same flip TTA. Not a threshold chosen on
  averaged validation predictions: each seed and fold carves its own validation images out of its own
  training folds, so an image that validates one member trained another, and no image has the
  ensemble's prediction without a member that trained on it.
* **BUSI out-of-fold, the same runs**: AUC of p(malignant) for malignant vs the rest (benign and normal),
  and sensitivity/specificity at the same thresholds, pooled over the runs' test folds (label conflicts
  left out, as in :func:`~bcdet_helpers.study.evaluate_study`) -- how much of the internal score transfers.
* **paired differences** ``a - b`` of :data:`~bcdet_helpers.study.COMPARISONS` (AUC, sensitivity,
  specificity on the whole set): the runs both arms have, and in each resample the same training
  replicates and the same patients for both, so what the arms share cancels.

Every interval is a crossed two-way bootstrap (:func:`~bcdet_helpers.stats.two_way_counts`, the draws
of :func:`~bcdet_helpers.stats.hierarchical_bootstrap`): each resample draws the training replicates
(fold partition x seed: the runs that together are one "training of the arm") and the **patients**
(BUS-BRA's ``Case``; BUSI's near-duplicate groups for the BUSI numbers) independently with replacement,
and a row counts ``w[replicate] * c[patient]`` times -- a patient's images always move together. The
ensemble's resample is the ensemble of the drawn replicates, at the mean of their thresholds.

:func:`write_external` writes the record (``bcdet external``): ``external.json`` (strict JSON of
:class:`ExternalStudy`), ``table.csv`` (:meth:`ExternalStudy.table`), ``reliability.png``, ``devices.png``
and a ``README.md`` with the command and commit.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..busi import CLASSES
from ..errors import BcdetError
from ..external import MIN_DEVICE_IMAGES, choose_threshold
from ..runkey import RunKey
from ..stats import Interval
from ..uncertainty import confidence_bins, expected_calibration_error, reliability
from .evaluation import _units  # each row's training replicate, "<partition>/<seed>"
from .external import EXTERNAL, WEIGHTS_EXTERNAL
from .result import COMPARISONS, OPERATING_SENSITIVITY, _build, label_conflicts, load_predictions

__all__ = ["SCHEMA", "SCHEMA_VERSION", "EXTERNAL_FILES", "RunThreshold", "ExternalScore", "BusiScore",
           "ExternalDifference", "ExternalStudy", "evaluate_external", "load_external", "write_external"]

SCHEMA = "bcdet.external-study"
SCHEMA_VERSION = 1
EXTERNAL_FILES = ("external.json", "table.csv", "reliability.png", "devices.png", "README.md")  # what write_external writes
EXTERNAL_METRICS = ("auc", "sensitivity", "specificity", "predicted_normal", "ece")
DIFFERENCE_METRICS = ("auc", "sensitivity", "specificity")
N_BINS = 10
MALIGNANT, NORMAL = CLASSES.index("malignant"), CLASSES.index("normal")
P_COLS = [f"p_{c}" for c in CLASSES]
H_COLS = [f"p_{c}_hflip" for c in CLASSES]
_CHUNK = 128  # resamples scored at once (memory: _CHUNK x rows floats)

THRESHOLD_RULE = ("each run's own threshold: the highest p(malignant) that still finds {target:.0%} of the malignant "
                  "images of its BUSI validation part (final weights), carried over unchanged; never chosen on BUS-BRA")
ENSEMBLE_RULE = ("mean over all the arm's runs (partitions x folds x seeds) of the mean of plain and left-right "
                 "flipped probabilities; threshold: the mean of the members' thresholds, each chosen on its own "
                 "validation images with the same flip TTA (the members' validation images differ, so no "
                 "ensemble prediction of a validation image exists)")
RESAMPLED = ("two-way bootstrap: training replicates (fold partition x seed) and patients (BUS-BRA's Case; BUSI: "
             "near-duplicate groups) drawn independently with replacement; a patient's images move together")


# ------------------------------------------------------------------------------------ result types
@dataclass
class RunThreshold:
    """The operating point one run chose on its BUSI validation images (never on BUS-BRA)."""

    arm: str
    kind: str
    partition: int
    fold: int
    seed: int
    threshold: float  # on the plain p(malignant): the run's own rows of the pooled scores
    threshold_tta: float  # on the mean of plain and flipped: the run as an ensemble member
    n_val: int
    n_val_malignant: int


@dataclass
class ExternalScore:
    """One arm on BUS-BRA's lesion question: ``rows="pooled"`` every (run, image) prediction, each run at
    its own threshold; ``"ensemble_tta"`` one prediction per image (see the module doc). ``device``:
    ``"all"`` or one scanner."""

    arm: str
    kind: str
    rows: str
    device: str
    n_images: int
    n_patients: int
    n_benign: int
    n_malignant: int
    n_runs: int
    n_units: int  # training replicates (fold partition x seed)
    threshold: float  # pooled: the mean of the runs' own thresholds (each applies its own); ensemble: the one used
    auc: Interval
    sensitivity: Interval
    specificity: Interval
    predicted_normal: Interval
    ece: Interval
    reliability: list = field(default_factory=list)  # uncertainty.reliability bins of the malignant-or-not question


@dataclass
class BusiScore:
    """The same runs on their BUSI test folds (out-of-fold, pooled): malignant vs the rest."""

    arm: str
    kind: str
    n_images: int
    n_groups: int
    n_runs: int
    n_units: int
    auc: Interval
    sensitivity: Interval  # at the same thresholds as on BUS-BRA
    specificity: Interval


@dataclass
class ExternalDifference:
    """``a - b`` on BUS-BRA (pooled rows), paired: the runs both arms have, the same replicates and patients
    drawn for both in every resample."""

    a: str
    b: str
    question: str
    kind: str
    metric: str
    device: str
    a_value: float
    b_value: float
    difference: Interval
    n_runs: int  # runs per arm that enter (the common ones)
    n_units: int


@dataclass
class ExternalStudy:
    """Every arm of a study on BUS-BRA, beside its BUSI out-of-fold numbers (see the module doc)."""

    schema: str
    version: int
    profile: str | None
    study: str  # the study folder, as a record names it
    weights: str  # the weights rule: final weights
    target_sensitivity: float
    threshold_rule: str
    ensemble_rule: str
    resampled: str
    n_boot: int
    seed: int
    alpha: float
    min_device_images: int
    arms: list[str]
    kinds: list[str]
    n_images: int  # lesion images scored
    n_patients: int
    n_other: int  # images of the external predictions that are neither benign nor malignant (left out)
    devices: dict[str, int]  # lesion images per scanner
    devices_too_small: dict[str, int]  # those under min_device_images (no row of their own)
    thresholds: list[RunThreshold]
    scores: list[ExternalScore]
    busi: list[BusiScore]
    differences: list[ExternalDifference]
    citation: str = ""
    command: str = ""
    commit: str | None = None
    created_at: str = ""

    # ---- JSON (the one definition, as study.Study's)
    def to_dict(self) -> dict:
        from ..runinfo import jsonable

        return jsonable(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> ExternalStudy:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise BcdetError(f"Not a bcdet external result (schema "
                             f"{data.get('schema') if isinstance(data, dict) else None!r}, expected {SCHEMA!r}).")
        if data.get("version") != SCHEMA_VERSION:
            raise BcdetError(f"external.json has version {data.get('version')!r}; this bcdet reads version "
                             f"{SCHEMA_VERSION}. Run `bcdet external` on the study again to rewrite it.")
        try:
            return _build(cls, data, "external")
        except BcdetError as exc:
            raise BcdetError(str(exc).replace("study.json", "external.json", 1)) from None

    def save(self, path: str | Path) -> Path:
        from ..runinfo import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ExternalStudy:
        path = Path(path)
        path = path / "external.json" if path.is_dir() else path
        if not path.exists():
            raise BcdetError(f"No external result at {path}. Run `bcdet external --profile P` first.")
        return cls.from_dict(json.loads(path.read_text()))

    # ---- look-ups
    def score(self, arm: str, kind: str = "grouped", rows: str = "pooled", device: str = "all") -> ExternalScore:
        for s in self.scores:
            if (s.arm, s.kind, s.rows, s.device) == (arm, kind, rows, device):
                return s
        raise KeyError(f"no external score for arm={arm!r}, kind={kind!r}, rows={rows!r}, device={device!r}")

    def busi_score(self, arm: str, kind: str = "grouped") -> BusiScore:
        for s in self.busi:
            if (s.arm, s.kind) == (arm, kind):
                return s
        raise KeyError(f"no BUSI out-of-fold score for arm={arm!r}, kind={kind!r}")

    def difference(self, a: str, b: str, kind: str = "grouped", metric: str = "auc") -> ExternalDifference:
        for d in self.differences:
            if (d.a, d.b, d.kind, d.metric) == (a, b, kind, metric):
                return d
        raise KeyError(f"no external difference {a} - {b} for kind={kind!r}, metric={metric!r}")

    # ---- tables
    def table(self) -> pd.DataFrame:
        """One row per score (arm, kind, rows, device): each metric with its interval; on an arm's pooled
        row of the whole set, the BUSI out-of-fold numbers of the same runs beside it (``busi_*``)."""
        out = []
        for s in self.scores:
            row = {"arm": s.arm, "kind": s.kind, "rows": s.rows, "device": s.device, "images": s.n_images,
                   "patients": s.n_patients, "benign": s.n_benign, "malignant": s.n_malignant, "runs": s.n_runs,
                   "units": s.n_units, "threshold": s.threshold}
            for m in EXTERNAL_METRICS:
                iv = getattr(s, m)
                row |= {m: iv.value, f"{m}_low": iv.low, f"{m}_high": iv.high}
            busi = None
            if s.rows == "pooled" and s.device == "all":
                busi = next((b for b in self.busi if (b.arm, b.kind) == (s.arm, s.kind)), None)
            for m in ("auc", "sensitivity", "specificity"):
                iv = getattr(busi, m) if busi else None
                row |= {f"busi_{m}": iv.value if iv else math.nan, f"busi_{m}_low": iv.low if iv else math.nan,
                        f"busi_{m}_high": iv.high if iv else math.nan}
            out.append(row)
        return pd.DataFrame(out)

    def differences_table(self) -> pd.DataFrame:
        return pd.DataFrame([{"comparison": f"{d.a} - {d.b}", "question": d.question, "kind": d.kind,
                              "metric": d.metric, "device": d.device, "a": d.a_value, "b": d.b_value,
                              "difference": d.difference.value, "low": d.difference.low, "high": d.difference.high,
                              "runs": d.n_runs, "units": d.n_units} for d in self.differences])

    def thresholds_table(self) -> pd.DataFrame:
        return pd.DataFrame([dataclasses.asdict(t) for t in self.thresholds])

    def format(self) -> list[str]:
        """Lines for a person: each arm's whole-set BUS-BRA numbers beside its BUSI AUC, then the differences."""
        lines = []
        for s in self.scores:
            if s.device != "all":
                continue
            busi = next((b for b in self.busi if (b.arm, b.kind) == (s.arm, s.kind)), None)
            name = s.arm + (" (ensemble + flip)" if s.rows == "ensemble_tta" else "")
            lines.append(f"{name:>28} [{s.kind}]: BUS-BRA AUC {s.auc:.3f} | sensitivity {s.sensitivity:.3f} | "
                         f"specificity {s.specificity:.3f} | ECE {s.ece:.3f}"
                         + (f" | BUSI out-of-fold AUC {busi.auc:.3f}" if busi and s.rows == "pooled" else ""))
        for d in self.differences:
            lines.append(f"{d.a + ' - ' + d.b:>28} [{d.kind}]: {d.metric} {d.difference:+.3f}")
        return lines


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
    from ..data.busbra import read_busbra

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


# ------------------------------------------------------------------------------------ the bootstrap
def _codes_in(values, labels: np.ndarray) -> np.ndarray:
    """Each value's index in the sorted ``labels`` (all values must be among them)."""
    return np.searchsorted(labels, np.asarray(values))


def _rates(t: np.ndarray):
    """Sensitivity, specificity, predicted normal from summed ``[TP, FN, TN, FP, normal, n]``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"sensitivity": t[..., 0] / (t[..., 0] + t[..., 1]), "specificity": t[..., 2] / (t[..., 2] + t[..., 3]),
                "predicted_normal": t[..., 4] / t[..., 5]}


def _pooled_reps(y, p, normal, called, units, clusters, unit_labels, cluster_labels, *, n_boot: int, seed: int,
                 n_bins: int = N_BINS) -> dict:
    """``{metric: (point, replicates)}`` of rows that are (run, image) predictions, under the two-way draws of
    ``stats.two_way_counts(len(unit_labels), len(cluster_labels), n_boot, seed)`` -- the same labels and seed
    give the same draws, which pairs two arms. ``called``: each row at its own run's threshold (``None``: no
    threshold, sensitivity and specificity undefined).

    Everything but the AUC is a sum over rows of something times ``w[replicate] * c[patient]``, so it is
    :func:`~bcdet_helpers.stats.two_way_sums` of per-(replicate, patient) totals: the confusion counts, and
    for the ECE each reliability bin's ``correct - confidence``. The AUC pairs rows, so it is computed from
    the rows' weights, the negatives sorted by score once (:class:`_PairedAUC`)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, bool)
    p = np.asarray(p, float)
    u, g = _codes_in(units, unit_labels), _codes_in(clusters, cluster_labels)
    n_u, n_g = len(unit_labels), len(cluster_labels)
    w, c = stats.two_way_counts(n_u, n_g, n_boot, seed)
    has_t = called is not None
    called = np.asarray(called, bool) if has_t else np.zeros(len(y), bool)
    binary, yi = np.c_[1 - p, p], y.astype(int)
    conf = binary.max(1)
    gap = (binary.argmax(1) == yi) - conf  # correct - confidence, summed per reliability bin
    ece_cols = np.eye(n_bins)[confidence_bins(conf, n_bins)] * gap[:, None]
    cols = np.c_[np.c_[y & called, y & ~called, ~y & ~called, ~y & called, np.asarray(normal, bool),
                       np.ones(len(y), bool)].astype(float), ece_cols]
    m = np.zeros((n_u, n_g, cols.shape[1]))
    np.add.at(m, (u, g), cols)
    auc, paired_auc = np.empty(n_boot), _PairedAUC(y, p, u, g)
    wt, ct = np.ascontiguousarray(w.T, float), np.ascontiguousarray(c.T, float)
    totals = np.empty((n_boot, cols.shape[1]))
    for lo in range(0, n_boot, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        totals[sl] = stats.two_way_sums(m, w[sl], c[sl])
        auc[sl] = paired_auc(wt[:, sl], ct[:, sl])
    point, reps = _rates(m[..., :6].sum((0, 1))), _rates(totals[:, :6])
    out = {k: (float(point[k]), reps[k]) for k in point}
    if not has_t:
        out["sensitivity"] = out["specificity"] = (math.nan, np.full(n_boot, math.nan))
    out["auc"] = (float(roc_auc_score(yi, p)) if 0 < y.sum() < len(y) else math.nan, auc)
    out["ece"] = (expected_calibration_error(yi, binary, n_bins), np.abs(totals[:, 6:]).sum(1) / totals[:, 5])
    return out


class _PairedAUC:
    """Weighted AUC of fixed scores under many weightings, for rows whose weight is ``w[unit] * c[cluster]``.

    The Mann-Whitney form of :func:`bcdet_helpers.external._auc_replicates` (each positive's weight times
    the negative weight below it, ties a half): with the negatives sorted by score once and their weights
    cumulated (``C``, a zero row first), a positive at score ``s`` has ``C[left(s)]`` below it and
    ``C[right(s)] - C[left(s)]`` tied, so its term is ``(C[left] + C[right]) / 2`` -- cumulative sums and
    gathers only, in the ``(rows, resamples)`` layout where both run over contiguous memory."""

    def __init__(self, y, p, u, g):
        neg = np.flatnonzero(~y)
        neg = neg[np.argsort(p[neg], kind="mergesort")]
        pos = np.flatnonzero(y)
        self.u_neg, self.g_neg, self.u_pos, self.g_pos = u[neg], g[neg], u[pos], g[pos]
        self.left = np.searchsorted(p[neg], p[pos], side="left")
        self.right = np.searchsorted(p[neg], p[pos], side="right")

    def __call__(self, wt: np.ndarray, ct: np.ndarray) -> np.ndarray:
        """AUC per column of the unit weights ``wt`` ``(U, B)`` and cluster weights ``ct`` ``(G, B)``."""
        w_pos = wt[self.u_pos] * ct[self.g_pos]
        cum = np.zeros((len(self.u_neg) + 1, wt.shape[1]))
        np.cumsum(wt[self.u_neg] * ct[self.g_neg], axis=0, out=cum[1:])
        num = (w_pos * (cum[self.left] + cum[self.right])).sum(0) / 2
        den = w_pos.sum(0) * cum[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)


def _auc_rows(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted AUC per row of scores ``s`` and weights ``w`` (both ``(B, n)``; truth ``y`` ``(n,)``): each
    resample with its own scores (an ensemble of the drawn replicates). Ties count a half, as in
    ``roc_auc_score(y, s[b], sample_weight=w[b])``."""
    order = np.argsort(s, axis=1, kind="stable")
    ss, ws, ys = np.take_along_axis(s, order, 1), np.take_along_axis(w.astype(float), order, 1), y[order]
    pos, neg = ws * ys, ws * ~ys
    inclusive = np.cumsum(neg, axis=1)
    n = s.shape[1]
    idx = np.broadcast_to(np.arange(n), ss.shape)
    change = ss[:, 1:] != ss[:, :-1]
    first = np.ones(ss.shape, bool)
    first[:, 1:] = change
    last = np.ones(ss.shape, bool)
    last[:, :-1] = change
    start = np.maximum.accumulate(np.where(first, idx, 0), axis=1)  # first index of each tie block
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]  # its last index
    below = np.take_along_axis(inclusive - neg, start, 1)
    tied = np.take_along_axis(inclusive, end, 1) - below
    den = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (pos * (below + 0.5 * tied)).sum(1) / den, np.nan)


def _ece_rows(y: np.ndarray, s: np.ndarray, w: np.ndarray, n_bins: int) -> np.ndarray:
    """The malignant-or-not ECE per row of scores ``s`` and weights ``w`` (``(B, n)``), binned as
    :func:`~bcdet_helpers.uncertainty.reliability` bins ``[1 - s, s]``."""
    conf = np.maximum(s, 1 - s)
    correct = ((s > 1 - s) == y).astype(float)  # argmax of [1 - s, s] takes the first on a tie
    bins = confidence_bins(conf, n_bins)
    gap = np.zeros(len(s))
    for k in range(n_bins):
        gap += np.abs((w * (bins == k) * (correct - conf)).sum(1))
    return gap / w.sum(1)


def _ensemble_reps(y, proba, t_units, clusters, cluster_labels, *, n_boot: int, seed: int,
                   n_bins: int = N_BINS) -> dict:
    """``{metric: (point, replicates)}`` of the ensemble: ``proba`` ``(U, N, K)`` each training replicate's
    mean (flip-TTA) probabilities of the N images, ``t_units`` ``(U,)`` the mean of its runs' thresholds.
    Resample ``b`` is the ensemble of the drawn replicates (weights ``w[b]``) at the same mean of their
    thresholds, scored on the drawn patients; the point estimate is every replicate once."""
    y = np.asarray(y, bool)
    n_u = proba.shape[0]
    g = _codes_in(clusters, cluster_labels)
    w, c = stats.two_way_counts(n_u, len(cluster_labels), n_boot, seed)

    def score(wu: np.ndarray, wg: np.ndarray) -> dict:
        wn = wu / wu.sum(1, keepdims=True)
        pb = np.einsum("bu,unk->bnk", wn, proba)
        pm = pb[..., MALIGNANT]
        weights = wg[:, g].astype(float)
        tb = wn @ t_units
        called = pm >= tb[:, None]
        normal = pb.argmax(-1) == NORMAL
        with np.errstate(invalid="ignore", divide="ignore"):
            sens = (weights * (y & called)).sum(1) / (weights * y).sum(1)
            spec = (weights * (~y & ~called)).sum(1) / (weights * ~y).sum(1)
        if not np.isfinite(t_units).all():
            sens = spec = np.full(len(wu), np.nan)
        return {"auc": _auc_rows(y, pm, weights), "sensitivity": sens, "specificity": spec,
                "predicted_normal": (weights * normal).sum(1) / weights.sum(1), "ece": _ece_rows(y, pm, weights, n_bins)}

    point = score(np.ones((1, n_u)), np.ones((1, len(cluster_labels))))
    parts = [score(w[lo:lo + _CHUNK], c[lo:lo + _CHUNK]) for lo in range(0, n_boot, _CHUNK)]
    return {k: (float(point[k][0]), np.concatenate([p[k] for p in parts])) for k in point}


def _intervals(reps: dict, alpha: float) -> dict[str, Interval]:
    return {k: stats._interval(v, r, alpha) for k, (v, r) in reps.items()}


# ------------------------------------------------------------------------------------ evaluation
def evaluate_external(study_folder: str | Path, busbra=None, *, n_boot: int | None = None, seed: int = 0,
                      alpha: float = 0.05, min_device_images: int = MIN_DEVICE_IMAGES, comparisons=COMPARISONS,
                      target_sensitivity: float = OPERATING_SENSITIVITY) -> ExternalStudy:
    """The :class:`ExternalStudy` of a study folder from its files alone (``external/``, ``val/``, ``oof/``,
    ``design.json``) and BUS-BRA's table (``busbra``: a folder, the table of
    :func:`~bcdet_helpers.data.busbra.read_busbra`, or ``None`` for ``$BCDET_BUSBRA`` / ``data/BUS-BRA``).
    No model is loaded and no image read. ``n_boot`` defaults to the study profile's ``bootstrap``."""
    from ..busbra import BUSBRA
    from ..profiles import DEFAULTS, get_profile
    from ..runinfo import git_commit
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


# ------------------------------------------------------------------------------------ the record
def write_external(folder: str | Path, out: str | Path, *, command: str = "", profile: str | None = None,
                   force: bool = False, busbra=None, **kw) -> ExternalStudy:
    """:func:`evaluate_external` of ``folder`` written to ``out``: ``external.json``, ``table.csv``,
    ``reliability.png``, ``devices.png`` and a ``README.md`` written from them.

    Refused, before any work, when ``profile`` is given and the study ran under another one, and when
    ``out`` is a folder this did not write or holds committed records, unless ``force``
    (:func:`~bcdet_helpers.outputs.claim`), as :func:`~bcdet_helpers.study.write_ladder`."""
    from ..outputs import claim, mark
    from .ladder import study_profile

    ran = study_profile(folder)
    if profile is not None and ran != profile:
        fix = f"--study with a {profile!r} study (e.g. results/{profile}-cv)"
        raise BcdetError(f"{folder} is a study of the {ran!r} profile, not {profile!r}: pass --profile {ran}, or {fix}."
                         if ran else f"{Path(folder) / 'design.json'} names no profile, so the study cannot be checked "
                         f"against --profile {profile}: pass {fix}.")
    out = Path(out)
    ours = claim(out, force=force, names=EXTERNAL_FILES)
    result = evaluate_external(folder, busbra, **kw)
    result.command = command
    out.mkdir(parents=True, exist_ok=True)
    if ours:  # a folder forced open keeps what else it holds, so it stays unmarked
        mark(out, command or "bcdet_helpers.study.external_eval.write_external")
    result.save(out / "external.json")
    result.table().to_csv(out / "table.csv", index=False)
    kind = "grouped" if "grouped" in result.kinds else result.kinds[0]
    for name, fig in (("reliability", reliability_figure(result, kind)), ("devices", devices_figure(result, kind))):
        fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
    (out / "README.md").write_text(external_readme(result))
    return result


def _arm_label(s) -> str:
    return s.arm + (" (ensemble + flip)" if s.rows == "ensemble_tta" else "")


def reliability_figure(result: ExternalStudy, kind: str = "grouped"):
    """Reliability of the malignant-or-not question on BUS-BRA, one line per arm (pooled) and its ensemble."""
    from matplotlib.figure import Figure  # no pyplot: nothing global to close, shown once in Jupyter

    fig = Figure(figsize=(10, 4.6))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, rows in zip(axes, ("pooled", "ensemble_tta")):
        ax.plot([0.5, 1], [0.5, 1], color="grey", lw=1, ls="--", label="calibrated")
        for s in result.scores:
            if (s.kind, s.rows, s.device) != (kind, rows, "all"):
                continue
            bins = [b for b in s.reliability if b["count"]]
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                    label=f"{s.arm} (ECE {s.ece.value:.3f})")
        ax.set(xlabel="confidence (malignant or not)", title="every run" if rows == "pooled" else "ensemble + flip TTA",
               xlim=(0.45, 1.02), ylim=(0, 1.02))
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("accuracy")
    fig.suptitle(f"BUS-BRA calibration ({kind} split's runs)")
    fig.tight_layout()
    return fig


def devices_figure(result: ExternalStudy, kind: str = "grouped"):
    """AUC and sensitivity per scanner (and the whole set) with 95 % intervals, one marker per arm; the
    arm's BUSI out-of-fold AUC as a hollow marker at the left."""
    from matplotlib.figure import Figure

    places = ["BUSI (out-of-fold)", "all", *[d for d in result.devices if d not in result.devices_too_small]]
    arms = [a for a in result.arms if any(s.arm == a and s.kind == kind for s in result.scores)]
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2)
    width = 0.8 / max(len(arms), 1)
    for ax, metric in zip(axes, ("auc", "sensitivity")):
        for i, arm in enumerate(arms):
            xs, vals, lows, highs = [], [], [], []
            for j, place in enumerate(places):
                if place.startswith("BUSI"):
                    try:
                        iv = getattr(result.busi_score(arm, kind), metric)
                    except KeyError:
                        continue
                else:
                    iv = getattr(result.score(arm, kind, "pooled", place), metric)
                xs.append(j - 0.4 + width * (i + 0.5))
                vals.append(iv.value)
                lows.append(iv.value - iv.low if math.isfinite(iv.low) else 0)
                highs.append(iv.high - iv.value if math.isfinite(iv.high) else 0)
            ax.errorbar(xs, vals, yerr=[lows, highs], fmt="o", capsize=3, label=arm)
        ax.set_xticks(range(len(places)), places, rotation=20, ha="right")
        ax.axvline(0.5, color="grey", lw=0.8)
        ax.set(ylabel=metric, title={"auc": "AUC of p(malignant)",
                                     "sensitivity": "malignant sensitivity at the carried-over threshold"}[metric])
    axes[0].legend(fontsize=8)
    fig.suptitle(f"BUS-BRA per scanner, every run pooled ({kind} split); 95 % intervals resample patients and seeds")
    fig.tight_layout()
    return fig


def external_readme(result: ExternalStudy) -> str:
    """The record's README: its tables written from :class:`ExternalStudy`, never by hand."""
    def iv(x: Interval, pct: bool = False) -> str:
        if not math.isfinite(x.value):
            return "–"
        f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
        return f"{f(x.value)} [{f(x.low)}, {f(x.high)}]" if math.isfinite(x.low) else f(x.value)

    kind = "grouped" if "grouped" in result.kinds else result.kinds[0]
    main = []
    for s in result.scores:
        if s.kind != kind or s.device != "all":
            continue
        busi = next((b for b in result.busi if (b.arm, b.kind) == (s.arm, s.kind)), None) if s.rows == "pooled" else None
        main.append(f"| {_arm_label(s)} | {s.n_runs} | {iv(busi.auc) if busi else ''} | {iv(s.auc)} | "
                    f"{iv(s.sensitivity, True)} | {iv(s.specificity, True)} | {iv(s.ece)} | {iv(s.predicted_normal, True)} |")
    per_device = [f"| {s.arm} | {s.device} | {s.n_images} | {s.n_patients} | {iv(s.auc)} | {iv(s.sensitivity, True)} | "
                  f"{iv(s.specificity, True)} | {iv(s.ece)} |"
                  for s in result.scores if s.kind == kind and s.rows == "pooled" and s.device != "all"]
    diffs = [f"| {d.a} - {d.b} | {d.question} | {d.metric} | {d.a_value:.3f} | {d.b_value:.3f} | {iv(d.difference)} |"
             for d in result.differences if d.kind == kind]
    small = ", ".join(f"{k} ({v})" for k, v in result.devices_too_small.items())
    other = [k for k in result.kinds if k != kind]
    also = f"\n`table.csv` and `external.json` also hold the runs of the {', '.join(other)} split.\n" if other else ""
    nl = "\n"
    return f"""# BUS-BRA: the `{result.profile}` study's arms on another hospital's images

Every run of the cross-validated study (`{result.study}/`) predicted every BUS-BRA image with its final weights
right after its test fold (`external/`). This record scores them on the lesion question -- is this lesion
malignant? -- beside the BUSI out-of-fold numbers of the same runs. Written from the study's files and BUS-BRA's
table alone (no model, no image) by

```bash
{result.command}
```

at commit `{result.commit}`, {result.created_at}. {result.n_images} lesion images of {result.n_patients} patients
({', '.join(f'{k}: {v}' for k, v in result.devices.items())}).

- **threshold**: {result.threshold_rule}.
- **ensemble + flip**: {result.ensemble_rule}.
- **intervals** ({100 * (1 - result.alpha):.0f} %, {result.n_boot} resamples): {result.resampled}.

## {kind} split: every arm, whole set

AUC of p(malignant) (BUSI: malignant vs benign and normal, out-of-fold; BUS-BRA: malignant vs benign);
sensitivity, specificity and the share predicted normal in %; ECE of the malignant-or-not question.

| arm | runs | BUSI out-of-fold AUC | BUS-BRA AUC | sensitivity | specificity | ECE | predicted normal |
| --- | ---: | --- | --- | --- | --- | --- | --- |
{nl.join(main)}

## Per scanner (every run pooled)

Scanners with at least {result.min_device_images} lesion images{f'; too few for a row: {small}' if small else ''}.

| arm | scanner | images | patients | AUC | sensitivity | specificity | ECE |
| --- | --- | ---: | ---: | --- | --- | --- | --- |
{nl.join(per_device) if per_device else '| (no scanner with enough images) | | | | | | | |'}

![per scanner](devices.png)

## Paired differences on BUS-BRA

The runs both arms have; every resample draws the same training replicates and patients for both.

| comparison | question | metric | a | b | a - b [95 % CI] |
| --- | --- | --- | ---: | ---: | --- |
{nl.join(diffs) if diffs else '| (no comparison of the study has both arms) | | | | | |'}

![calibration](reliability.png)
{also}
BUS-BRA: {result.citation}.
"""
