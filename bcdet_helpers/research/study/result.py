"""The study's result: its questions (:data:`COMPARISONS`, :data:`METRICS`, the weights rule), its types
and its one JSON form (:data:`SCHEMA`, :data:`SCHEMA_VERSION`; decoded by
:func:`~bcdet_helpers.research.study.decode._build`). The study folder's files and their readers are
:mod:`bcdet_helpers.research.study.files`. See :mod:`bcdet_helpers.research.study`.

Over 350 lines on purpose: :class:`Study` is one record, and its look-ups and tables (``scores_table``,
``summary`` ...) are its methods, read by notebook 05, the report and the ladder."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...errors import BcdetError
from ..stats import CorrectedTTest, Interval, bootstrap_detectable_difference, detectable_difference, power_at
from .decode import _build


SCHEMA = "bcdet.study"
SCHEMA_VERSION = 2  # 2: training-variance intervals (ArmScore.accuracy_training, Difference.training/fold_test)
READABLE_VERSIONS = (1, 2)  # a version-1 file lacks only the optional fields of version 2

# Named before the second partition's runs are scored (issue #28); the rest are sensitivity checks.
VERDICT_ANALYSIS = (
    "paired two-way bootstrap of pooled out-of-fold accuracy: each resample draws the training replicates "
    "(fold partition x seed) and the near-duplicate groups independently, so the 95 % interval carries "
    "both test-set and training variance (stats.paired_hierarchical_bootstrap); sensitivity checks: the "
    "fixed-model group bootstrap, and the corrected repeated-CV t-test over partitions x folds with seeds "
    "averaged within a fold (stats.repeated_cv_ttest)")
WEIGHTS = ("last", "best")  # last.pt: final weights (the rule); best.pt: best-by-validation (recorded)
WEIGHTS_RULE = "last"
# (a, b, the question a - b answers): the 2 x 2 of the arms, and the paper's claim
COMPARISONS = (
    ("switching", "matched", "the switch alone (same phases, Adam throughout)"),
    ("switching", "decay", "switching vs decay, each tuned"),
    ("decay", "constant", "annealing the rate"),
    ("switching", "constant", "the paper's claim"),
    ("onecycle", "constant", "a modern schedule"),
)
OPERATING_SENSITIVITY = 0.9  # the malignant sensitivity a run's threshold is chosen for, on its validation images
PAPER_CLAIM = 0.09  # ~90 % vs ~81 %: the difference the paper reports, switching - constant
METRICS = ("accuracy", "macro_f1")


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
    partition: int = 0  # the fold partition (0: the profile's own folds)


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
    # pooled rows: the interval that also resamples the trained models (seeds x fold partitions)
    accuracy_training: Interval | None = None
    # pooled rows, intervals with training variance: the mean recall of the three classes, and malignant vs
    # the rest at the threshold each run chose on its *validation* images for OPERATING_SENSITIVITY (#28)
    balanced_accuracy: Interval | None = None
    malignant_sensitivity: Interval | None = None
    malignant_specificity: Interval | None = None


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
    partition: int = 0  # the fold partition (0: the profile's own folds)


@dataclass
class Difference:
    """``a - b`` on one metric and kind, paired on the same folds, seeds and images.

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
    # the verdict's interval (VERDICT_ANALYSIS): groups AND training replicates resampled, paired
    training: Interval | None = None
    # the corrected repeated-CV t-test over (partition, fold) differences, seeds averaged within a fold
    fold_test: CorrectedTTest | None = None
    partitions: list[int] | None = None  # the fold partition of each per_run value (None: all the first)

    @property
    def verdict_interval(self) -> Interval:
        """The interval the verdict reads (:data:`VERDICT_ANALYSIS`): ``training``, which resamples the trained
        models as well as the groups; a version-1 study has only the fixed-model ``pooled`` one."""
        return self.training if self.training is not None else self.pooled

    def resolution(self, claim: float, alpha: float = 0.05) -> tuple[float, float]:
        """What the design can see: (the smallest true difference it detects with 80 % power, its power at
        ``claim``). With training variance in the study, the less optimistic of two readings: the verdict
        interval's bootstrap standard error (normal quantiles) and the corrected repeated-CV test's (t on
        partitions x folds - 1 degrees of freedom). The bootstrap draws from few training replicates (6 at
        laptop) and may understate their spread; the test has few degrees of freedom; a claim is sized to the
        worse. A version-1 study has only its older (fold, seed) test's ``detectable`` and ``power_at_claim``."""
        if self.training is None:
            return self.detectable, self.power_at_claim
        detectable = bootstrap_detectable_difference(self.training, alpha)
        power = power_at(claim, self.training.se, None, alpha)
        t = self.fold_test
        if t is not None and t.n > 1 and math.isfinite(t.se) and t.se > 0:
            detectable = max(detectable, detectable_difference(t.se, t.df, alpha))
            power = min(power, power_at(claim, t.se, t.df, alpha))
        return detectable, power


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
    verdict_analysis: str = ""  # which analysis the verdict is read from (VERDICT_ANALYSIS); "" in version 1

    # ---- JSON (the one definition)
    def to_dict(self) -> dict:
        from ...runinfo import jsonable

        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> Study:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise BcdetError(f"Not a bcdet study result (schema {data.get('schema') if isinstance(data, dict) else None!r}, "
                             f"expected {SCHEMA!r}).")
        if data.get("version") not in READABLE_VERSIONS:
            raise BcdetError(f"study.json has version {data.get('version')!r}; this bcdet reads version "
                             f"{SCHEMA_VERSION}. Re-run evaluate_study on the study folder to rewrite it.")
        return _build(cls, data, "study")

    def save(self, path: str | Path) -> Path:
        from ...runinfo import write_json

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
    def partitions(self, kind: str = "grouped") -> list[int]:
        """The fold partitions the study's ``kind`` ran (``[0]``: the profile's own folds only)."""
        return sorted({c.partition for c in self.coverage if c.kind == kind}) or [0]

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
                         "power_at_claim": d.power_at_claim,
                         "verdict_detectable": d.resolution(self.claim, self.alpha)[0],
                         "verdict_power_at_claim": d.resolution(self.claim, self.alpha)[1],
                         "training_low": d.training.low if d.training else math.nan,
                         "training_high": d.training.high if d.training else math.nan,
                         "fold_test_n": d.fold_test.n if d.fold_test else 0,
                         "fold_test_p": d.fold_test.p if d.fold_test else math.nan,
                         "fold_test_low": d.fold_test.low if d.fold_test else math.nan,
                         "fold_test_high": d.fold_test.high if d.fold_test else math.nan})
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
        head = (f"{self.profile}: {len(self.arms)} arms x {len(self.partitions(kind))} fold partition(s) x "
                f"{self.folds.get(kind, '?')} folds x {len(self.seeds.get(kind, []))} seeds ({kind} split), "
                f"{self.n_scored} of {self.n_images} images scored ({len(self.conflicts)} label conflicts "
                f"{conflicts}), weights: {self.weights}.")
        out = [head]
        for d in self.differences:
            if d.kind != kind or d.metric != "accuracy" or d.weights != self.weights:
                continue
            line = f"{d.a} - {d.b} ({d.question}): {pts(d.pooled.value)} points"
            if d.training is not None:  # the verdict's interval first (VERDICT_ANALYSIS)
                claim = "excludes" if not d.training.contains(self.claim) else "does not exclude"
                line += (f", 95% CI [{pts(d.training.low)}, {pts(d.training.high)}] with training variance "
                         f"(seeds x partitions and near-duplicate groups resampled; it {claim} the paper's "
                         f"+{100 * self.claim:.0f}); fixed-model CI [{pts(d.pooled.low)}, {pts(d.pooled.high)}]")
            else:
                line += f", 95% CI [{pts(d.pooled.low)}, {pts(d.pooled.high)}] (bootstrap over near-duplicate groups)"
            if d.fold_test is not None and d.fold_test.n > 1:
                line += (f"; corrected repeated-CV t-test over {d.fold_test.n} (partition, fold) differences, seeds "
                         f"averaged: p = {d.fold_test.p:.3f}, CI [{pts(d.fold_test.low)}, {pts(d.fold_test.high)}]")
            detectable, power = d.resolution(self.claim, self.alpha)
            line += (f"; smallest detectable difference {100 * detectable:.1f} points (power {100 * power:.0f}% at "
                     f"the paper's +{100 * self.claim:.0f}); the older test over {d.test.n} (fold, seed) pairs: "
                     f"p = {d.test.p:.3f}.")
            out.append(line)
        return out


def to_json(study: Study) -> str:
    """The study as strict JSON text (the one format; see :data:`SCHEMA_VERSION`)."""
    return json.dumps(study.to_dict(), indent=2, allow_nan=False) + "\n"


def from_json(text: str | bytes) -> Study:
    """A :class:`Study` from :func:`to_json`'s text (schema and version checked)."""
    return Study.from_dict(json.loads(text))


def load_study(path: str | Path) -> Study:
    """``study.json`` (or the folder holding it) as a :class:`Study`."""
    return Study.load(path)
