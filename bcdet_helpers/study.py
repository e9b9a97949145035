"""The cross-validated study: runs -> out-of-fold predictions -> one typed, versioned result.

This module *is* the study of notebook 05, ``bcdet reproduce`` and ``publish``; the notebook only
shows what it returns. Three steps, each leaving files in one folder (``runs/<profile>/cv/`` by
default; ``results/<profile>-cv/`` when committed):

1. :func:`write_folds` -- ``folds.csv``: every image's fold for each split kind, its near-duplicate
   group and whether it is a label conflict. ``grouped`` is scikit-learn's ``StratifiedGroupKFold``
   over the near-duplicate groups, ``random`` an image-level ``StratifiedKFold`` (what most BUSI
   papers do). Deterministic in the profile's ``fold_seed``; every image is a test image exactly
   once per seed.
2. :func:`run_study` -- trains (or loads) every (arm, kind, fold, seed) with
   :func:`~bcdet_helpers.train.train_run` and writes, per run, ``oof/<arm>-<kind>-fold<f>-seed<s>.csv``
   (the run's test images) and ``val/<same>.csv`` (its validation images): one row per image and
   weights rule, columns :data:`PREDICTION_COLUMNS` -- class probabilities plain and with the
   image flipped left-right. ``runs.csv`` holds each run's sizes and times, ``design.json`` what
   was asked for. Then it calls step 3.
3. :func:`evaluate_study` -- reads only those files (no model, no images) and returns a
   :class:`Study`: per-arm pooled out-of-fold metrics with 95 % CIs from a bootstrap over
   near-duplicate groups, paired differences per (fold, seed) with the Nadeau-Bengio corrected
   t-test plus a group-clustered paired bootstrap CI, the smallest difference the design could
   detect, a seed-ensemble + flip-TTA row, the leak-free vs leaky gap, the label conflicts, and
   the validation-data check of the weights rule. ``Study.save`` writes ``study.json``;
   :meth:`Study.load` / :func:`from_json` read it back into the same dataclasses.

The JSON form is defined here and only here: it is ``dataclasses.asdict`` of :class:`Study`
(NaN written as ``null``), tagged with :data:`SCHEMA` and :data:`SCHEMA_VERSION`. Reading checks
the tag and every field -- a missing or unknown key is an error, never a silent default -- so a
change to the format means a new version number.

The weights rule
----------------
Every run keeps two sets of weights: ``last.pt`` (the end of training) and ``best.pt`` (the epoch
with the best validation macro-F1). The study scores :data:`WEIGHTS_RULE` = ``"last"``: the tuning
objective already scores the end of training, and picking the maximum of a noisy validation curve
on ~100 images selects noise (issue #14 found best-validation minus test at +11.9 points). The
alternative is recorded beside it (every score, difference and run carries a ``weights`` field),
and :attr:`Study.weights_checks` (:func:`compare_weights`) compares the two on each run's *validation* images -- where
``best`` is favoured, having been chosen on those very images, so "best is no better than last
even there" is a strong argument for the rule.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .errors import BcdetError
from .paths import CLASSES, runs_dir
from .profiles import DEFAULTS, KINDS, Profile, get_profile
from .stats import CorrectedTTest, Interval

__all__ = [
    "COMPARISONS",
    "PAPER_CLAIM",
    "PREDICTION_COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "WEIGHTS",
    "WEIGHTS_RULE",
    "ArmScore",
    "Conflict",
    "Coverage",
    "Difference",
    "LeakageGap",
    "RunScore",
    "Study",
    "WeightsCheck",
    "compare_weights",
    "evaluate_study",
    "from_json",
    "label_conflicts",
    "load_predictions",
    "load_study",
    "predict_run",
    "read_folds",
    "run_study",
    "study_dir",
    "study_index",
    "to_json",
    "write_folds",
]

SCHEMA = "bcdet.study"
SCHEMA_VERSION = 1
WEIGHTS = ("last", "best")  # last.pt: final weights (the rule); best.pt: best-by-validation (recorded)
WEIGHTS_RULE = "last"
# (a, b, the question a - b answers): the 2 x 2 of the arms, and the paper's claim
COMPARISONS = (
    ("switching", "decay", "the optimizer switch"),
    ("decay", "constant", "annealing the rate"),
    ("switching", "constant", "the paper's claim"),
    ("onecycle", "constant", "a modern schedule"),
)
PAPER_CLAIM = 0.09  # ~90 % vs ~81 %: the difference the paper reports, switching - constant
METRICS = ("accuracy", "macro_f1")
PROBA_DECIMALS = 5  # probabilities in the prediction CSVs (keeps results/<profile>-cv/ small)
PREDICTION_COLUMNS = (
    ["file", "label", "y", "group", "kind", "fold", "seed", "arm", "weights", "epoch", "part"]
    + [f"p_{c}" for c in CLASSES] + [f"p_{c}_hflip" for c in CLASSES] + ["pred"]
)
RUN_COLUMNS = ["arm", "kind", "fold", "seed", "n_train", "n_val", "n_test", "epochs", "best_epoch",
               "max_phase_ratio", "wall_time_s", "seconds_per_epoch", "run"]


# ------------------------------------------------------------------------------------ result types
@dataclass
class Conflict:
    """An image whose near-duplicates carry another label (e.g. ``benign (433).png`` is
    byte-identical to ``malignant (145).png``): no model can be right on both."""

    file: str
    label: str
    group: int
    other_labels: list[str]


@dataclass
class Coverage:
    """Out-of-fold predictions of one (arm, kind, weights, seed): complete when every image of the
    study has exactly one."""

    arm: str
    kind: str
    weights: str
    seed: int
    folds: list[int]
    images: int  # images in the study
    predicted: int  # distinct images with a prediction
    duplicates: int  # images predicted more than once (should be 0)
    complete: bool


@dataclass
class ArmScore:
    """Pooled out-of-fold metrics of one arm: ``rows="pooled"`` scores every (image, seed)
    prediction; ``rows="ensemble_tta"`` one prediction per image, the mean probabilities over the
    seeds of the image and its left-right flip. CIs resample near-duplicate groups;
    ``accuracy_image_level`` is the ordinary image-level bootstrap, for contrast."""

    arm: str
    kind: str
    weights: str
    rows: str  # "pooled" | "ensemble_tta"
    n_images: int
    n_seeds: int
    n_predictions: int
    n_groups: int
    accuracy: Interval
    macro_f1: Interval
    recall: dict[str, Interval]
    accuracy_image_level: Interval


@dataclass
class RunScore:
    """One (arm, kind, fold, seed) run under one weights rule: its test fold and its validation part."""

    arm: str
    kind: str
    fold: int
    seed: int
    weights: str
    epoch: int  # the epoch the weights come from
    n_train: int
    n_test: int  # scored test images (label conflicts excluded unless included)
    accuracy: float
    macro_f1: float
    val_accuracy: float
    val_macro_f1: float


@dataclass
class Difference:
    """``a - b`` on one metric and split kind, paired on the same folds, seeds and images.

    ``pooled``: the pooled out-of-fold difference with a paired bootstrap over near-duplicate
    groups (``image_level``: the same, resampling images -- too narrow). ``test``: the
    Nadeau-Bengio corrected t-test over the per-(fold, seed) differences ``per_run``.
    ``detectable``: the smallest true difference that test would detect at 80 % power and alpha
    0.05; ``detectable_bootstrap``: the same from the bootstrap's standard error.
    ``power_at_claim``: the test's power against the paper's +9 points."""

    a: str
    b: str
    question: str
    kind: str
    weights: str
    metric: str
    pooled: Interval
    image_level: Interval
    per_run: list[float]
    runs: list[list[int]]  # the (fold, seed) of each per_run value
    test: CorrectedTTest
    detectable: float
    detectable_bootstrap: float
    power_at_claim: float


@dataclass
class LeakageGap:
    """Leaky (random split) minus leak-free (grouped split) for one arm: how much a split that
    scatters copies of a scan over train and test flatters the score."""

    arm: str
    weights: str
    metric: str
    grouped: float
    random: float
    gap: Interval  # random - grouped, paired bootstrap over near-duplicate groups
    seeds: list[int]


@dataclass
class WeightsCheck:
    """Final weights (``last``) against best-by-validation (``best``) on the runs' validation images.

    ``best`` was *chosen* on these images, so its numbers here are optimistic; if it still does not
    beat ``last``, the final weights lose nothing."""

    arm: str
    kind: str
    n_runs: int
    last_val_accuracy: float
    best_val_accuracy: float
    last_val_macro_f1: float
    best_val_macro_f1: float
    mean_difference: float  # best - last, validation accuracy, mean over runs
    sd_difference: float
    best_better: int  # runs where best's validation accuracy is higher
    last_better: int
    mean_best_epoch: float
    epochs: int


@dataclass
class Study:
    """Everything the verdict needs, in one typed object (see the module doc for the JSON form)."""

    schema: str
    version: int
    profile: str
    weights: str  # the weights rule the headline numbers use
    include_conflicts: bool
    classes: list[str]
    arms: list[str]
    kinds: list[str]
    seeds: dict[str, list[int]]  # per kind
    folds: dict[str, int]  # number of folds per kind
    n_images: int
    n_scored: int  # images scored (n_images less the excluded label conflicts)
    n_boot: int
    alpha: float
    claim: float
    conflicts: list[Conflict]
    coverage: list[Coverage]
    scores: list[ArmScore]
    runs: list[RunScore]
    differences: list[Difference]
    leakage: list[LeakageGap]
    weights_checks: list[WeightsCheck]
    commit: str | None = None
    created_at: str = ""
    design: dict = field(default_factory=dict)  # design.json: what run_study was asked to run

    # ---- JSON (the one definition)
    def to_dict(self) -> dict:
        from .runinfo import jsonable

        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> Study:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise BcdetError(f"Not a bcdet study result (schema {data.get('schema') if isinstance(data, dict) else None!r}, "
                             f"expected {SCHEMA!r}).")
        if data.get("version") != SCHEMA_VERSION:
            raise BcdetError(f"study.json has version {data.get('version')!r}; this bcdet reads version "
                             f"{SCHEMA_VERSION}. Re-run evaluate_study on the study folder to rewrite it.")
        return _build(cls, data, "study")

    def save(self, path: str | Path) -> Path:
        from .runinfo import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Study:
        path = Path(path)
        if path.is_dir():
            path = path / "study.json"
        if not path.exists():
            raise BcdetError(f"No study result at {path}. Run run_study(...) (or evaluate_study on its folder).")
        return cls.from_dict(json.loads(path.read_text()))

    # ---- look-ups
    @property
    def complete(self) -> bool:
        """Every (arm, kind, weights, seed) has exactly one prediction per image."""
        return bool(self.coverage) and all(c.complete for c in self.coverage)

    def score(self, arm: str, kind: str = "grouped", rows: str = "pooled", weights: str | None = None) -> ArmScore:
        weights = weights or self.weights
        for s in self.scores:
            if (s.arm, s.kind, s.rows, s.weights) == (arm, kind, rows, weights):
                return s
        raise KeyError(f"no score for arm={arm!r}, kind={kind!r}, rows={rows!r}, weights={weights!r}")

    def difference(self, a: str, b: str, kind: str = "grouped", metric: str = "accuracy",
                   weights: str | None = None) -> Difference:
        weights = weights or self.weights
        for d in self.differences:
            if (d.a, d.b, d.kind, d.metric, d.weights) == (a, b, kind, metric, weights):
                return d
        raise KeyError(f"no difference {a} - {b} for kind={kind!r}, metric={metric!r}, weights={weights!r}")

    # ---- tables for the notebook and the report
    def scores_table(self, weights: str | None = None) -> pd.DataFrame:
        weights = weights or self.weights
        rows = []
        for s in self.scores:
            if s.weights != weights:
                continue
            row = {"arm": s.arm, "kind": s.kind, "rows": s.rows, "images": s.n_images, "seeds": s.n_seeds,
                   "accuracy": s.accuracy.value, "acc_low": s.accuracy.low, "acc_high": s.accuracy.high,
                   "acc_low_image_level": s.accuracy_image_level.low,
                   "acc_high_image_level": s.accuracy_image_level.high,
                   "macro_f1": s.macro_f1.value, "f1_low": s.macro_f1.low, "f1_high": s.macro_f1.high}
            row |= {f"recall_{c}": iv.value for c, iv in s.recall.items()}
            rows.append(row)
        return pd.DataFrame(rows)

    def differences_table(self, metric: str = "accuracy", weights: str | None = None) -> pd.DataFrame:
        weights = weights or self.weights
        rows = []
        for d in self.differences:
            if d.metric != metric or d.weights != weights:
                continue
            rows.append({"comparison": f"{d.a} - {d.b}", "question": d.question, "kind": d.kind,
                         "difference": d.pooled.value, "low": d.pooled.low, "high": d.pooled.high,
                         "half_width": d.pooled.half_width, "image_level_low": d.image_level.low,
                         "image_level_high": d.image_level.high, "runs": d.test.n, "nb_mean": d.test.mean,
                         "nb_low": d.test.low, "nb_high": d.test.high, "nb_t": d.test.t, "nb_p": d.test.p,
                         "detectable": d.detectable, "detectable_bootstrap": d.detectable_bootstrap,
                         "power_at_claim": d.power_at_claim})
        return pd.DataFrame(rows)

    def runs_table(self) -> pd.DataFrame:
        return pd.DataFrame([dataclasses.asdict(r) for r in self.runs])

    def leakage_table(self, weights: str | None = None) -> pd.DataFrame:
        weights = weights or self.weights
        return pd.DataFrame([{"arm": g.arm, "metric": g.metric, "grouped": g.grouped, "random": g.random,
                              "gap": g.gap.value, "low": g.gap.low, "high": g.gap.high}
                             for g in self.leakage if g.weights == weights])

    def conflicts_table(self) -> pd.DataFrame:
        return pd.DataFrame([{**dataclasses.asdict(c), "other_labels": ", ".join(c.other_labels)}
                             for c in self.conflicts], columns=["file", "label", "group", "other_labels"])

    def weights_table(self) -> pd.DataFrame:
        return pd.DataFrame([dataclasses.asdict(w) for w in self.weights_checks])

    def summary(self, kind: str = "grouped") -> list[str]:
        """Plain-words lines for a report: each paired difference with its clustered CI, the
        corrected test and what the design can detect."""
        pts = lambda v: f"{100 * v:+.1f}"
        conflicts = "included" if self.include_conflicts else "excluded"
        head = (f"{self.profile}: {len(self.arms)} arms x {self.folds.get(kind, '?')} folds x "
                f"{len(self.seeds.get(kind, []))} seeds ({kind} split), {self.n_scored} of {self.n_images} images "
                f"scored ({len(self.conflicts)} label conflicts {conflicts}), weights: {self.weights}.")
        out = [head]
        for d in self.differences:
            if d.kind != kind or d.metric != "accuracy" or d.weights != self.weights:
                continue
            out.append(f"{d.a} - {d.b} ({d.question}): {pts(d.pooled.value)} points, 95% CI "
                       f"[{pts(d.pooled.low)}, {pts(d.pooled.high)}] (bootstrap over near-duplicate groups); "
                       f"corrected t-test over {d.test.n} (fold, seed) pairs: t = {d.test.t:.2f}, p = {d.test.p:.3f}; "
                       f"smallest detectable difference {100 * d.detectable:.1f} points "
                       f"(power {100 * d.power_at_claim:.0f}% at the paper's +{100 * self.claim:.0f}).")
        return out


# ------------------------------------------------------------------- typed decoding (from_dict)
def _build(tp, value, where: str):
    """``value`` (plain JSON) as type ``tp``: dataclasses field by field, lists, dicts, optionals;
    ``null`` for a float is NaN (written so by :func:`runinfo.jsonable`)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [t for t in options if t is not type(None)]
        return _build(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise BcdetError(f"study.json: {where} should be an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        required = {f.name for f in dataclasses.fields(tp)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        unknown, missing = set(value) - names, required - set(value)
        if unknown or missing:
            raise BcdetError(f"study.json: {where} ({tp.__name__}) has unknown keys {sorted(unknown)} and lacks "
                             f"{sorted(missing)} -- written by another version of bcdet?")
        return tp(**{k: _build(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    if origin is list:
        (inner,) = typing.get_args(tp) or (typing.Any,)
        return [_build(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, inner = typing.get_args(tp) or (str, typing.Any)
        return {str(k): _build(inner, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        return math.nan if value is None else float(value)
    if tp is int:
        return int(value)
    if tp is bool:
        return bool(value)
    if tp is str:
        return str(value)
    return value  # dict / Any


def to_json(study: Study) -> str:
    """The study as strict JSON text (the one format; see :data:`SCHEMA_VERSION`)."""
    return json.dumps(study.to_dict(), indent=2, allow_nan=False) + "\n"


def from_json(text: str | bytes) -> Study:
    """A :class:`Study` from :func:`to_json`'s text (schema and version checked)."""
    return Study.from_dict(json.loads(text))


def load_study(path: str | Path) -> Study:
    """``study.json`` (or the folder holding it) as a :class:`Study`."""
    return Study.load(path)


# ------------------------------------------------------------------------------ folds + conflicts
def study_dir(profile: str | Profile) -> Path:
    """``runs/<profile>/cv``: where :func:`run_study` keeps its files by default."""
    return runs_dir(get_profile(profile).name) / "cv"


def study_index(profile: str | Profile, root=None) -> pd.DataFrame:
    """The images of the study (the profile's subset of the index) with ``file``, ``label``,
    ``y``, ``group`` and ``conflict``, in index order -- the rows :func:`data.split.make_split`
    assigns folds to."""
    from .data.dataset import select_subset
    from .data.index import load_index

    prof = get_profile(profile)
    index = select_subset(load_index(root, full=True)["index"], prof.max_per_class).reset_index(drop=True)
    out = index[["file", "label", "y", "group"]].copy()
    conflicts = label_conflicts(out)
    out["conflict"] = out["file"].isin(conflicts["file"])
    return out


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


def write_folds(profile: str | Profile, kinds=None, out: str | Path | None = None, root=None) -> Path:
    """``folds.csv`` in ``out`` (default :func:`study_dir`): one row per (kind, image) with
    ``kind, fold, file, label, y, group, conflict``. The folds are
    :func:`data.split.assign_folds` with the profile's ``folds`` and ``fold_seed`` -- the very
    assignment every run's test part comes from (checked when its predictions are written)."""
    from .data.split import assign_folds

    prof = get_profile(profile)
    kinds = _kinds(kinds, prof)
    index = study_index(prof, root)
    frames = []
    for kind in kinds:
        f = index.copy()
        f.insert(0, "fold", assign_folds(index, kind, prof.folds, prof.fold_seed))
        f.insert(0, "kind", kind)
        frames.append(f)
    out = Path(out) if out is not None else study_dir(prof)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "folds.csv"
    table = pd.concat(frames, ignore_index=True)
    if path.exists():  # keep the folds of kinds not asked for this time
        old = pd.read_csv(path)
        table = pd.concat([old[~old["kind"].isin(kinds)], table], ignore_index=True)
    table.to_csv(path, index=False)
    return path


def read_folds(folder: str | Path) -> pd.DataFrame:
    path = Path(folder) / "folds.csv"
    if not path.exists():
        raise BcdetError(f"{path} is missing: run write_folds / run_study for this study first.")
    return pd.read_csv(path)


def _kinds(kinds, prof: Profile) -> list[str]:
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or prof.splits)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise BcdetError(f"Unknown split kind(s) {bad}. Choose from {', '.join(KINDS)}.")
    return kinds


# ------------------------------------------------------------------------------------ predictions
def _run_name(arm: str, kind: str, fold: int, seed: int) -> str:
    return f"{arm}-{kind}-fold{fold}-seed{seed}"


def predict_run(run_dir: str | Path, data, device="cpu", groups: dict | None = None) -> dict[str, pd.DataFrame]:
    """The predictions of one finished run on its test and validation images, for both weights
    (``last.pt``, ``best.pt``), plain and flipped left-right: ``{"test": df, "val": df}`` with
    :data:`PREDICTION_COLUMNS`. ``data`` is the run's :class:`SplitData`."""
    import torch

    from .evaluate import predict_proba
    from .train import load_checkpoint

    run_dir = Path(run_dir)
    parts = ("test", "val")
    xs = [data.part(part) for part in parts]
    x = torch.cat([xi for xi, _ in xs])
    batch = torch.cat([x, torch.flip(x, dims=[-1])])  # plain and flipped left-right, one pass
    out = {part: [] for part in parts}
    for weights in WEIGHTS:
        model, meta = load_checkpoint(run_dir / f"{weights}.pt", device=device)
        epoch = meta.get("epoch") if weights == "last" else meta.get("best_epoch")
        proba = predict_proba(model, batch, meta["mean"], meta["std"], device=device)
        plain, flipped = proba[: len(x)], proba[len(x):]
        start = 0
        for part, (_, y) in zip(parts, xs):
            # rounded once, here: the CSV is the record, and `pred` is the arg-max of what it holds
            p = np.round(plain[start:start + len(y)], PROBA_DECIMALS)
            pf = np.round(flipped[start:start + len(y)], PROBA_DECIMALS)
            start += len(y)
            files = data.files_of(part)
            df = pd.DataFrame({
                "file": files, "label": [CLASSES[int(k)] for k in y], "y": y.numpy().astype(int),
                "group": [(groups or {}).get(f, -1) for f in files], "kind": data.kind, "fold": data.fold,
                "seed": data.seed, "arm": meta["schedule"], "weights": weights, "epoch": epoch, "part": part,
            })
            for k, c in enumerate(CLASSES):
                df[f"p_{c}"] = p[:, k]
            for k, c in enumerate(CLASSES):
                df[f"p_{c}_hflip"] = pf[:, k]
            df["pred"] = [CLASSES[int(k)] for k in p.argmax(1)]
            out[part].append(df)
    return {part: pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS] for part, frames in out.items()}


def _seeds_by_kind(seeds, kinds, prof: Profile) -> dict[str, list[int]]:
    if seeds is None:
        return {k: list(prof.seeds) for k in kinds}
    if isinstance(seeds, dict):
        return {k: list(seeds.get(k, prof.seeds)) for k in kinds}
    if isinstance(seeds, int):
        seeds = [seeds]
    return {k: list(seeds) for k in kinds}


def run_study(profile: str | Profile, arms=None, kinds=None, seeds=None, folds=None, *, device="auto",
              resume: bool = True, include_conflicts: bool = False, out: str | Path | None = None,
              progress: bool = True, n_boot: int | None = None) -> Study:
    """Train (or load) every (arm, kind, fold, seed), write its predictions, and evaluate.

    ``arms`` / ``kinds`` default to the profile's ``schedules`` / ``splits``; ``seeds`` to its
    ``seeds`` -- a list for every kind, or ``{"grouped": [0, 1, 2], "random": [0]}`` (the random
    split only measures the leakage gap and may use fewer); ``folds`` to all of them (a subset
    gives a partial study: :attr:`Study.complete` is then False). Runs live in their usual
    folders (:func:`train.run_dir_for`), so finished runs are loaded, not retrained, and
    ``resume=True`` continues an interrupted one. A simple sequential loop: kind, seed, fold, arm.
    Returns :func:`evaluate_study`'s result and saves it as ``study.json`` in ``out``.
    """
    from .data import load_split_data
    from .runinfo import git_commit, write_json
    from .train import choose_device, train_run

    try:
        prof = get_profile(profile)
    except ValueError as exc:
        raise BcdetError(str(exc)) from None
    arms = [arms] if isinstance(arms, str) else list(arms or prof.schedules)
    kinds = _kinds(kinds, prof)
    seeds_of = _seeds_by_kind(seeds, kinds, prof)
    out = Path(out) if out is not None else study_dir(prof)
    write_folds(prof, kinds, out)
    table = read_folds(out)
    groups = dict(zip(table["file"], table["group"].astype(int)))
    dev = choose_device(device)
    # design.json: the profile, and every call that added runs to this folder (a study may be run in
    # pieces, e.g. the random split with fewer seeds); "arms" orders the arms of the result
    design_path = out / "design.json"
    calls = json.loads(design_path.read_text()).get("calls", []) if design_path.exists() else []
    calls.append({"arms": arms, "kinds": kinds, "seeds": seeds_of, "folds": None if folds is None else list(folds),
                  "include_conflicts": include_conflicts, "device": str(dev), "commit": git_commit(),
                  "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    write_json(design_path, {"profile": prof.to_dict(), "weights_rule": WEIGHTS_RULE,
                             "arms": list(dict.fromkeys(a for c in calls for a in c["arms"])), "calls": calls})
    (out / "oof").mkdir(exist_ok=True)
    (out / "val").mkdir(exist_ok=True)
    run_rows = []
    for kind in kinds:
        fold_of = table[table["kind"] == kind].set_index("file")["fold"]
        n_folds = int(fold_of.max()) + 1
        fold_list = list(range(n_folds)) if folds is None else [f for f in folds if f < n_folds]
        for seed in seeds_of[kind]:
            for fold in fold_list:
                for arm in arms:
                    name = _run_name(arm, kind, fold, seed)
                    res = train_run(prof, arm, seed=seed, split=kind, fold=fold, device=dev, resume=resume,
                                    progress=progress)
                    if res.interrupted:
                        _write_runs(out, run_rows)
                        raise BcdetError(f"The study stopped during {name} (interrupted). Run the same call "
                                         "again to resume: finished runs are loaded, not retrained.")
                    data = load_split_data(prof, split=kind, seed=seed, fold=fold)
                    test_files = set(data.files_of("test"))
                    want = set(fold_of.index[fold_of.to_numpy() == fold])
                    if test_files != want:
                        raise BcdetError(f"{name}: the run's test images are not fold {fold} of folds.csv "
                                         f"({len(test_files ^ want)} differ) -- the split code changed?")
                    pred = predict_run(res.run_dir, data, device=dev, groups=groups)
                    pred["test"].to_csv(out / "oof" / f"{name}.csv", index=False)
                    pred["val"].to_csv(out / "val" / f"{name}.csv", index=False)
                    info = res.info or {}
                    ratios = [p.get("ratio", math.nan) for p in info.get("phase_stability", [])]
                    run_rows.append({
                        "arm": arm, "kind": kind, "fold": fold, "seed": seed,
                        "n_train": int((data.split == "train").sum()), "n_val": int((data.split == "val").sum()),
                        "n_test": int((data.split == "test").sum()), "epochs": len(res.history),
                        "best_epoch": res.best_epoch, "max_phase_ratio": max(ratios) if ratios else math.nan,
                        "wall_time_s": res.wall_time, "seconds_per_epoch": res.seconds_per_epoch,
                        "run": Path(res.run_dir).name,
                    })
                    _write_runs(out, run_rows)
    study = evaluate_study(out, include_conflicts=include_conflicts, n_boot=n_boot or prof.bootstrap)
    study.save(out / "study.json")
    return study


def _write_runs(out: Path, rows: list[dict]) -> None:
    """``runs.csv``: this call's runs merged into the ones already recorded (same key replaced)."""
    path = out / "runs.csv"
    new = pd.DataFrame(rows, columns=RUN_COLUMNS)
    key = ["arm", "kind", "fold", "seed"]
    if path.exists():
        old = pd.read_csv(path)
        if len(new):
            merged = old.merge(new[key], on=key, how="left", indicator=True)
            old = old[(merged["_merge"] == "left_only").to_numpy()]
        new = pd.concat([old, new], ignore_index=True) if len(new) else old
    new.sort_values(key).to_csv(path, index=False)


def load_predictions(folder: str | Path, part: str = "test") -> pd.DataFrame:
    """All prediction CSVs of a study folder: ``part="test"`` the out-of-fold ones (``oof/``),
    ``"val"`` the validation ones (``val/``)."""
    sub = {"test": "oof", "val": "val"}[part]
    files = sorted((Path(folder) / sub).glob("*.csv"))
    if not files:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


# ------------------------------------------------------------------------------------- evaluation
def _proba(df: pd.DataFrame, tta: bool = False) -> np.ndarray:
    p = df[[f"p_{c}" for c in CLASSES]].to_numpy(float)
    if tta:
        p = (p + df[[f"p_{c}_hflip" for c in CLASSES]].to_numpy(float)) / 2
    return p


def _run_metrics(df: pd.DataFrame) -> tuple[float, float]:
    if not len(df):
        return math.nan, math.nan
    s = stats.scores_from_confusion(_confusion(df["y"].to_numpy(int), _proba(df).argmax(1)))
    return float(s["accuracy"]), float(s["macro_f1"])


def _confusion(y, pred) -> np.ndarray:
    k = len(CLASSES)
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _score(df, arm, kind, weights, rows, n_seeds, n_boot, seed, alpha) -> ArmScore:
    y, proba, groups = df["y"].to_numpy(int), df["_proba"].tolist(), df["group"].to_numpy()
    proba = np.asarray(proba)
    clustered = stats.cluster_bootstrap(y, proba, groups, n_boot=n_boot, seed=seed, alpha=alpha)
    image = stats.cluster_bootstrap(y, proba, df["file"].to_numpy(), n_boot=n_boot, seed=seed, alpha=alpha)
    return ArmScore(arm=arm, kind=kind, weights=weights, rows=rows, n_images=int(df["file"].nunique()),
                    n_seeds=int(n_seeds), n_predictions=len(df),
                    n_groups=clustered["n_groups"], accuracy=clustered["accuracy"], macro_f1=clustered["macro_f1"],
                    recall=dict(zip(CLASSES, clustered["recall"])), accuracy_image_level=image["accuracy"])


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
    from .runinfo import git_commit

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

    # coverage: every image once per (arm, kind, weights, seed)
    coverage = []
    for (arm, kind, w, s), g in oof.groupby(["arm", "kind", "weights", "seed"], sort=True):
        n_img = int((folds["kind"] == kind).sum())
        counts = g["file"].value_counts()
        coverage.append(Coverage(arm=arm, kind=kind, weights=w, seed=int(s),
                                 folds=sorted(int(f) for f in g["fold"].unique()), images=n_img,
                                 predicted=len(counts), duplicates=int((counts > 1).sum()),
                                 complete=bool(len(counts) == n_img and (counts == 1).all())))

    # per-arm pooled and ensemble scores
    scores = []
    for w in weights_present:
        for kind in kinds:
            for arm in arms:
                g = scored[(scored["arm"] == arm) & (scored["kind"] == kind) & (scored["weights"] == w)]
                if not len(g):
                    continue
                n_seeds = g["seed"].nunique()
                scores.append(_score(g, arm, kind, w, "pooled", n_seeds, n_boot, seed, alpha))
                raw = oof[(oof["arm"] == arm) & (oof["kind"] == kind) & (oof["weights"] == w)
                          & ~oof["file"].isin(excluded)]
                scores.append(_score(_ensemble(raw), arm, kind, w, "ensemble_tta", n_seeds, n_boot, seed, alpha))

    # per-run scores
    n_train_of = {(r.arm, r.kind, int(r.fold), int(r.seed)): int(r.n_train) for r in runs_csv.itertuples()}
    runs = []
    for (arm, kind, fold, s, w), g in scored.groupby(["arm", "kind", "fold", "seed", "weights"], sort=True):
        v = scored_val[(scored_val["arm"] == arm) & (scored_val["kind"] == kind) & (scored_val["fold"] == fold)
                       & (scored_val["seed"] == s) & (scored_val["weights"] == w)]
        acc, f1 = _run_metrics(g)
        vacc, vf1 = _run_metrics(v)
        key = (arm, kind, int(fold), int(s))
        if key not in n_train_of:
            raise BcdetError(f"{folder}/runs.csv has no row for {_run_name(*key)}: re-run run_study to record it.")
        runs.append(RunScore(arm=arm, kind=kind, fold=int(fold), seed=int(s), weights=w,
                             epoch=int(g["epoch"].iloc[0]), n_train=n_train_of[key], n_test=len(g),
                             accuracy=acc, macro_f1=f1, val_accuracy=vacc, val_macro_f1=vf1))
    run_of = {(r.arm, r.kind, r.fold, r.seed, r.weights): r for r in runs}

    # paired differences
    differences = []
    for w in weights_present:
        for kind in kinds:
            for a, b, question in comparisons:
                if a not in arms or b not in arms:
                    continue
                pairs = sorted({(f, s) for (x, k, f, s, ww) in run_of if x == a and k == kind and ww == w}
                               & {(f, s) for (x, k, f, s, ww) in run_of if x == b and k == kind and ww == w})
                if not pairs:
                    continue
                differences += _differences(scored, run_of, a, b, question, kind, w, pairs, n_boot, seed, alpha, claim)

    # leak-free vs leaky
    leakage = []
    if {"grouped", "random"} <= set(kinds):
        for w in weights_present:
            for arm in arms:
                ga = scored[(scored["arm"] == arm) & (scored["kind"] == "grouped") & (scored["weights"] == w)]
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
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), design=design,
    )


def _differences(scored, run_of, a, b, question, kind, w, pairs, n_boot, seed, alpha, claim) -> list[Difference]:
    """Both metrics' :class:`Difference` of ``a - b`` over the (fold, seed) ``pairs`` both arms ran."""
    sel = lambda arm: scored[(scored["arm"] == arm) & (scored["kind"] == kind) & (scored["weights"] == w)
                             & pd.Series(list(zip(scored["fold"], scored["seed"])), index=scored.index).isin(pairs)]
    da, db = sel(a), sel(b)
    pa, pb = np.stack(da["_proba"]), np.stack(db["_proba"])
    clustered = stats.paired_cluster_bootstrap(da["y"], pa, da["group"], db["y"], pb, db["group"],
                                               n_boot=n_boot, seed=seed, alpha=alpha)
    image = stats.paired_cluster_bootstrap(da["y"], pa, da["file"], db["y"], pb, db["file"],
                                           n_boot=n_boot, seed=seed, alpha=alpha)
    ra = [run_of[(a, kind, f, s, w)] for f, s in pairs]
    rb = [run_of[(b, kind, f, s, w)] for f, s in pairs]
    n_train = float(np.mean([r.n_train for r in ra + rb]))
    n_test = float(np.mean([r.n_test for r in ra + rb]))
    out = []
    for m in METRICS:
        per_run = [float(getattr(x, m) - getattr(y, m)) for x, y in zip(ra, rb)]
        test = stats.corrected_ttest(per_run, n_train, n_test, alpha)
        out.append(Difference(
            a=a, b=b, question=question, kind=kind, weights=w, metric=m, pooled=clustered[m],
            image_level=image[m], per_run=per_run, runs=[[int(f), int(s)] for f, s in pairs], test=test,
            detectable=stats.detectable_difference(test.se, test.df if test.n > 1 else None, alpha)
            if test.n > 1 else math.nan,
            detectable_bootstrap=stats.bootstrap_detectable_difference(clustered[m], alpha),
            power_at_claim=stats.power_at(claim, test.se, test.df, alpha) if test.n > 1 else math.nan,
        ))
    return out


def compare_weights(runs: list[RunScore]) -> list[WeightsCheck]:
    """Final weights against best-by-validation on each run's *validation* images, per (arm, kind)
    -- the numbers that decide the weights rule without looking at a test image. Runs that have
    only one of the two are skipped. (``best`` was picked on these images, so its side is
    optimistic; see the module doc.)"""
    run_of = {(r.arm, r.kind, r.fold, r.seed, r.weights): r for r in runs}
    checks = []
    for arm, kind in dict.fromkeys((r.arm, r.kind) for r in runs):
        keys = sorted({(f, s) for (x, k, f, s, _w) in run_of if x == arm and k == kind})
        pairs = [(run_of[(arm, kind, f, s, "last")], run_of[(arm, kind, f, s, "best")]) for f, s in keys
                 if (arm, kind, f, s, "last") in run_of and (arm, kind, f, s, "best") in run_of]
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
