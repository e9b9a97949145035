"""The cross-validated study: runs -> out-of-fold predictions -> one typed, versioned result.

This module *is* the study of notebook 05, ``bcdet reproduce`` and ``publish``; the notebook only
shows what it returns. Three steps, each leaving files in one folder (``runs/<profile>/cv/`` by
default; ``results/<profile>-cv/`` when committed):

1. :func:`write_folds` -- ``folds.csv``: every image's fold for each kind, its near-duplicate
   group and whether it is a label conflict. ``grouped`` is scikit-learn's ``StratifiedGroupKFold``
   over the near-duplicate groups, ``random`` an image-level ``StratifiedKFold`` (what most BUSI
   papers do). Deterministic in the profile's ``fold_seed``; every image is a test image exactly
   once per seed.
2. :func:`run_study` -- trains (or loads) every (arm, kind, fold, seed) with
   :func:`~bcdet_helpers.runs.train_run` and writes, per run, ``oof/<arm>-<kind>-fold<f>-seed<s>.csv``
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

from .cv import predict_run, run_study
from .design import StudyDesign, default_seeds, study_design
from .evaluation import compare_weights, evaluate_study
from .external_eval import evaluate_external
from .external_report import write_external
from .external_result import ExternalStudy
from .ladder import AUGMENTED, LADDER_ARM, RUNGS, ladder_extra_runs, leakage_ladder, not_measured, write_ladder
from .ladder_orders import order_gains
from .files import PREDICTION_COLUMNS, PROBA_DECIMALS, RUN_COLUMNS, label_conflicts, load_predictions, read_folds
from .folds import study_dir, study_index, write_folds
from .result import (COMPARISONS, METRICS, OPERATING_SENSITIVITY, PAPER_CLAIM, SCHEMA, SCHEMA_VERSION, VERDICT_ANALYSIS,
                     WEIGHTS, WEIGHTS_RULE, ArmScore, Conflict, Coverage, Difference, LeakageGap, RunScore, Study,
                     WeightsCheck, from_json, load_study, to_json)

__all__ = [
    "StudyDesign",
    "default_seeds",
    "study_design",
    "AUGMENTED",
    "COMPARISONS",
    "LADDER_ARM",
    "RUNGS",
    "METRICS",
    "PROBA_DECIMALS",
    "RUN_COLUMNS",
    "PAPER_CLAIM",
    "OPERATING_SENSITIVITY",
    "PREDICTION_COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "VERDICT_ANALYSIS",
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
    "evaluate_external",
    "ExternalStudy",
    "write_external",
    "from_json",
    "label_conflicts",
    "ladder_extra_runs",
    "leakage_ladder",
    "load_predictions",
    "load_study",
    "not_measured",
    "order_gains",
    "predict_run",
    "read_folds",
    "run_study",
    "study_dir",
    "study_index",
    "to_json",
    "write_folds",
    "write_ladder",
]
