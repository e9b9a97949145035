"""The record of :mod:`bcdet_helpers.research.study.external_eval`: its result types and their one JSON form
(``external.json``, schema :data:`SCHEMA` version :data:`SCHEMA_VERSION`; read back strictly, as
:class:`~bcdet_helpers.research.study.Study` is), with the look-ups and tables a reader of the record uses."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...errors import BcdetError
from ..stats import Interval
from .decode import _build

__all__ = ["SCHEMA", "SCHEMA_VERSION", "EXTERNAL_METRICS", "DIFFERENCE_METRICS", "RunThreshold", "ExternalScore",
           "BusiScore", "ExternalDifference", "ExternalStudy"]

SCHEMA = "bcdet.external-study"
SCHEMA_VERSION = 1
EXTERNAL_METRICS = ("auc", "sensitivity", "specificity", "predicted_normal", "ece")
DIFFERENCE_METRICS = ("auc", "sensitivity", "specificity")


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
        from ...runinfo import jsonable

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
        from ...runinfo import write_json

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
