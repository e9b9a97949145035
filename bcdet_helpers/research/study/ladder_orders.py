"""Does the leakage ladder's order matter? Each habit's gain over every order it can be stacked in (issue #28).

The ladder (:mod:`~bcdet_helpers.research.study.ladder`) stacks its habits in one order, and a habit's gain
depends on what is already below it: choosing the epoch on test gains more on a model that over-fits, a lucky
fold more once seeds are pooled. The four habits that can go in any order -- ``image_folds``, ``test_epoch``,
``best_seed``, ``lucky_fold`` -- give 4! = 24 orders, and every order's gains come from the accuracies of the
2^4 = 16 sets of habits (:func:`habit_accuracy`). :func:`order_gains` reports, per habit, its gain in the
ladder's order, the mean over the 24 orders (the Shapley value: the 4 means add up to the gain of all four
habits together, whatever the order) and the smallest and largest gain an order gives it.

``augment_before_split`` cannot join them: its runs exist on the random split only (test copies *are* the
random split plus a leak), so it is stated alone instead -- its runs against the same random-split runs
without copies, at final weights (no selection on test at all) and at each run's test-chosen epoch.

Everything is read from the test records (``inflation/``, the test fold's predictions after every epoch) of the
first fold partition, the one both splits share, on the seeds both splits ran: the same folds, seeds and images
for every set of habits, so every difference is paired. Label conflicts are left out, as everywhere. Point values
only: the ladder's own table carries the intervals, and this table says how far its gains move with the order.
"""
from __future__ import annotations

import math
from itertools import combinations, permutations
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import BcdetError
from ...runkey import AUGMENTED, RunKey
from .files import read_folds

__all__ = ["HABITS", "ORDER_COLUMNS", "habit_accuracy", "order_gains", "test_records"]

HABITS = ("image_folds", "test_epoch", "best_seed", "lucky_fold")  # the ladder's order; any order is possible
ORDER_COLUMNS = ["arm", "habit", "in_ladder_order", "mean_over_orders", "lowest", "highest", "orders", "note"]


def test_records(folder: str | Path, arm: str, kind: str, runs: list[tuple[int, int]], scored: set) -> pd.DataFrame:
    """``file, y, fold, seed, final, chosen, epoch, epochs``: every ``(fold, seed)`` run's scored test images with
    the class predicted at the last epoch (``final``) and at the epoch of the best test accuracy (``chosen``, the
    earliest of ties; its number ``epoch`` of ``epochs``), from ``inflation/<run>.csv`` (partition 0). Refused,
    naming the files and what to do, when a run's record is missing."""
    folder = Path(folder)
    frames, missing = [], []
    for fold, seed in runs:
        path = folder / "inflation" / f"{RunKey(arm, kind, fold, seed).name}.csv"
        if not path.exists():
            missing.append(path.name)
            continue
        rec = pd.read_csv(path)
        rec = rec[rec["file"].isin(scored)]
        epochs = [c for c in rec.columns if c.startswith("e") and c[1:].isdigit()]
        best = epochs[int(np.argmax([(rec[c] == rec["y"]).mean() for c in epochs]))]
        frames.append(pd.DataFrame({"file": rec["file"], "y": rec["y"], "fold": int(fold), "seed": int(seed),
                                    "final": rec[epochs[-1]], "chosen": rec[best], "epoch": int(best[1:]),
                                    "epochs": len(epochs)}))
    if missing:
        why = ("runs not trained yet: run the study again (finished runs are loaded) to train them" if kind == AUGMENTED
               else "runs trained before the records existed. Delete those run folders and run the study again to "
               "retrain them")
        raise BcdetError(f"{folder / 'inflation'} lacks the test records of {len(missing)} run(s) ({', '.join(missing[:4])}"
                         f"{' ...' if len(missing) > 4 else ''}): {why}.")
    return pd.concat(frames, ignore_index=True)


def habit_accuracy(grouped: pd.DataFrame, random: pd.DataFrame, habits) -> float:
    """The pooled test accuracy a report reaches with the set ``habits``: the random split's runs with
    ``image_folds``, else the grouped split's; each run's test-chosen epoch with ``test_epoch``, else its last;
    only the seed with the best pooled accuracy with ``best_seed``; only the best fold with ``lucky_fold``
    (of that seed, or pooled over the seeds without ``best_seed``). Ties go to the lower seed or fold."""
    habits = set(habits)
    rows = random if "image_folds" in habits else grouped
    right = rows["chosen" if "test_epoch" in habits else "final"] == rows["y"]
    if "best_seed" in habits:
        keep = rows["seed"] == right.groupby(rows["seed"]).mean().idxmax()
        rows, right = rows[keep], right[keep]
    if "lucky_fold" in habits:
        keep = rows["fold"] == right.groupby(rows["fold"]).mean().idxmax()
        rows, right = rows[keep], right[keep]
    return float(right.mean())


def order_gains(folder: str | Path, arm: str, *, include_conflicts: bool = False) -> pd.DataFrame:
    """:data:`ORDER_COLUMNS`, one row per habit of :data:`HABITS` and one for ``augment_before_split`` alone
    (when the study has its runs): each habit's accuracy gain in the ladder's order, its mean over every order
    of the four (they add up to the gain of all four), and its lowest and highest over those orders."""
    folder = Path(folder)
    folds = read_folds(folder)
    folds = folds[folds["partition"] == 0] if "partition" in folds else folds
    scored = set(folds["file"] if include_conflicts else folds.loc[~folds["conflict"].astype(bool), "file"])
    have = {k: set(_runs_of(folder, arm, k)) for k in ("grouped", "random", AUGMENTED)}
    seeds = sorted({s for _, s in have["grouped"]} & {s for _, s in have["random"]})
    if not seeds:
        raise BcdetError(f"{folder} has no seed that both the grouped and the random split of {arm!r} ran: the order "
                         "question needs both (bcdet reproduce runs them).")
    runs = sorted((f, s) for f, s in have["random"] if s in seeds)
    grouped = test_records(folder, arm, "grouped", sorted((f, s) for f, s in have["grouped"] if s in seeds), scored)
    random = test_records(folder, arm, "random", runs, scored)
    value = {frozenset(c): habit_accuracy(grouped, random, c)
             for n in range(len(HABITS) + 1) for c in combinations(HABITS, n)}
    orders = list(permutations(HABITS))
    out = []
    for h in HABITS:
        gains = [value[frozenset(o[:o.index(h) + 1])] - value[frozenset(o[:o.index(h)])] for o in orders]
        ladder = HABITS[:HABITS.index(h)]
        note = f"{len(seeds)} seed(s) on both splits" if h == "best_seed" else ""
        in_order = value[frozenset((*ladder, h))] - value[frozenset(ladder)]
        out.append({"arm": arm, "habit": h, "in_ladder_order": in_order, "mean_over_orders": float(np.mean(gains)),
                    "lowest": float(min(gains)), "highest": float(max(gains)), "orders": len(orders), "note": note})
    aug = sorted(r for r in have[AUGMENTED] if r in set(runs))
    if aug:
        leaky = test_records(folder, arm, AUGMENTED, aug, scored)
        plain = random[random.set_index(["fold", "seed"]).index.isin(aug)]  # the same runs without the copies
        final = _acc(leaky, "final") - _acc(plain, "final")
        chosen = _acc(leaky, "chosen") - _acc(plain, "chosen")
        out.append({"arm": arm, "habit": "augment_before_split", "in_ladder_order": math.nan,
                    "mean_over_orders": math.nan, "lowest": min(final, chosen), "highest": max(final, chosen),
                    "orders": 0, "note": f"alone, {len(aug)} random-split runs with and without test copies: "
                                         f"{100 * final:+.1f} points at final weights, {100 * chosen:+.1f} at each "
                                         "run's test-chosen epoch"})
    return pd.DataFrame(out, columns=ORDER_COLUMNS)


def _acc(rows: pd.DataFrame, column: str) -> float:
    return float((rows[column] == rows["y"]).mean())


def _runs_of(folder: Path, arm: str, kind: str) -> list[tuple[int, int]]:
    """The ``(fold, seed)`` runs of ``arm`` and ``kind`` on partition 0 the study holds: those with out-of-fold
    predictions (``oof/``), or for the ladder-only ``augmented`` kind those with a test record."""
    out = []
    for path in (folder / ("inflation" if kind == AUGMENTED else "oof")).glob(f"{arm}-{kind}-fold*-seed*.csv"):
        key = RunKey.parse(path.stem)
        if key.arm == arm and key.kind == kind and key.partition == 0:
            out.append((key.fold, key.seed))
    return out


def orders_section(orders: pd.DataFrame | None, why_not: str = "") -> str:
    """The README section of a recorded ladder that says how much its gains depend on the order (``orders``:
    :func:`order_gains`; ``None``: not measured, ``why_not`` says why)."""
    head = "## Does the order matter?\n\n"
    if orders is None:
        return f"{head}Not measured: {why_not}\n"
    pts = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    rows = [f"| {r.habit} | {pts(r.in_ladder_order)} | {pts(r.mean_over_orders)} | {pts(r.lowest)} to {pts(r.highest)} | "
            f"{r.note} |" for r in orders.itertuples() if r.orders]
    alone = "".join(f"\n`{r.habit}`, {r.note}." for r in orders.itertuples() if not r.orders)
    return f"""{head}The table above stacks the habits in one order. The four that can go in any order, stacked in each of
their {int(orders['orders'].max())} orders (accuracy points, first fold partition, the seeds both splits ran; the means over the
orders add up to the four habits' gain together -- `bcdet_helpers/research/study/ladder_orders.py`):

| habit | gain in the ladder's order | mean over the orders | lowest to highest | note |
| --- | ---: | ---: | --- | --- |
{chr(10).join(rows)}
{alone}
"""
