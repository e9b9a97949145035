"""What a reproduction will run and how long its training will take.

``bcdet reproduce`` prints :func:`estimate` first: the runs a reproduction starts (:func:`planned_runs`,
read from the study's design) x epochs x seconds per epoch (:mod:`bcdet_helpers.research.pace`: from finished
runs of the profile on this machine, else from the committed reference runs under ``results/``
recorded on the same kind of machine, else timed now on warmed-up training steps -- the estimate names
which). Printing it and asking before a long job is :mod:`bcdet_helpers.research.long_job`.
"""
from __future__ import annotations

from ..busi import CLASSES
from .pace import _pace
from ..runkey import RunKey

# ------------------------------------------------------------------------------ time estimate
def _n_train_images(prof) -> int:
    """Training images per epoch for this profile: the dataset's images (as the index counts them;
    BUSI's published counts when no copy is found) after ``max_per_class``, times the training
    fraction."""
    from ..data.check import EXPECTED_IMAGES
    from ..data.index import list_images
    from ..data.locate import find_busi

    root = find_busi()
    counts = dict(EXPECTED_IMAGES)
    if root is not None:
        counts = {c: sum(1 for p in list_images(root) if p.parent.name == c) for c in CLASSES}
    if prof.max_per_class:
        counts = {c: min(n, prof.max_per_class) for c, n in counts.items()}
    return max(1, round(sum(counts.values()) * (1 - 1 / prof.folds) * (1 - prof.val_fraction)))


def runs_study(profile: str, study: bool | None = None) -> bool:
    """Does a reproduction of ``profile`` run notebook 05's cross-validated study? ``study`` (``--study`` /
    ``--no-study``) decides when given; else the profile's ``study_by_default`` (researchers get the full
    study; ``class`` and ``smoke`` keep it opt-in)."""
    from ..profiles import get_profile

    return bool(study) if study is not None else get_profile(profile).study_by_default


def study_seeds(prof, random_seeds=None) -> dict[str, list[int]]:
    """Seeds per kind of the study (:func:`study.design.default_seeds`)."""
    from .study.design import default_seeds

    return default_seeds(prof, random_seeds)


def planned_runs(prof, study: bool = True, random_seeds=None, ladder: bool = True) -> list[RunKey]:
    """Every training run (a :class:`~bcdet_helpers.runkey.RunKey`) a reproduction of ``prof`` starts.

    Notebook 04's runs (the profile's *own* arms on its first kind and seed, fold 0 -- notebook 04
    gets only ``profile``, so a smaller study such as ``--seeds 1 --kinds random`` does not change
    them; notebook 05 scores these same runs) plus, when ``study``, notebook 05's cross-validated
    study: arms x folds x the seeds of each kind (:func:`study_seeds`), and the leakage ladder's
    extra runs unless ``ladder`` is False.
    """
    from ..profiles import get_profile

    try:
        own = get_profile(prof.name)
    except ValueError:  # a Profile built by hand, not one of PROFILES
        own = prof
    chapter04 = [RunKey(arm, own.kinds[0], 0, own.seeds[0]) for arm in own.arms]
    return list(dict.fromkeys((study_runs(prof, random_seeds, ladder) if study else []) + chapter04))


def study_runs(prof, random_seeds=None, ladder: bool = True) -> list[RunKey]:
    """The runs of the cross-validated study: :func:`study.study_design`'s -- 5 folds x arms x seeds per
    kind (x fold partitions on the grouped split), plus :func:`ladder_runs` (``ladder=False``,
    ``--no-ladder``: without them -- the verdict needs none of them)."""
    from .study.design import study_design

    return study_design(prof, random_seeds=random_seeds, ladder=ladder).runs()


def ladder_runs(prof, random_seeds=None) -> list[RunKey]:
    """The leakage ladder's extra runs in the study (its arm on more random-split seeds, and on every
    random-split seed again with copies of the test images trained on: kind ``"augmented"``): the design's
    runs less those of the design without the ladder."""
    without = set(study_runs(prof, random_seeds, ladder=False))
    return [r for r in study_runs(prof, random_seeds) if r not in without]


def estimate(profile="paper", device="auto", study: bool | None = None, random_seeds=None,
             ladder: bool = True) -> dict:
    """How long the training in the course will take on ``device``, and where the number comes from.

    Runs = :func:`planned_runs` (notebook 04's runs, plus notebook 05's cross-validated study when it
    runs -- :func:`runs_study`: by default for the paper and laptop profiles -- each counted once),
    minus runs already finished in ``runs/<profile>/``. ``profile`` is a name or a
    :class:`~bcdet_helpers.profiles.Profile` (e.g. one with fewer seeds). Seconds per epoch:
    :func:`~bcdet_helpers.research.pace._pace` (recorded runs when there are some, else warmed steps timed now;
    ``seconds_per_epoch_source`` says which). Notebook 03's small depth experiment, data preparation and
    evaluation come on top (minutes on a CPU).
    """
    from ..device import auto_jobs, choose_device
    from ..profiles import get_profile
    from .study.cv import study_run_dir

    prof = get_profile(profile)
    dev = choose_device(device)
    with_study = runs_study(prof.name, study)
    runs = planned_runs(prof, with_study, random_seeds, ladder)
    chapter04 = planned_runs(prof, False)
    cv = study_runs(prof, random_seeds, ladder) if with_study else []
    todo = [k for k in runs if not (study_run_dir(prof, k) / "result.json").exists()]
    done = len(runs) - len(todo)
    n_train = _n_train_images(prof)
    # a run that also trains on k copies of its test fold (the ladder's "augmented" runs) does
    # 1 + k / ((folds - 1) x (1 - val_fraction)) times the work: a test fold is that share of the training part
    work = sum(1 + k.test_copies(prof.ladder_test_copies) / ((prof.folds - 1) * (1 - prof.val_fraction)) for k in todo)
    spe, jobs, source = _pace(prof, dev, n_train, auto_jobs(dev) if with_study else 1)
    epochs = round(work * prof.epochs)
    return {
        "profile": prof.name,
        "device": str(dev),
        "runs": len(runs),
        "runs_chapter04_only": len(set(chapter04) - set(cv)),
        "runs_study": len(cv),
        "study": with_study,
        "study_seeds": study_seeds(prof, random_seeds) if with_study else {},
        "runs_ladder": len(ladder_runs(prof, random_seeds)) if with_study and ladder else 0,
        "folds": prof.folds,
        "runs_done": done,
        "epochs_per_run": prof.epochs,
        "epochs_to_train": epochs,
        "n_train_images": n_train,
        "seconds_per_epoch": spe,
        "seconds_per_epoch_source": source,
        "training_seconds": epochs * spe / jobs,
        "jobs": jobs,
    }
