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
=============  ==============================================================================

The first two rungs are the study's out-of-fold predictions (``oof/``). The last three are what
*not* to do; they read only the test records of the runs (``inflation/``: the test fold's
predictions after every epoch, :class:`~bcdet_helpers.callbacks.TestRecord`), which no selection
of the study ever reads. Every table and figure labels them as inflation.

Each rung's accuracy has a 95 % CI from the bootstrap over near-duplicate groups (pooled over
the folds and seeds it reports) and the spread of its single runs (lowest and highest
(fold, seed) accuracy). Rungs 3-5 can only go up -- each picks a maximum over choices that include
the rung before -- so their gains measure how much room for selection the design leaves.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..errors import BcdetError
from ..paths import CLASSES
from ..profiles import DEFAULTS
from .result import WEIGHTS_RULE, _run_name, load_predictions, read_folds

__all__ = ["COLUMNS", "LADDER_ARM", "RUNGS", "Rung", "ladder_extra_runs", "leakage_ladder", "reaches", "write_ladder"]

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
)
COLUMNS = ["rung", "adds", "label", "accuracy", "low", "high", "gain", "spread_low", "spread_high",
           "n_images", "n_runs", "note"]


def leakage_ladder(folder: str | Path, arm: str = LADDER_ARM, *, include_conflicts: bool = False,
                   n_boot: int | None = None, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """The ladder of ``arm`` from a study folder's files alone (``folds.csv``, ``oof/``,
    ``inflation/``): one row per rung, columns :data:`COLUMNS`. Label conflicts are left out as in
    the study. Needs the grouped and random split kinds and every random run's test record."""
    folder = Path(folder)
    folds = read_folds(folder)
    keep = folds if include_conflicts else folds[~folds["conflict"].astype(bool)]
    scored = set(keep["file"])
    groups = dict(zip(folds["file"], folds["group"].astype(int)))
    oof = load_predictions(folder)
    oof = oof[(oof["arm"] == arm) & (oof["weights"] == WEIGHTS_RULE) & oof["file"].isin(scored)]
    missing = [k for k in ("grouped", "random") if not (oof["kind"] == k).any()]
    if missing:
        raise BcdetError(f"{folder} has no {' or '.join(missing)} runs of {arm!r}: the ladder needs both split kinds "
                         "of the study (bcdet reproduce runs them).")
    n_boot = n_boot or DEFAULTS.bootstrap

    def rung(i: int, rows: pd.DataFrame, runs: pd.DataFrame, note: str = "") -> dict:
        ci = stats.cluster_bootstrap(rows["y"], rows["pred_k"], rows["file"].map(groups), n_boot=n_boot, seed=seed,
                                     alpha=alpha)["accuracy"]
        r = RUNGS[i]
        return {"rung": r.name, "adds": r.adds, "label": r.label, "accuracy": ci.value, "low": ci.low,
                "high": ci.high, "spread_low": float(runs["accuracy"].min()), "spread_high": float(runs["accuracy"].max()),
                "n_images": int(rows["file"].nunique()), "n_runs": len(runs), "note": note}

    out = []
    for i, kind in enumerate(("grouped", "random")):
        rows = oof[oof["kind"] == kind]
        rows = rows.assign(pred_k=rows[[f"p_{c}" for c in CLASSES]].to_numpy().argmax(1))  # the final weights' class
        out.append(rung(i, rows, _per_run(rows), f"{rows['seed'].nunique()} seed(s), every image once per seed"))

    chosen = _test_epochs(folder, arm, oof[oof["kind"] == "random"], scored)
    per_run = _per_run(chosen)
    e = chosen.groupby(["fold", "seed"])["epoch"].first()
    out.append(rung(2, chosen, per_run, f"chosen epochs: median {e.median():.0f} (range {e.min()}-{e.max()}) "
                                        f"of {int(chosen['epochs'].max())}"))

    by_seed = chosen.groupby("seed").apply(lambda d: (d["pred_k"] == d["y"]).mean(), include_groups=False)
    best = int(by_seed.idxmax())
    out.append(rung(3, chosen[chosen["seed"] == best], per_run[per_run["seed"] == best],
                    f"seed {best} of {len(by_seed)}" + (" (one seed: nothing to choose from)" if len(by_seed) == 1 else "")))

    runs_best = per_run[per_run["seed"] == best]
    lucky = int(runs_best.loc[runs_best["accuracy"].idxmax(), "fold"])
    out.append(rung(4, chosen[(chosen["seed"] == best) & (chosen["fold"] == lucky)], runs_best,
                    f"fold {lucky} of {len(runs_best)} (seed {best})"))

    table = pd.DataFrame(out)
    table["gain"] = table["accuracy"].diff()
    return table[COLUMNS]


def ladder_extra_runs(prof, seeds_of: dict) -> dict:
    """The runs the ladder needs beyond the study's design, as :func:`run_study`'s ``extra``: the
    ``best_seed`` rung chooses among seeds of the random split, which the study runs with its first
    seed only (it measures just the leakage gap there) -- so the ladder arm gets every seed of the
    profile on the random split: ``{LADDER_ARM: {"random": [the missing seeds]}}``, or ``{}``."""
    have = seeds_of.get("random")
    missing = [s for s in prof.seeds if s not in (have or [])]
    if have is None or LADDER_ARM not in prof.schedules or not missing:
        return {}
    return {LADDER_ARM: {"random": missing}}


def _per_run(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each (fold, seed) run."""
    return (rows.assign(right=rows["pred_k"] == rows["y"]).groupby(["fold", "seed"], as_index=False)["right"].mean()
            .rename(columns={"right": "accuracy"}))


def _test_epochs(folder: Path, arm: str, random_oof: pd.DataFrame, scored: set) -> pd.DataFrame:
    """For every random-split run: its scored test images' predictions at the epoch with the best
    test accuracy (the earliest of ties), from ``inflation/<run>.csv``."""
    frames, missing = [], []
    for (fold, seed), _ in random_oof.groupby(["fold", "seed"]):
        path = folder / "inflation" / f"{_run_name(arm, 'random', int(fold), int(seed))}.csv"
        if not path.exists():
            missing.append(path.name)
            continue
        rec = pd.read_csv(path)
        rec = rec[rec["file"].isin(scored)]
        epochs = [c for c in rec.columns if c.startswith("e") and c[1:].isdigit()]
        acc = [(rec[c] == rec["y"]).mean() for c in epochs]
        best = epochs[int(np.argmax(acc))]
        frames.append(pd.DataFrame({"file": rec["file"], "y": rec["y"], "pred_k": rec[best], "fold": int(fold),
                                    "seed": int(seed), "epoch": int(best[1:]), "epochs": len(epochs)}))
    if missing:
        raise BcdetError(f"{folder / 'inflation'} lacks the test records of {len(missing)} run(s) ({', '.join(missing[:4])}"
                         f"{' ...' if len(missing) > 4 else ''}): runs trained before the records existed. Delete those "
                         "run folders and run the study again to retrain them.")
    return pd.concat(frames, ignore_index=True)


def write_ladder(folder: str | Path, out: str | Path, arm: str = LADDER_ARM, *, command: str = "",
                 paper: float | None = None, **kw) -> pd.DataFrame:
    """:func:`leakage_ladder` of ``folder`` written to ``out``: ``ladder.csv``, ``ladder.json`` (what,
    from which study, the command, commit and date) and ``waterfall.png``."""
    from .. import plots
    from ..published import PUBLISHED
    from ..runinfo import git_commit, write_json

    t0 = time.perf_counter()
    table = leakage_ladder(folder, arm, **kw)
    paper = PUBLISHED["paper_switching"]["accuracy"] if paper is None else paper
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "ladder.csv", index=False)
    design = json.loads((Path(folder) / "design.json").read_text()) if (Path(folder) / "design.json").exists() else {}
    write_json(out / "ladder.json", {
        "arm": arm, "study": str(folder), "profile": (design.get("profile") or {}).get("name"),
        "rungs": [asdict(r) for r in RUNGS], "paper_accuracy": paper,
        "table": json.loads(table.to_json(orient="records")), "command": command, "commit": git_commit(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": time.perf_counter() - t0,
    })
    fig = plots.waterfall(table, paper=paper, title=f"{arm}: from the honest number to a paper-like one")
    plots.save(fig, out, "waterfall")
    return table


def reaches(table: pd.DataFrame, target: float) -> str:
    """One sentence: which rungs together reach ``target``, or how far short the top one stays."""
    top = table.iloc[-1]
    hit = table[table["accuracy"] >= target]
    if len(hit):
        r = hit.iloc[0]
        return (f"the rungs up to {r['rung']} reach {100 * r['accuracy']:.1f} % (target {100 * target:.0f} %)")
    return (f"all rungs together reach {100 * top['accuracy']:.1f} %, {100 * (target - top['accuracy']):.1f} points "
            f"short of {100 * target:.0f} %" if math.isfinite(top["accuracy"]) else "no accuracy")
