"""The study's design: the one list of its runs (:class:`StudyDesign`, built by :func:`study_design`).

What ``bcdet reproduce`` estimates (:mod:`bcdet_helpers.research.plan`), what :func:`~bcdet_helpers.research.study.run_study`
trains, what ``bcdet study --list`` prints and what a job array runs one by one (``bcdet study --run K``)
all come from :meth:`StudyDesign.runs`, so they cannot disagree.

The default design of a profile: its ``study_arms`` x its ``folds`` x, per kind, the seeds of
:func:`default_seeds` -- every seed on the grouped split (the verdict), the first seed on the random
split (it only measures the leakage gap) -- plus the leakage ladder's extra runs
(:func:`~bcdet_helpers.research.study.ladder.ladder_extra_runs`) unless ``ladder=False``; and the grouped runs
again on each further fold partition of the profile (``partitions``: folds drawn with ``fold_seed + p``),
so that the verdict's intervals carry the variation of the fold cut too (issue #28).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import BcdetError
from ...profiles import KINDS, Profile, get_profile
from ...runkey import RunKey, STUDY_KINDS, fold_kind_of


def default_seeds(prof: Profile, random_seeds=None) -> dict[str, list[int]]:
    """Seeds per kind: the profile's ``seeds`` for ``grouped``; for ``random`` ``random_seeds``, by default
    the first ``random_seed_count`` of the profile's seeds. Kinds the profile's ``kinds`` leave out are left out."""
    out = {"grouped": list(prof.seeds), "random": list(random_seeds or prof.seeds[:prof.random_seed_count])}
    return {k: v for k, v in out.items() if k in prof.kinds}


@dataclass(frozen=True)
class StudyDesign:
    """Which runs a study holds: ``arms`` x folds x ``seeds[kind]`` for each kind, then ``extra``
    (``{arm: {kind: [seeds]}}``: runs of single arms, the ladder's). ``folds``: a subset of the folds
    (a partial study), or ``None`` for all of the profile's."""

    profile: Profile
    arms: tuple[str, ...]
    seeds: dict[str, tuple[int, ...]]
    extra: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    folds: tuple[int, ...] | None = None
    partitions: tuple[int, ...] = (0,)  # fold partitions; those past the first hold the grouped runs only

    @property
    def kinds(self) -> list[str]:
        return list(self.seeds)

    def fold_range(self, n_folds: int | None = None) -> list[int]:
        """The folds to run, of ``n_folds`` (default the profile's; a tiny subset may have fewer)."""
        n = self.profile.folds if n_folds is None else n_folds
        return list(range(n)) if self.folds is None else [f for f in self.folds if f < n]

    def arms_by_kind_and_seed(self) -> dict[tuple[str, int], list[str]]:
        """``{(kind, seed): [arms]}``: the design's arms, then the extras' (an extra of a kind whose folds'
        kind the design does not run is dropped)."""
        out = {(kind, seed): list(self.arms) for kind, seeds in self.seeds.items() for seed in seeds}
        for arm, by_kind in self.extra.items():
            for kind, seeds in by_kind.items():
                for seed in (seeds if fold_kind_of(kind) in self.seeds else []):
                    out.setdefault((kind, seed), [])
                    if arm not in out[(kind, seed)]:
                        out[(kind, seed)].append(arm)
        return out

    def runs(self, n_folds: int | None = None) -> list[RunKey]:
        """Every run, in the order the study trains them: the verdict's first -- the grouped runs of the first
        fold partition, then of each further one (those repeat the design's arms: no ladder extras) -- then the
        random split and the ladder's extra runs; within each, seed, fold, arm. So a study stopped part-way
        (hours on a CPU) holds the runs its verdict reads before those only the leakage ladder reads."""
        by = self.arms_by_kind_and_seed()
        folds = self.fold_range(n_folds)
        verdict = [RunKey(arm, kind, fold, seed) for (kind, seed), arms in by.items() if kind == "grouped"
                   for fold in folds for arm in arms]
        more = [RunKey(arm, "grouped", fold, seed, p) for p in self.partitions if p
                for seed in self.seeds.get("grouped", ()) for fold in folds for arm in self.arms]
        rest = [RunKey(arm, kind, fold, seed) for (kind, seed), arms in by.items() if kind != "grouped"
                for fold in folds for arm in arms]
        return verdict + more + rest

    def to_dict(self) -> dict:
        """What ``design.json`` records of a call (JSON-shaped)."""
        return {"arms": list(self.arms), "kinds": self.kinds, "seeds": {k: list(v) for k, v in self.seeds.items()},
                "extra": {a: {k: list(v) for k, v in by.items()} for a, by in self.extra.items()},
                "folds": None if self.folds is None else list(self.folds), "partitions": list(self.partitions)}


def study_design(profile: str | Profile, *, arms=None, kinds=None, seeds=None, random_seeds=None,
                 ladder: bool = True, extra: dict | None = None, folds=None, partitions=None) -> StudyDesign:
    """The design of ``profile``'s study (see the module doc), or a smaller one: ``arms``, ``kinds``,
    ``seeds`` (a list for every kind, or ``{kind: [seeds]}``), ``folds``. ``extra`` replaces the ladder's
    extra runs (``ladder=False``: none); ``partitions`` the profile's fold partitions (``[0]``: one)."""
    from .ladder import ladder_extra_runs

    try:
        prof = get_profile(profile)
    except ValueError as exc:
        raise BcdetError(str(exc)) from None
    arms = tuple([arms] if isinstance(arms, str) else (arms or prof.study_arms))
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or prof.kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise BcdetError(f"Unknown kind(s) {bad}. Choose from {', '.join(KINDS)}.")
    own = default_seeds(prof, random_seeds)
    if seeds is None:
        by_kind = {k: own.get(k, list(prof.seeds)) for k in kinds}
    elif isinstance(seeds, dict):
        by_kind = {k: list(seeds.get(k, prof.seeds)) for k in kinds}
    else:
        by_kind = {k: [seeds] if isinstance(seeds, int) else list(seeds) for k in kinds}
    if extra is None:
        extra = ladder_extra_runs(prof, by_kind) if ladder else {}
    unknown = [k for by in extra.values() for k in by if k not in STUDY_KINDS]
    if unknown:
        raise BcdetError(f"Unknown kind(s) {unknown} in extra runs. Choose from {', '.join(STUDY_KINDS)}.")
    partitions = tuple(range(prof.partitions)) if partitions is None else tuple(int(p) for p in partitions)
    if not partitions or min(partitions) < 0 or 0 not in partitions:
        raise BcdetError(f"partitions must include 0 (the profile's own folds), got {list(partitions)}.")
    return StudyDesign(prof, arms, {k: tuple(v) for k, v in by_kind.items()},
                       {a: {k: tuple(v) for k, v in by.items()} for a, by in extra.items()},
                       None if folds is None else tuple(folds), partitions)
