"""The improvement ladder: what *honestly* makes the model better, beside the leakage ladder (issue #31).

The leakage ladder (:mod:`~bcdet_helpers.research.study.ladder`) shows how habits that touch test images inflate a
BUSI number. This one asks the constructive question -- what legitimately helps, and by how much -- and
climbs from the verdict's best tuned arm one change per rung, each on top of the ones before:

==========  ====================================================================================
rung        what it changes (the numbers: ``profiles.improve_candidates``)
==========  ====================================================================================
baseline    nothing: the verdict's best tuned arm, its own runs (:func:`verdict_arm`)
imbalance   the loss: class-weighted cross-entropy or logit adjustment (:mod:`~bcdet_helpers.losses`)
resolution  the input side: 1.5x or 2x (64 -> 96 or 128 px; the cache and the model take any size)
augment     ultrasound augmentation: gain, dynamic range, speckle, a wider zoom (``augment_*``)
longer      weight averaging of the last epochs (SWA), with the same or twice the epochs
ensemble    no training: the rung below's runs, averaged over seeds and partitions, with flip TTA
==========  ====================================================================================

Why these: a methods review found the limit is not capacity or optimisation (width 16 -> 64 changed
nothing; the width-64 constant arm fits 95 % of its training images and validates at ~67 %) but
information and generalisation -- 64 x 64 pixels, a 56 % majority class, 780 images -- and the stress
test found gain, contrast and speckle shifts the model's weak side. Each rung's :attr:`Rung.why` says more.

How it stays honest:

* **the verdict's design**: every rung (its chosen or only candidate) trains exactly the verdict's grouped runs
  of the arm -- its folds, seeds and fold partitions (:func:`improve_design`, a
  :class:`~bcdet_helpers.research.study.design.StudyDesign`) -- in run folders of its own: a derived profile named
  after what it stacks, ``<profile>-improve-<choice>-<choice>...`` (``laptop-improve-balanced-96px``), so
  nothing collides with the verdict's runs (the baseline *is* the verdict's runs, reused);
* **choices on validation only**: where a rung has candidates (balanced or logit adjustment, 96 or 128 px)
  each is first *screened* -- trained on the design's first seed of its first fold partition, one run per
  fold (:func:`screen_design`) -- and the rung keeps the one whose screening runs score the best pooled
  validation :data:`CHOICE_METRIC` (the images each run carved out of its own training part); only that one
  trains the rest of the design, so a candidate validation turns away costs a sixth of a full rung (at
  laptop: 5 runs of 30) instead of all of it -- on a 2-core CPU the difference is hours, a 128 px run costing
  ~4x a 64 px one. The next rung builds on the chosen one only when its validation score over *all* its runs beats
  the rung below's (``adopted``); a rung validation does not support is still trained, scored and shown, and
  the ladder climbs on without it. No choice reads a test fold or BUS-BRA;
* **scored like the verdict** (:mod:`~bcdet_helpers.research.study.improve_score`): pooled out-of-fold and BUS-BRA
  numbers with intervals that resample training replicates and patients/groups, each rung paired with the
  rung it was built on.

Each candidate is a study of its own in ``<work>/studies/<choices>/`` (:func:`~bcdet_helpers.research.study.run_study`:
resumable, finished runs loaded); :func:`~bcdet_helpers.research.study.improve_runs.collect` gathers the chosen ones into
``<work>/scored/``, one study folder whose "arms" are the rungs, which the scoring reads like any study. This
module decides (rungs, design, choices) with the validation scores of
:mod:`~bcdet_helpers.research.study.improve_validation`; :mod:`~bcdet_helpers.research.study.improve_runs` holds the runs'
files and seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ...errors import BcdetError
from ...paths import runs_dir
from ...profiles import Profile, get_profile, improve_candidates
from ...runkey import RunKey
from .design import StudyDesign, study_design
from .files import copy_run_records
from .improve_validation import CHOICE_METRIC, validation_score, verdict_arm

__all__ = ["RUNGS", "RUNG_NAMES", "CHOICE_METRIC", "Rung", "Step", "Choice", "verdict_arm", "improve_design",
           "screen_design", "plan_ladder", "climb", "check_rungs", "validation_score", "improve_work"]


@dataclass(frozen=True)
class Rung:
    name: str  # also the rung's "arm" in the scored folder: letters, digits, underscores
    adds: str  # what it changes, in a line
    why: str  # why it might help
    trains: bool = True  # False: the ensemble, which combines the runs of the rung below


RUNGS = (
    Rung("baseline", "the verdict's best tuned arm, its own runs",
         "the reference every rung is paired with: the leak-free number the study reports", trains=True),
    Rung("imbalance", "+ class imbalance handled in the loss: class-weighted cross-entropy or logit adjustment",
         "56 % of BUSI is benign: plain cross-entropy lets the model lean to it, and every arm misses about half "
         "the malignant lesions"),
    Rung("resolution", "+ higher input resolution (1.5x or 2x the side: 96 or 128 px at laptop)",
         "the paper's 64 px is a choice, not a law: margins, calcifications and posterior shadowing are a few "
         "pixels wide at 64 px"),
    Rung("augment", "+ ultrasound augmentation: gain, dynamic range, speckle and a wider zoom",
         "the acquisition-shift stress test finds gain, contrast and speckle the model's weak side; another "
         "hospital's scanner changes exactly these"),
    Rung("longer", "+ weight averaging of the last epochs (SWA), with the same or twice the epochs",
         "a 780-image model's last epochs wander around a minimum; their mean tends to generalise better"),
    Rung("ensemble", "+ seed ensemble and flip TTA (the rung below's runs combined; no training)",
         "independent trainings disagree on the hard images; averaging them and the mirrored image costs no "
         "training", trains=False),
)
RUNG_NAMES = tuple(r.name for r in RUNGS)
RUNG = {r.name: r for r in RUNGS}
# fields no rung may change: they decide which images a run trains, validates and is tested on
SHARED_FIELDS = ("folds", "fold_seed", "val_fraction", "max_per_class", "seeds", "partitions", "kinds", "channels")


# ------------------------------------------------------------------------------------------ the design
def improve_work(profile: str | Profile) -> Path:
    """``runs/<profile>/improve``: the ladder's working folder (its studies, its scored folder, its report)."""
    return runs_dir(get_profile(profile).name) / "improve"


def improve_design(prof: Profile, arm: str, *, seeds=None, folds=None, partitions=None) -> StudyDesign:
    """The verdict's grouped runs of ``arm`` -- its folds, seeds and fold partitions -- as a design: what every
    rung trains (``seeds`` / ``folds`` / ``partitions``: a smaller one, for tests)."""
    return study_design(prof, arms=[arm], kinds=["grouped"], seeds=seeds, folds=folds, ladder=False,
                        partitions=partitions)


def screen_design(design: StudyDesign) -> StudyDesign:
    """What a candidate is screened on before a rung chooses: ``design``'s first seed of its first fold partition,
    every fold -- one run per fold, so every image of the training folds is validated or trained on, and the
    runs are the first of the full design (the chosen candidate keeps them)."""
    return replace(design, seeds={k: v[:1] for k, v in design.seeds.items()}, partitions=design.partitions[:1])


def rung_profile(base: Profile, overrides: dict, choices: list[str]) -> Profile:
    """``base`` with ``overrides`` and the name ``<base>-improve-<choices...>``: a profile of its own, so its runs
    live in their own folders (``runs/<that name>/``) and never meet the verdict's."""
    if not choices:
        return base
    bad = sorted(set(overrides) & set(SHARED_FIELDS))
    if bad:
        raise BcdetError(f"an improvement rung may not change {', '.join(bad)}: every rung trains on the verdict's "
                         "own folds, seeds and validation images.")
    try:
        return replace(base, name=f"{base.name}-improve-{'-'.join(choices)}", **overrides)
    except TypeError as exc:  # a field that is not one
        raise BcdetError(f"improve_candidates names a field Profile does not have: {exc}") from None


@dataclass
class Step:
    """One candidate of one rung: a study of its own (``folder``) of the design's runs under ``profile`` -- all of
    them (``keys``) when it is the rung's only candidate or its chosen one, else only its screening runs
    (``screen_keys``, :func:`screen_design`; :meth:`Choice.needs` says which)."""

    rung: str
    candidate: str
    overrides: dict  # on top of the base profile: every adopted rung below, then this candidate
    changes: dict  # this candidate's own overrides (what the rung adds)
    profile: Profile
    design: StudyDesign
    folder: Path
    screened: bool = False  # one of several candidates: screened first (its rung chooses on screen_keys)

    @property
    def keys(self) -> list[RunKey]:
        return self.design.runs()

    @property
    def screen_keys(self) -> list[RunKey]:
        return screen_design(self.design).runs() if self.screened else self.keys

    def run_dirs(self, keys=None) -> list[Path]:
        return [k.run_dir(self.profile.name) for k in (self.keys if keys is None else keys)]

    def finished(self, keys=None) -> bool:
        """Every run of ``keys`` (default :attr:`keys`) has its validation predictions in the study folder."""
        return all((self.folder / "val" / f"{k.name}.csv").exists() for k in (self.keys if keys is None else keys))

    def runs_done(self, keys=None) -> int:
        return sum((d / "result.json").exists() for d in self.run_dirs(keys))

    def cost(self, base: Profile) -> float:
        """One run's training work relative to one of ``base``: pixels x epochs (a 96 px run ~2.25x a 64 px one)."""
        p = self.profile
        return (p.image_size / base.image_size) ** 2 * p.epochs / base.epochs


@dataclass
class Choice:
    """What a rung decided, and from which validation numbers."""

    rung: str
    steps: list[Step]
    below: str | None  # the rung it is built on and paired with (None: the baseline)
    scores: dict[str, float | None] = field(default_factory=dict)  # candidate -> validation CHOICE_METRIC (screening)
    chosen: str | None = None  # None: not chosen yet (runs missing) -- or the ensemble, which chooses nothing
    value: float | None = None  # the chosen one's validation CHOICE_METRIC over all its runs (None: not all finished)
    adopted: bool = False  # does the ladder build on it? (``value`` beats the rung below's)
    below_score: float | None = None
    how: str = ""

    @property
    def decided(self) -> bool:
        """Chosen, and every run of the chosen one finished (or the ensemble, which trains nothing)."""
        return self.value is not None or not RUNG[self.rung].trains

    def needs(self, step: Step) -> list[RunKey]:
        """The runs ``step`` trains: all of its keys when it is the rung's only candidate or its chosen one, else
        its screening runs only."""
        return step.keys if not step.screened or step.candidate == self.chosen else step.screen_keys

    @property
    def rest_to_choose(self) -> int:
        """Runs a rung of several candidates still adds once it chooses -- the chosen one's other runs, not known
        yet -- and 0 once it has chosen (:meth:`needs` counts them then)."""
        if self.chosen is not None or not self.steps or not self.steps[0].screened:
            return 0
        return len(self.steps[0].keys) - len(self.steps[0].screen_keys)

    def step(self, candidate: str | None = None) -> Step | None:
        name = self.chosen if candidate is None else candidate
        return next((s for s in self.steps if s.candidate == name), None)


def check_rungs(rungs) -> list[str]:
    """The rungs to climb, in order: ``baseline`` first (added when missing: every rung is paired back to it),
    ``ensemble`` last. Unknown or repeated names and an ensemble elsewhere are refused, saying the fix."""
    rungs = list(RUNG_NAMES if not rungs else rungs)
    unknown = [r for r in rungs if r not in RUNG]
    if unknown:
        raise BcdetError(f"Unknown rung(s) {', '.join(unknown)}. Choose from {', '.join(RUNG_NAMES)}.")
    if len(set(rungs)) < len(rungs):
        raise BcdetError(f"--rungs names a rung twice ({' '.join(rungs)}): each rung is climbed once.")
    if "ensemble" in rungs and rungs[-1] != "ensemble":
        raise BcdetError("ensemble must be the last rung: it trains nothing and combines the runs of the rung "
                         "below it.")
    return rungs if rungs[0] == "baseline" else ["baseline", *[r for r in rungs if r != "baseline"]]


def plan_ladder(profile: str | Profile, rungs=None, arm: str | None = None, *, work: str | Path | None = None,
                seeds=None, folds=None, partitions=None, train=None) -> tuple[str, str, list[Choice]]:
    """``(arm, how it was chosen, choices)``: the ladder as far as its finished runs decide it. Each rung's
    candidates stack on the adopted rungs below; a rung of several candidates chooses when every candidate's
    screening runs have their validation predictions, and is decided when the chosen one's other runs have
    theirs too. ``train(step, keys)``, when given, is called to train those runs first (:func:`climb`);
    without it a rung whose runs are missing leaves the rungs above it *provisional*: listed on top of its
    chosen candidate, or its first while none is chosen, which the real climb may not keep."""
    try:
        base = get_profile(profile)
    except ValueError as exc:
        raise BcdetError(str(exc)) from None
    rungs = check_rungs(rungs)
    how = "named with --arm"
    if arm is None:
        arm, how = verdict_arm(base)
    elif arm not in base.study_arms:
        raise BcdetError(f"Unknown arm {arm!r}. Choose one of the study's arms: {', '.join(base.study_arms)}.")
    work = Path(work) if work is not None else improve_work(base)
    design = improve_design(base, arm, seeds=seeds, folds=folds, partitions=partitions)
    stack, tags, below, below_score, choices = {}, [], None, None, []
    provisional = False  # a rung below is undecided: the ones above stack on its first candidate, decided or not
    for name in rungs:
        rung = RUNG[name]
        if not rung.trains:
            choices.append(Choice(name, [], below, adopted=True,
                                  how=f"the runs of {below}, combined: nothing to choose"))
            continue
        if name == "baseline":
            cands = {"verdict": {}}
        else:
            stacked = rung_profile(base, stack, tags or ["stack"])
            cands = improve_candidates(name, stacked)
        screened = len(cands) > 1
        steps = []
        for cand, overrides in cands.items():
            over = {**stack, **overrides}
            chain = [*tags, cand] if name != "baseline" else []
            prof = rung_profile(base, over, chain)
            folder = work / "studies" / ("-".join(chain) or "baseline")
            steps.append(Step(name, cand, over, dict(overrides), prof, replace(design, profile=prof), folder,
                              screened=screened))
        if train is not None and not provisional:
            for step in steps:
                train(step, step.screen_keys)
        choice = Choice(name, steps, below, below_score=below_score)
        choice.scores = {s.candidate: validation_score(s.folder, s.screen_keys) if s.finished(s.screen_keys) else None
                         for s in steps}
        metric = f"validation {CHOICE_METRIC.replace('_', ' ')}"
        if provisional or any(v is None for v in choice.scores.values()):
            waiting = [c for c, v in choice.scores.items() if v is None]
            choice.how = (f"undecided: {', '.join(waiting)} not finished" if waiting and not provisional else
                          "undecided: a rung below is not decided yet") \
                + " (provisional: the rungs above stack on its first candidate)"
            choice.scores = {c: None for c in choice.scores} if provisional else choice.scores
            choices.append(choice)
            provisional = True
            first = steps[0]
            stack, tags, below = first.overrides, [*tags, first.candidate] if name != "baseline" else tags, name
            continue
        choice.chosen = max(choice.scores, key=lambda c: (choice.scores[c], -list(choice.scores).index(c)))
        chosen = choice.step()
        listed = ", ".join(f"{c} {v:.3f}" for c, v in choice.scores.items())
        if screened:
            listed = f"screened on {len(chosen.screen_keys)} of its {len(chosen.keys)} runs each: {listed}"
            if train is not None and len(chosen.screen_keys) < len(chosen.keys):
                train(chosen, chosen.keys)
        choice.value = validation_score(chosen.folder, chosen.keys) if chosen.finished() else None
        if choice.value is None:  # chosen on screening; the rest of its runs not finished
            choice.how = (f"{metric}: {listed} -> {choice.chosen}; undecided: {len(chosen.keys) - chosen.runs_done()} "
                          f"of its runs not finished (provisional: the rungs above stack on it)")
            choices.append(choice)
            provisional = True
            stack, tags, below = chosen.overrides, [*tags, chosen.candidate] if name != "baseline" else tags, name
            continue
        value = choice.value
        choice.adopted = name == "baseline" or below_score is None or value > below_score
        if name == "baseline":
            choice.how = f"{metric} {value:.3f}"
        else:
            verdict = "adopted" if choice.adopted else "not adopted: the rungs above build without it"
            on_all = f" ({value:.3f} on all {len(chosen.keys)} runs)" if screened else ""
            choice.how = (f"{metric}: {listed} -> {choice.chosen}{on_all}; vs {below} {below_score:.3f}: {verdict}"
                          if below_score is not None else f"{metric}: {listed} -> {choice.chosen}{on_all}")
        choices.append(choice)
        if choice.adopted:
            stack, below, below_score = chosen.overrides, name, value
            if name != "baseline":
                tags = [*tags, chosen.candidate]
    return arm, how, choices


def climb(profile: str | Profile, rungs=None, arm: str | None = None, *, work: str | Path | None = None,
          jobs: int | None = None, device="auto", progress: bool = True, seeds=None, folds=None, partitions=None,
          n_boot: int | None = None) -> tuple[str, str, list[Choice]]:
    """Train (or load) every rung, rung by rung -- each rung's candidates are known only once the rung below is
    decided; a rung of several screens them all, then trains the rest of the chosen one's runs -- and return
    :func:`plan_ladder`'s decided ladder. Resumable: a candidate's study is
    :func:`~bcdet_helpers.research.study.run_study` in its own folder, and finished runs are loaded."""
    from .cv import run_study

    def train(step: Step, keys: list[RunKey]) -> None:
        design = step.design if keys == step.keys else screen_design(step.design)
        if progress:
            what = "screening, " if keys != step.keys else ""
            print(f"--- {step.rung}: {step.candidate} ({what}{len(keys)} runs in runs/{step.profile.name}/, "
                  f"{step.runs_done(keys)} finished)", flush=True)
        if step.rung == "baseline":  # its runs are the verdict's: without weights, their records are too
            copy_run_records(runs_dir(step.profile.name) / "cv", step.folder, keys)
        run_study(design, out=step.folder, device=device, jobs=jobs, progress=progress,
                  n_boot=n_boot or step.profile.bootstrap, record_test=False)  # no leakage ladder reads them

    return plan_ladder(profile, rungs, arm, work=work, seeds=seeds, folds=folds, partitions=partitions, train=train)
