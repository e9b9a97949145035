"""A run's identity, spelled in one place: :class:`RunKey`.

One training run is an arm (``constant``, ``switching``, ...) trained on one fold of one kind of folds
with one seed. The study has a third kind besides ``grouped`` and ``random``: the leakage ladder's
``augmented`` runs, which use the random kind's folds *and* train on augmented copies of their test
images (augmenting before splitting, the leak). Two names follow from a key:

* :attr:`RunKey.name` -- ``<arm>-<kind>-fold<f>-seed<s>``: the run in a study folder (the stem of its
  ``oof/``, ``val/`` and ``inflation/`` CSVs);
* :meth:`RunKey.folder` -- ``<arm>-<fold kind>-fold<f>-seed<s>[-testcopies<k>]``: its run folder under
  ``runs/<profile>/`` (an augmented run is a random-kind run with ``k`` test copies).

:meth:`RunKey.parse` reads either back. Nothing else in the package builds or parses these names.
A run of another fold partition of the study (folds drawn with ``fold_seed + p``) ends in
``-partition<p>``; partition 0, the profile's own folds, has no suffix. Runs of the releases before cross-validation (``results/history/``) had one split and no fold:
``<arm>-<kind>-seed<s>``, a key with ``fold=None``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .profiles import KINDS

AUGMENTED = "augmented"  # the leakage ladder's kind: the random kind's folds + copies of the test images
STUDY_KINDS = (*KINDS, AUGMENTED)
_NAME = re.compile(r"(?P<arm>[a-z0-9_]+)-(?P<kind>[a-z]+)(?:-fold(?P<fold>\d+))?-seed(?P<seed>\d+)"
                   r"(?:-testcopies(?P<copies>\d+))?(?:-partition(?P<partition>\d+))?")


def fold_kind_of(kind: str) -> str:
    """The kind whose folds a run of ``kind`` uses: an augmented run uses the random kind's."""
    return "random" if kind == AUGMENTED else kind


@dataclass(frozen=True, order=True)
class RunKey:
    """(arm, kind, fold, seed): which run. Ordered as the study trains them within an arm's list."""

    arm: str
    kind: str = "grouped"
    fold: int | None = 0  # None: a run of a release before cross-validation (one split, results/history/)
    seed: int = 0
    partition: int = 0  # the study's fold partition (profiles.partition_profile); 0: the profile's own folds

    def __post_init__(self):
        if self.kind not in STUDY_KINDS:
            raise ValueError(f"a run's kind is one of {', '.join(STUDY_KINDS)}, not {self.kind!r}")
        if (self.fold is not None and int(self.fold) < 0) or int(self.seed) < 0:
            raise ValueError(f"fold and seed must be >= 0, got {self.fold} and {self.seed}")
        object.__setattr__(self, "fold", None if self.fold is None else int(self.fold))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "partition", int(self.partition))

    @property
    def _fold(self) -> str:
        return "" if self.fold is None else f"-fold{self.fold}"

    @property
    def _partition(self) -> str:
        return f"-partition{self.partition}" if self.partition else ""

    @property
    def fold_kind(self) -> str:
        """The kind whose folds the run uses (an augmented run uses the random kind's)."""
        return fold_kind_of(self.kind)

    def test_copies(self, ladder_test_copies: int) -> int:
        """Augmented copies of each test image the run trains on: the profile's ladder number for an
        augmented run, none otherwise."""
        return int(ladder_test_copies) if self.kind == AUGMENTED else 0

    @property
    def name(self) -> str:
        """``<arm>-<kind>-fold<f>-seed<s>``: the run in a study folder."""
        return f"{self.arm}-{self.kind}{self._fold}-seed{self.seed}{self._partition}"

    def folder(self, ladder_test_copies: int = 0) -> str:
        """The run folder's name: ``<arm>-<fold kind>-fold<f>-seed<s>``, ``-testcopies<k>`` for an augmented run."""
        k = self.test_copies(ladder_test_copies)
        return (f"{self.arm}-{self.fold_kind}{self._fold}-seed{self.seed}" + (f"-testcopies{k}" if k else "")
                + self._partition)

    def run_dir(self, profile_name: str, ladder_test_copies: int = 0) -> Path:
        """``runs/<profile>/<folder>``: where :func:`~bcdet_helpers.runs.train_run` keeps the run."""
        from .paths import runs_dir

        return runs_dir(profile_name) / self.folder(ladder_test_copies)

    @classmethod
    def of_run(cls, arm: str, kind: str, fold: int = 0, seed: int = 0, test_copies: int = 0,
               partition: int = 0) -> RunKey:
        """The key of a run as :func:`~bcdet_helpers.runs.train_run` takes it (a kind of folds, test copies)."""
        return cls(arm, AUGMENTED if test_copies else kind, fold, seed, partition)

    @classmethod
    def parse(cls, name: str) -> RunKey:
        """The key of a study name or a run folder name (the inverse of :attr:`name` and :meth:`folder`)."""
        m = _NAME.fullmatch(Path(str(name)).name)
        if m is None or m["kind"] not in STUDY_KINDS or (m["copies"] and m["kind"] != "random"):
            raise ValueError(f"{name!r} is not a run name (<arm>-<kind>-fold<N>-seed<N>[-testcopies<N>])")
        kind = AUGMENTED if m["copies"] and int(m["copies"]) else m["kind"]
        return cls(m["arm"], kind, None if m["fold"] is None else int(m["fold"]), int(m["seed"]),
                   int(m["partition"] or 0))

    @classmethod
    def find(cls, name: str) -> RunKey | None:
        """:meth:`parse`, or ``None`` for a name that is not a run's (a tuning trial, a stray folder)."""
        try:
            return cls.parse(name)
        except ValueError:
            return None
