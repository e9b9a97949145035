"""What each exercise's check compares answers with, as a *recorded* run measured it.

A prediction's right answer is what the run measured, and the `class` run the teacher shows is
re-recorded whenever the course's profile changes. So the teacher's solutions are tested against the
recorded results, never against numbers typed into a test: :func:`contexts` reads, for one profile,

1. ``results/<profile>/metrics.json``, key ``exercises`` -- what every check of a reproduction was
   given (the notebooks write it down with :func:`~bcdet_helpers.exercises.core.save_measured`; ``bcdet reproduce`` and
   ``bcdet publish`` carry it to ``results/``);
2. ``results/teaching/exercises-<profile>.json`` -- the same record from chapters 01-03 run on their
   own (``results/teaching/README.md`` says how), for a reproduction recorded before (1) existed;
3. ``results/teaching/03_residual_lesson*.json`` -- notebook 03's own record of its measurements;
4. the recorded runs themselves: ``results/<profile>/runs/*/config.json`` (the phase table of 04.1),
   ``history.csv`` (the phase ratios of 04.3), ``metrics.json`` (the test fold's size, 05.1), the
   study's predictions (``results/<profile>-cv/``, else the ``class`` rehearsal's
   ``results/class-ladder/study/``) for 05.2, and the ladder of the study notebook 05 shows
   (``results/<profile>-ladder/ladder.csv``; for ``class``, which has no study, the laptop one) for 05.6.

The first source that has an exercise wins. ``python -m bcdet_helpers.research.recorded class``
prints what the recorded run measured for each exercise -- the numbers a class should expect.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..paths import project_root

ARMS = ("constant", "decay", "switching", "onecycle")


def results_dir() -> Path:
    return project_root() / "results"


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _frame(value):
    """A recorded table (``{"rows": [...]}``, as :func:`~bcdet_helpers.exercises.core.jsonable` writes it) as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(value["rows"]) if isinstance(value, dict) and "rows" in value else pd.DataFrame(value)


def _interval(value):
    from .stats import Interval

    return Interval(value["value"], value["low"], value["high"], float("nan"))


# how a recorded context is turned back into what the check takes (tables, intervals); the rest is as recorded
_REVIVE = {
    "04.1": lambda m: {"table": _frame(m["table"])},
    "05.2": lambda m: {"clustered": _interval(m["clustered"]), "image_level": _interval(m["image_level"])},
    "05.4": lambda m: {"comparisons": [tuple(row) for row in m["comparisons"]]},
    "05.6": lambda m: {"table": _frame(m["table"])},
}


def _from_record(record: dict) -> dict:
    return {ex_id: _REVIVE.get(ex_id, dict)(measured) for ex_id, measured in record.items()}


def _run(profile: str, arm: str) -> Path | None:
    found = sorted((results_dir() / profile / "runs").glob(f"{arm}-grouped-fold0-seed0"))
    return found[0] if found else None


def _phase_table(profile: str) -> dict:
    from ..profiles import Phase
    from ..train import phase_table

    run = _run(profile, "switching")
    if run is None:
        return {}
    phases = [Phase(**p) for p in json.loads((run / "config.json").read_text())["phases"]]
    return {"04.1": {"table": phase_table({"switching": phases})}}


def _phase_ratios(profile: str) -> dict:
    import pandas as pd

    from ..train import phase_stability

    ratios = {}
    for arm in ARMS:
        run = _run(profile, arm)
        if run is not None and (run / "history.csv").exists():
            ratios[arm] = max(r["ratio"] for r in phase_stability(pd.read_csv(run / "history.csv")))
    return {"04.3": {"ratios": ratios}} if ratios else {}


def _test_fold_size(profile: str) -> dict:
    runs = _json(results_dir() / profile / "metrics.json").get("runs", [])
    sizes = [r["n_test"] for r in runs if r.get("schedule") == "switching"] or [r["n_test"] for r in runs]
    return {"05.1": {"n": int(sizes[0])}} if sizes else {}


def study_folder(profile: str) -> Path | None:
    """The recorded cross-validated study of ``profile`` (``results/<profile>-cv``; for ``class``, which
    has none, the rehearsal's ``results/class-ladder/study``)."""
    for folder in (results_dir() / f"{profile}-cv", results_dir() / f"{profile}-ladder" / "study"):
        if (folder / "folds.csv").exists():
            return folder
    return None


def fold_predictions(profile: str, arm: str = "switching", part: str = "test"):
    """Chapter 04's run of ``arm`` (grouped split, fold 0, seed 0) as the recorded study predicted it:
    one row per image of ``part`` (``test`` or ``val``), final weights, label conflicts left out -- what
    notebook 05 scores in its first sections. ``None`` when no study of ``profile`` is recorded."""
    import pandas as pd

    from .study.files import label_conflicts

    folder = study_folder(profile)
    csv = None if folder is None else folder / {"test": "oof", "val": "val"}[part] / f"{arm}-grouped-fold0-seed0.csv"
    if csv is None or not csv.exists():
        return None
    folds = pd.read_csv(folder / "folds.csv")
    conflicts = set(label_conflicts(folds.drop_duplicates("file"))["file"])
    df = pd.read_csv(csv)
    return df[(df["weights"] == "last") & ~df["file"].isin(conflicts)].reset_index(drop=True)


def _fold_intervals(profile: str) -> dict:
    from ..profiles import get_profile
    from .stats import cluster_bootstrap

    df = fold_predictions(profile)
    if df is None:
        return {}
    proba, n_boot = df[["p_benign", "p_malignant", "p_normal"]].to_numpy(), get_profile(profile).bootstrap
    return {"05.2": {"clustered": cluster_bootstrap(df["y"], proba, df["group"], n_boot=n_boot)["accuracy"],
                     "image_level": cluster_bootstrap(df["y"], proba, df["file"], n_boot=n_boot)["accuracy"]}}


def _lesson(profile: str) -> dict:
    """Notebook 03's record (``residual_lesson.json``) of a run under ``profile``: its predictions' contexts."""
    for path in sorted((results_dir() / "teaching").glob("03_residual_lesson*.json")):
        lesson = _json(path)
        if lesson.get("profile") != profile:
            continue
        twins, ends, grads = lesson["twins"], lesson["loss_end_mean"], lesson["grad_first_last"]["plain"]
        zero = [v for k, v in lesson["first_batch_loss"].items() if k.endswith("zero (ours)")]
        return {"03.1": {"minimum": lesson["block_minimum"]},
                "03.5": {"measured": sum(zero) / len(zero)},
                "03.6": {"ratio": grads[0] / grads[1]},
                "03.7": {"final_loss": {twins[k]: ends[f"plain {twins[k]}"] for k in ("shallow", "deep")}}}
    return {}


def shown_study_profile(profile: str) -> str:
    """Whose recorded study notebook 05 shows under ``profile``: its own (``results/<profile>-cv``), else --
    for the course's small profiles, which have none -- the laptop one."""
    from .plan import runs_study

    if (results_dir() / f"{profile}-cv" / "study.json").exists() or runs_study(profile):
        return profile
    return "laptop"


def _ladder(profile: str) -> dict:
    """The leakage ladder notebook 05 shows under ``profile``: the one of the study it shows (section 6)."""
    import pandas as pd

    for name in (shown_study_profile(profile), profile):
        csv = results_dir() / f"{name}-ladder" / "ladder.csv"
        if csv.exists():
            return {"05.6": {"table": pd.read_csv(csv)}}
    return {}


def _constant(profile: str) -> dict:
    """Contexts that are the same for every run: the finder's threshold, the study's comparisons."""
    from ..data.duplicates import THRESHOLD
    from .study import COMPARISONS

    out = {"01.2": {"threshold": THRESHOLD}, "05.4": {"comparisons": COMPARISONS}}
    split = results_dir() / profile / "splits" / "grouped-fold0-seed0.csv"
    if split.exists():  # every image of the profile with its class: the class balance of 01.1
        import pandas as pd

        out["01.1"] = {"counts": pd.read_csv(split)["class"].value_counts().to_dict()}
    cfg = _run(profile, "switching")
    if cfg is not None:  # the augmentation the runs trained with (02.5)
        prof = json.loads((cfg / "config.json").read_text())["profile"]
        out["02.5"] = {"augment": {"hflip_p": prof.get("augment_hflip_p", 0.0), "vflip_p": 0.0,
                                   "degrees": prof.get("augment_degrees", 0.0),
                                   "scale": tuple(prof.get("augment_scale", (1.0, 1.0)))}}
    return out


def contexts(profile: str) -> dict[str, dict]:
    """``{exercise id: what its check is given}`` for ``profile``, from the recorded results (see the
    module's docstring for the order). Exercises whose check needs nothing measured are absent."""
    found = {}
    for source in (_constant, _ladder, _fold_intervals, _test_fold_size, _phase_ratios, _phase_table, _lesson):
        found.update(source(profile))
    found.update(_from_record(_json(results_dir() / "teaching" / f"exercises-{profile}.json").get("exercises", {})))
    found.update(_from_record(_json(results_dir() / profile / "metrics.json").get("exercises", {})))
    return found


def sources(profile: str) -> dict[str, str]:
    """Where :func:`contexts` found each exercise's context (for the report and the tests' messages)."""
    record = _json(results_dir() / profile / "metrics.json").get("exercises", {})
    teaching = _json(results_dir() / "teaching" / f"exercises-{profile}.json").get("exercises", {})
    out = {}
    for ex_id in contexts(profile):
        out[ex_id] = (f"results/{profile}/metrics.json" if ex_id in record else
                      f"results/teaching/exercises-{profile}.json" if ex_id in teaching else
                      "results/teaching/03_residual_lesson*.json" if ex_id in _lesson(profile) else
                      f"results/{profile}* (derived from the recorded runs)")
    return out


def _short(value) -> str:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return f"a table of {len(value)} rows"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "low") and hasattr(value, "high"):
        return f"[{value.low:.3f}, {value.high:.3f}]"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"{len(value)} items"
    return str(value)


def main(argv=None) -> int:
    from ..exercises import EXERCISES

    args = list(sys.argv[1:] if argv is None else argv)
    profile = args[0] if args else "class"
    found, where = contexts(profile), sources(profile)
    print(f"What the recorded `{profile}` results measured for each exercise's check:")
    for ex_id, ex in sorted(EXERCISES.items()):
        if ex_id in found:
            print(f"  {ex_id} {ex.title}\n        {_short(found[ex_id])}   ({where[ex_id]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
