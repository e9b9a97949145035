"""The leakage ladder: how one arm's honest accuracy climbs toward a paper's ~90 % (issue #19).

The paper states no split, no validation set and no selection rule. Instead of guessing what it
did, we take the cross-validated study's own runs of one arm and add, rung by rung, one common
practice that inflates a BUSI accuracy, each on top of the ones before:

=============  ==============================================================================
rung           what it adds
=============  ==============================================================================
honest         grouped 5-fold CV, the final weights of every run (the study's number)
image_folds    + image-level folds: near-duplicates of a test image sit in the training folds
test_epoch     + each run's epoch chosen by its *test* accuracy (no separate validation set)
best_seed      + only the best seed reported, chosen on test
lucky_fold     + one lucky fold reported instead of all five
augment_       + augmented copies of the test images trained on (augmenting the dataset
before_split   before splitting it), with the three selections above redone on those runs
=============  ==============================================================================

The first two rungs are the study's out-of-fold predictions (``oof/``). The last four are what
*not* to do; they read only the test records of the runs (``inflation/``: the test fold's
predictions after every epoch, :class:`~bcdet_helpers.callbacks.TestRecord`), which no selection
of the study ever reads. Every table and figure labels them as inflation. The last rung needs its
own runs -- the ladder arm on the random folds with ``Profile.ladder_test_copies`` augmented copies
of each test image added to training (the study's ``"augmented"`` runs, :func:`ladder_extra_runs`);
a study without them has a ladder of five rungs, and says so.

Each rung's accuracy has a 95 % CI from the bootstrap over near-duplicate groups (pooled over
the folds and seeds it reports) and the spread of its single runs (lowest and highest
(fold, seed) accuracy). Rungs 3-5 can only go up -- each picks a maximum over choices that include
the rung before -- so their gains measure how much room for selection the design leaves. Rung 6
can go down: a leak is not a selection. A gain also depends on what is stacked below it:
:mod:`~bcdet_helpers.research.study.ladder_orders` gives each habit's gain over every order (``orders.csv``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .. import stats
from ...errors import BcdetError
from ...profiles import DEFAULTS
from ...runkey import AUGMENTED, RunKey
from .files import read_folds
from .ladder_orders import order_gains, orders_section, test_records
from .result import load_study

__all__ = ["AUGMENTED", "COLUMNS", "LADDER_ARM", "LADDER_FILES", "RUNGS", "Rung", "ladder_extra_runs", "leakage_ladder",
           "not_measured", "reaches", "study_profile", "write_ladder"]

LADDER_ARM = "switching"  # the paper's method: the number the ladder explains


@dataclass(frozen=True)
class Rung:
    name: str
    adds: str
    label: str  # "honest"; "leakage" (the paper-like split); "inflation" (selection on test: never do it)


RUNGS = (
    Rung("honest", "grouped 5-fold CV, final weights (the study)", "honest"),
    Rung("image_folds", "+ image-level folds: near-duplicates cross train and test", "leakage"),
    Rung("test_epoch", "+ each run's epoch chosen on test accuracy", "inflation"),
    Rung("best_seed", "+ the best seed reported, chosen on test", "inflation"),
    Rung("lucky_fold", "+ one lucky fold reported instead of all", "inflation"),
    Rung("augment_before_split", "+ augmented copies of the test images trained on (augmenting before splitting)",
         "inflation"),
)
COLUMNS = ["rung", "adds", "label", "accuracy", "low", "high", "gain", "spread_low", "spread_high",
           "n_images", "n_runs", "note"]
LADDER_FILES = ("ladder.csv", "orders.csv", "ladder.json", "waterfall.png", "README.md")  # what write_ladder writes


def leakage_ladder(folder: str | Path, arm: str = LADDER_ARM, *, include_conflicts: bool = False,
                   n_boot: int | None = None, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """The ladder of ``arm`` from a study folder's files alone: one row per rung, columns
    :data:`COLUMNS`. The first two rungs *are* the study's pooled out-of-fold scores of the arm
    (``study.json``, or :func:`evaluate_study` of the folder when it has none for this
    ``include_conflicts``); the inflation rungs read ``inflation/``. Needs the grouped and random
    kinds and every random run's test record."""
    from .evaluation import evaluate_study

    folder = Path(folder)
    n_boot = n_boot or DEFAULTS.bootstrap
    path = folder / "study.json"
    study = load_study(path) if path.exists() else None
    if study is None or study.include_conflicts != include_conflicts:
        study = evaluate_study(folder, include_conflicts=include_conflicts, n_boot=n_boot, seed=seed, alpha=alpha)
    have = {(r.arm, r.kind) for r in study.runs}  # a study in progress may have some arms of a kind only
    missing = [k for k in ("grouped", "random") if (arm, k) not in have]
    if missing:
        raise BcdetError(f"{folder} has no {' or '.join(missing)} runs of {arm!r}: the ladder needs both kinds "
                         "of the study (bcdet reproduce runs them).")
    runs = {kind: [r for r in study.runs if (r.arm, r.kind, r.weights) == (arm, kind, study.weights)]
            for kind in ("grouped", "random")}

    def rung(i: int, acc: stats.Interval, n_images: int, run_acc, note: str) -> dict:
        r = RUNGS[i]
        return {"rung": r.name, "adds": r.adds, "label": r.label, "accuracy": acc.value, "low": acc.low,
                "high": acc.high, "spread_low": float(min(run_acc)), "spread_high": float(max(run_acc)),
                "n_images": int(n_images), "n_runs": len(run_acc), "note": note}

    out = []
    for i, kind in enumerate(("grouped", "random")):
        score = study.score(arm, kind)
        out.append(rung(i, score.accuracy, score.n_images, [r.accuracy for r in runs[kind]],
                        f"{score.n_seeds} seed(s), every image once per seed"))

    folds = read_folds(folder)
    scored = set(folds["file"] if include_conflicts else folds.loc[~folds["conflict"].astype(bool), "file"])
    groups = dict(zip(folds["file"], folds["group"].astype(int)))

    def pooled(rows: pd.DataFrame) -> stats.Interval:
        return stats.cluster_bootstrap(rows["y"], rows["pred_k"], rows["file"].map(groups), n_boot=n_boot, seed=seed,
                                       alpha=alpha)["accuracy"]

    random_runs = [(r.fold, r.seed) for r in runs["random"]]
    chosen = _test_epochs(folder, arm, random_runs, scored)
    per_run = _per_run(chosen)
    e = chosen.groupby(["fold", "seed"])["epoch"].first()
    out.append(rung(2, pooled(chosen), chosen["file"].nunique(), per_run["accuracy"],
                    f"chosen epochs: median {e.median():.0f} (range {e.min()}-{e.max()}) of {int(chosen['epochs'].max())}"))

    best, lucky, runs_best = _best_seed_lucky_fold(chosen, per_run)
    n_seeds = chosen["seed"].nunique()
    out.append(rung(3, pooled(chosen[chosen["seed"] == best]), chosen["file"].nunique(), runs_best["accuracy"],
                    f"seed {best} of {n_seeds}" + (" (one seed: nothing to choose from)" if n_seeds == 1 else "")))
    lucky_rows = chosen[(chosen["seed"] == best) & (chosen["fold"] == lucky)]
    out.append(rung(4, pooled(lucky_rows), lucky_rows["file"].nunique(), runs_best["accuracy"],
                    f"fold {lucky} of {len(runs_best)} (seed {best})"))

    if any((folder / "inflation" / f"{RunKey(arm, AUGMENTED, f, s).name}.csv").exists() for f, s in random_runs):
        leaky = _test_epochs(folder, arm, random_runs, scored, kind=AUGMENTED)
        best_l, lucky_l, runs_best_l = _best_seed_lucky_fold(leaky, _per_run(leaky))
        rows = leaky[(leaky["seed"] == best_l) & (leaky["fold"] == lucky_l)]
        out.append(rung(5, pooled(rows), rows["file"].nunique(), runs_best_l["accuracy"],
                        f"fold {lucky_l}, seed {best_l}; the leak alone, all {len(random_runs)} runs at their test-chosen "
                        f"epochs: {100 * (chosen['pred_k'] == chosen['y']).mean():.1f} -> "
                        f"{100 * (leaky['pred_k'] == leaky['y']).mean():.1f} %"))

    table = pd.DataFrame(out)
    table["gain"] = table["accuracy"].diff()
    return table[COLUMNS]


def not_measured(table: pd.DataFrame) -> list[str]:
    """The rungs a ladder lacks (a study without the ``augmented`` runs has no ``augment_before_split``)."""
    return [r.name for r in RUNGS if r.name not in set(table["rung"])]


def _best_seed_lucky_fold(chosen: pd.DataFrame, per_run: pd.DataFrame) -> tuple[int, int, pd.DataFrame]:
    """The seed with the best pooled test accuracy, its best fold, and its runs' accuracies
    (``per_run``: :func:`_per_run` of ``chosen``)."""
    by_seed = chosen.groupby("seed").apply(lambda d: (d["pred_k"] == d["y"]).mean(), include_groups=False)
    best = int(by_seed.idxmax())
    runs_best = per_run[per_run["seed"] == best]
    return best, int(runs_best.loc[runs_best["accuracy"].idxmax(), "fold"]), runs_best


def ladder_extra_runs(prof, seeds_of: dict) -> dict:
    """The runs the ladder needs beyond the study's design, as :func:`run_study`'s ``extra``: the
    ``best_seed`` rung chooses among seeds of the random split, which the study runs with its first
    seed only (it measures just the leakage gap there) -- so the ladder arm gets every seed of the
    profile on the random split; and the ``augment_before_split`` rung needs the same runs again
    with copies of their test images trained on (kind ``"augmented"``) -- for each of the profile's
    ``ladder_arms``: ``{arm: {"random": [the missing seeds], "augmented": [all of them]}}``, or ``{}``."""
    have = seeds_of.get("random")
    if have is None:
        return {}
    missing = [s for s in prof.seeds if s not in have]
    return {arm: {**({"random": missing} if missing else {}), AUGMENTED: [*have, *missing]}
            for arm in prof.ladder_arms}


def _per_run(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each (fold, seed) run."""
    return (rows.assign(right=rows["pred_k"] == rows["y"]).groupby(["fold", "seed"], as_index=False)["right"].mean()
            .rename(columns={"right": "accuracy"}))


def _test_epochs(folder: Path, arm: str, runs: list[tuple[int, int]], scored: set, kind: str = "random") -> pd.DataFrame:
    """For every random-split ``(fold, seed)`` run (of ``kind``: ``"random"``, or the ladder's
    ``"augmented"``): its scored test images' predictions ``pred_k`` at the epoch with the best test accuracy
    (the earliest of ties), from ``inflation/<run>.csv`` (:func:`~.ladder_orders.test_records`)."""
    rec = test_records(folder, arm, kind, runs, scored)
    return rec.rename(columns={"chosen": "pred_k"})[["file", "y", "pred_k", "fold", "seed", "epoch", "epochs"]]


def study_profile(folder: str | Path) -> str | None:
    """The name of the profile a study folder ran under (its ``design.json``), or ``None`` when it does not say."""
    try:
        return (json.loads((Path(folder) / "design.json").read_text()).get("profile") or {}).get("name")
    except (OSError, ValueError):
        return None


def write_ladder(folder: str | Path, out: str | Path, arm: str = LADDER_ARM, *, command: str = "",
                 paper: float | None = None, profile: str | None = None, force: bool = False, **kw) -> pd.DataFrame:
    """:func:`leakage_ladder` of ``folder`` written to ``out``: ``ladder.csv``, ``orders.csv`` (each habit's gain
    over every order, :func:`~bcdet_helpers.research.study.ladder_orders.order_gains`), ``ladder.json`` (what,
    from which study, the command, commit and date), ``waterfall.png`` and a ``README.md`` that shows
    them (its tables written from the CSVs, never by hand).

    Refused, before any work, when ``profile`` is given and the study ran under another one (a smoke
    study must not become the paper's ladder), and when ``out`` is a folder the ladder did not write or
    holds committed records, unless ``force`` (:func:`outputs.claim`)."""
    from ... import plots
    from ..outputs import claim, mark
    from ...published import PUBLISHED
    from ...runinfo import git_commit, write_json

    t0 = time.perf_counter()
    ran = study_profile(folder)
    if profile is not None and ran != profile:
        fix = f"--study with a {profile!r} study (e.g. results/{profile}-cv)"
        raise BcdetError(f"{folder} is a study of the {ran!r} profile, not {profile!r}: pass --profile {ran} to climb "
                         f"its ladder, or {fix}." if ran else
                         f"{Path(folder) / 'design.json'} names no profile, so the study cannot be checked against "
                         f"--profile {profile}: pass {fix}.")
    out = Path(out)
    ours = claim(out, force=force, names=LADDER_FILES)
    table = leakage_ladder(folder, arm, **kw)
    try:
        orders, why_not = order_gains(folder, arm, include_conflicts=kw.get("include_conflicts", False)), ""
    except BcdetError as exc:  # e.g. a study whose grouped runs predate the test records
        orders, why_not = None, str(exc)
    paper = PUBLISHED["paper_switching"]["accuracy"] if paper is None else paper
    out.mkdir(parents=True, exist_ok=True)
    if ours:  # a folder forced open keeps what else it holds, so it stays unmarked
        mark(out, command or "bcdet_helpers.research.study.write_ladder")
    table.to_csv(out / "ladder.csv", index=False)
    if orders is not None:
        orders.to_csv(out / "orders.csv", index=False)
    elif (out / "orders.csv").exists():
        (out / "orders.csv").unlink()  # ours (claimed above): never a stale table beside a new ladder
    meta = {  # what and from where; the numbers are ladder.csv
        "arm": arm, "study": _shown(folder), "profile": ran,
        "rungs": [asdict(r) for r in RUNGS], "not_measured": not_measured(table), "paper_accuracy": paper,
        "orders_not_measured": why_not or None, "command": command, "commit": git_commit(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": time.perf_counter() - t0,
    }
    write_json(out / "ladder.json", meta)
    fig = plots.waterfall(table, paper=paper, title=f"{arm}: from the honest number to a paper-like one")
    plots.save(fig, out, "waterfall")
    (out / "README.md").write_text(ladder_readme(table, meta) + "\n" + orders_section(orders, why_not))
    return table


def ladder_readme(table: pd.DataFrame, meta: dict) -> str:
    """The README of a recorded ladder: the table of ``ladder.csv`` with its command, commit and study."""
    def pct(x):
        return f"{100 * x:.1f}" if math.isfinite(x) else "–"

    rows = []
    for r in table.itertuples():
        if not math.isfinite(r.accuracy):
            rows.append(f"| {r.rung} | not measured | | {r.label} | the study has no runs for it |")
            continue
        label = f"**{r.label}**" if r.label == "inflation" else r.label
        gain = "" if r.Index == 0 else f"{100 * r.gain:+.1f}"
        rows.append(f"| {r.rung} | {pct(r.accuracy)} % [{pct(r.low)}, {pct(r.high)}] | {gain} | {label} | "
                    f"{pct(r.spread_low)}–{pct(r.spread_high)} % | {r.note} |")
    sentence = reaches(table, meta["paper_accuracy"])
    missing = "".join(f"\n- `{name}` is not measured: the study has no runs for it (`bcdet reproduce` trains them)."
                      for name in meta["not_measured"])
    return f"""# The leakage ladder of the `{meta['profile']}` study

How far do common habits lift an honest BUSI accuracy towards the paper's ~{100 * meta['paper_accuracy']:.0f} %? One arm,
`{meta['arm']}`, climbs from the cross-validated study's honest number (`{meta['study']}/`) one habit per rung,
each on top of the ones before (`bcdet_helpers/research/study/ladder.py` says what each adds). The **inflation** rungs
choose on test: they are what *not* to do, recorded apart from the study (`inflation/`) and read by no choice
of it. Written from the study's files alone (no training, {meta['seconds']:.1f} s) by

```bash
{meta['command']}
```

at commit `{meta['commit']}`, {meta['at']}. Accuracy with its 95 % CI (bootstrap over near-duplicate groups,
pooled over the folds and seeds the rung reports), gain over the rung before, and the spread of its single
(fold, seed) runs:

| rung | accuracy [95 % CI] | gain | kind | runs | note |
| --- | --- | ---: | --- | --- | --- |
{chr(10).join(rows)}

![the ladder](waterfall.png)

{sentence[:1].upper()}{sentence[1:]}.{missing}
"""


def _shown(folder) -> str:
    """A study folder as a record names it: relative to the project when inside it (no machine's path)."""
    from ...paths import project_root

    try:
        return str(Path(folder).resolve().relative_to(project_root()))
    except ValueError:
        return str(folder)


def reaches(table: pd.DataFrame, target: float) -> str:
    """One sentence: which rungs together reach ``target``, or how far short the top one stays."""
    top = table.iloc[-1]
    hit = table[table["accuracy"] >= target]
    if len(hit):
        r = hit.iloc[0]
        return (f"the rungs up to {r['rung']} reach {100 * r['accuracy']:.1f} % (target {100 * target:.0f} %)")
    return (f"all rungs together reach {100 * top['accuracy']:.1f} %, {100 * (target - top['accuracy']):.1f} points "
            f"short of {100 * target:.0f} %" if math.isfinite(top["accuracy"]) else "no accuracy")
