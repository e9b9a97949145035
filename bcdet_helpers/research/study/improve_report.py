"""``bcdet improve``'s record: climb the improvement ladder, score it, write it down (issue #31).

:func:`write_improvement` refuses a destination it may not write *before* any training (the marker and
``--force`` rules of :mod:`bcdet_helpers.research.outputs`, as ``bcdet ladder``), climbs
(:func:`~bcdet_helpers.research.study.improve.climb`: resumable, finished runs loaded), gathers the chosen runs'
predictions (:func:`~bcdet_helpers.research.study.improve_runs.collect`), scores them
(:func:`~bcdet_helpers.research.study.improve_score.score_ladder`) and writes :data:`IMPROVE_FILES`:

* ``improve.csv`` -- one row per rung: what it changed and chose, every metric with its interval and its
  paired gain over the rung below, the cost (seconds per run, device);
* ``improve.json`` -- the same rows, and what each rung tried, chose and why, the command, commit and devices;
* ``waterfall.png`` -- the ladder drawn beside the leakage ladder's
  (:func:`~bcdet_helpers.plots.improvement_waterfall`);
* ``README.md`` -- the command, commit and device, what each rung changed, the table, the figure, and the
  goals of issue #31, reached or not, said plainly from the table's numbers;
* ``scored/`` -- the study folder the numbers were computed from (the chosen runs' predictions), so the record
  can be scored again without a model (only where the record is not the working folder itself).
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import pandas as pd

from ...errors import BcdetError
from ...profiles import get_profile
from .improve import CHOICE_METRIC, check_rungs, climb, improve_work, plan_ladder, screen_design
from .improve_runs import choice_record, collect
from .improve_score import BUSBRA_METRICS, BUSI_METRICS, METRIC_LABELS, score_ladder

__all__ = ["GOALS", "IMPROVE_FILES", "write_improvement", "improve_readme", "goal_lines", "inside_outside_lines"]

IMPROVE_FILES = ("improve.csv", "improve.json", "waterfall.png", "README.md", "scored")
# issue #31's goals for the top of the ladder (the ensemble), each with the threshold chosen on validation
GOALS = {"accuracy": 0.78, "balanced_accuracy": 0.72, "specificity": 0.70}


def write_improvement(profile, out: str | Path | None = None, *, rungs=None, arm: str | None = None,
                      jobs: int | None = None, device="auto", command: str = "", force: bool = False,
                      progress: bool = True, work: str | Path | None = None, seeds=None, folds=None, partitions=None,
                      n_boot: int | None = None, busbra=None, before=None) -> pd.DataFrame:
    """Climb the ladder of ``profile`` and write its record to ``out`` (default: the working folder
    ``runs/<profile>/improve/``); returns the table. ``rungs``: a subset, in order (``baseline`` is always the
    first). ``seeds`` / ``folds`` / ``partitions``: a smaller design (tests). Refused before any work when
    ``out`` is a folder bcdet did not write or holds committed files, unless ``force``. ``before(arm, choices)``:
    called once the destination is checked and before any training, with the plan of
    :func:`~bcdet_helpers.research.study.improve.plan_ladder` (``bcdet improve`` prints its estimate there)."""
    from ..outputs import claim, mark

    t0 = time.perf_counter()
    try:
        base = get_profile(profile)
    except ValueError as exc:
        raise BcdetError(str(exc)) from None
    rungs = check_rungs(rungs)
    work = Path(work) if work is not None else improve_work(base)
    out = Path(out) if out is not None else work
    ours = claim(out, force=force, names=IMPROVE_FILES)
    if out.resolve() != work.resolve():
        claim(work, force=force, records=False, names=[])
    work.mkdir(parents=True, exist_ok=True)
    mark(work, command or "bcdet_helpers.research.study.improve_report.write_improvement")
    n_boot = int(n_boot or base.bootstrap)
    if before is not None:
        before(*plan_ladder(base, rungs, arm, work=work, seeds=seeds, folds=folds, partitions=partitions)[::2])
    arm, how, choices = climb(base, rungs, arm, work=work, jobs=jobs, device=device, progress=progress,
                              seeds=seeds, folds=folds, partitions=partitions, n_boot=n_boot)
    scored = collect(choices, work / "scored", base)
    table, note = score_ladder(scored, [choice_record(c) for c in choices], n_boot=n_boot, busbra=busbra)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "improve.csv", index=False)
    keys = choices[0].steps[0].keys  # the baseline's: every rung's runs are these
    screen = screen_design(choices[0].steps[0].design).runs()  # what a rung of several candidates chooses on
    meta = {
        "profile": base.name, "arm": arm, "arm_chosen": how, "rungs": rungs, "choice_metric": CHOICE_METRIC,
        "choices": [choice_record(c) for c in choices], "goals": GOALS, "busbra_note": note,
        "devices": sorted({d for d in table.get("device", pd.Series(dtype=str)) if d}),
        "design": {"runs_per_rung": len(keys), "screening_runs": len(screen), "seeds": sorted({k.seed for k in keys}),
                   "folds": sorted({k.fold for k in keys}), "partitions": sorted({k.partition for k in keys})},
        "n_boot": n_boot, "command": command, "commit": _commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": time.perf_counter() - t0,
    }
    from ...runinfo import write_json

    write_json(out / "improve.json", {**meta, "table": table.to_dict("records")})
    from ... import plots

    fig = plots.improvement_waterfall(table, title=f"{base.name}: what honestly helps (arm {arm})",
                                      labels=METRIC_LABELS)
    plots.save(fig, out, "waterfall")
    (out / "README.md").write_text(improve_readme(table, meta))
    if out.resolve() != work.resolve():
        if (out / "scored").exists():
            shutil.rmtree(out / "scored")
        shutil.copytree(scored, out / "scored")
    if ours:
        mark(out, command or "bcdet_helpers.research.study.improve_report.write_improvement")
    return table


def _commit() -> str | None:
    from ...runinfo import git_commit

    return git_commit()


def _pct(x) -> str:
    return f"{100 * x:.1f}" if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def _cell(row, m: str, gain: bool = True) -> str:
    value = f"{_pct(row[m])} [{_pct(row[f'{m}_low'])}, {_pct(row[f'{m}_high'])}]"
    if gain and row["below"] and math.isfinite(row[f"{m}_gain"]):
        gain, low, high = (100 * row[f"{m}_gain{x}"] for x in ("", "_low", "_high"))
        value += f"<br>{gain:+.1f} [{low:+.1f}, {high:+.1f}]"
    return value


def goal_lines(table: pd.DataFrame) -> list[str]:
    """Issue #31's goals against the top rung of ``table``, one plain sentence each: reached, not reached, or
    not measured -- with the numbers and intervals the table holds."""
    if not len(table):
        return ["No rung is scored yet."]
    top = table.iloc[-1]
    names = {"accuracy": "pooled out-of-fold accuracy", "balanced_accuracy": "balanced accuracy",
             "specificity": "malignant specificity at the validation-chosen threshold for 90 % sensitivity"}
    out = []
    for m, goal in GOALS.items():
        v = top[m]
        if not math.isfinite(v):
            out.append(f"- {names[m]} (goal >= {100 * goal:.0f} %): not measured.")
            continue
        verdict = ("reached, and its 95 % interval lies above the goal" if top[f"{m}_low"] >= goal else "reached"
                   if v >= goal else "not reached")
        extra = (f" (its sensitivity on the test folds: {_pct(top['sensitivity'])} % "
                 f"[{_pct(top['sensitivity_low'])}, {_pct(top['sensitivity_high'])}])" if m == "specificity" else "")
        out.append(f"- {names[m]} (goal >= {100 * goal:.0f} %): {_pct(v)} % [{_pct(top[f'{m}_low'])}, "
                   f"{_pct(top[f'{m}_high'])}] at rung `{top['rung']}` -- {verdict}{extra}.")
    return out


def _effect(row, metric: str) -> str:
    """``helps`` / ``hurts`` / ``no clear change``: where the paired 95 % interval of a rung's gain lies."""
    low, high = row.get(f"{metric}_gain_low", math.nan), row.get(f"{metric}_gain_high", math.nan)
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not measured"
    return "helps" if low > 0 else "hurts" if high < 0 else "no clear change"


def inside_outside_lines(table: pd.DataFrame) -> list[str]:
    """One line per rung built on another: its paired gain on BUSI (inside: accuracy, balanced accuracy) and on
    BUS-BRA (outside: lesion AUC, sensitivity at the carried-over threshold), each read as helps / hurts / no
    clear change from its 95 % interval -- and a rung that helps inside but hurts outside said so in bold."""
    out = []
    for _, r in table[table["below"].astype(str) != ""].iterrows():
        def part(metrics):
            return "; ".join(f"{METRIC_LABELS[m]} {100 * r[f'{m}_gain']:+.1f} [{100 * r[f'{m}_gain_low']:+.1f}, "
                             f"{100 * r[f'{m}_gain_high']:+.1f}] ({_effect(r, m)})"
                             if math.isfinite(r.get(f"{m}_gain", math.nan)) else f"{METRIC_LABELS[m]} not measured"
                             for m in metrics)
        inside = [_effect(r, m) for m in ("accuracy", "balanced_accuracy")]
        outside = [_effect(r, m) for m in BUSBRA_METRICS]
        flag = " **Helps inside, hurts outside.**" if "helps" in inside and "hurts" in outside else \
            " **Hurts inside, helps outside.**" if "hurts" in inside and "helps" in outside else ""
        out.append(f"- `{r['rung']}` (vs `{r['below']}`): {part(('accuracy', 'balanced_accuracy'))} | "
                   f"{part(BUSBRA_METRICS)}.{flag}")
    return out or ["No rung is built on another yet."]


def improve_readme(table: pd.DataFrame, meta: dict) -> str:
    """The README of an improvement ladder record, its tables written from ``improve.csv``, never by hand."""
    rungs = []
    for c in meta["choices"]:
        tried = "; ".join(f"`{name}`: {_changes(x['changes'])} (`runs/{x['profile']}/`)"
                          for name, x in c["candidates"].items()) or "no training"
        rungs.append(f"| {c['rung']} | {c['adds']} | {tried} | {c['how']} |")
    rows = []
    for r in table.to_dict("records"):
        adopted = "" if not r["below"] else (" (adopted)" if r["adopted"] else " (**not adopted**)")
        cells = " | ".join(_cell(r, m) for m in (*BUSI_METRICS, *BUSBRA_METRICS))
        cost = f"{_duration(r['seconds_per_run'])} | {r['device']}"
        rows.append(f"| {r['rung']}{adopted} | {r['chosen']} | {cells} | {cost} |")
    head = " | ".join(METRIC_LABELS[m] for m in (*BUSI_METRICS, *BUSBRA_METRICS))
    note = f"\n\nBUS-BRA: {meta['busbra_note']}." if meta.get("busbra_note") else ""
    d = meta["design"]
    return f"""# The improvement ladder of the `{meta['profile']}` profile

What honestly makes the model better, beside the leakage ladder (what inflates). From the verdict's best tuned
arm, `{meta['arm']}` ({meta['arm_chosen']}), each rung adds one change on top of the rungs below it, and every
rung trains exactly the verdict's grouped runs: {d['runs_per_rung']} runs (folds {d['folds']}, seeds {d['seeds']},
fold partitions {d['partitions']}). Choices are made on validation images only: a rung of several candidates
screens each on {d['screening_runs']} of those runs (the first seed of the first fold partition, every fold) and
keeps the best pooled validation {meta['choice_metric'].replace('_', ' ')}; only that one trains the other runs,
and the next rung builds on it only when its validation score over all its runs beats the rung below's. Nothing is
chosen on a test fold or on BUS-BRA. `bcdet_helpers/research/study/improve.py` says why each rung.

Written by

```bash
{meta['command']}
```

at commit `{meta['commit']}`, {meta['at']}, on {', '.join(meta['devices']) or 'the device the runs record'}.

## What each rung tried and chose

| rung | adds | candidates (overrides, run folders) | choice (validation only) |
| --- | --- | --- | --- |
{chr(10).join(rungs)}

## Scores

Each cell: the rung's value with its 95 % interval (training replicates -- fold partition x seed -- and
near-duplicate groups, or BUS-BRA's patients, resampled), then its gain over the rung it was built on, paired
(the same replicates and groups drawn for both). BUSI: pooled out-of-fold, final weights, label conflicts left
out; malignant sensitivity and specificity with each run at the threshold it chose on its validation images for
90 % sensitivity. BUS-BRA: lesion AUC, and sensitivity at that same carried-over threshold. Cost: training
seconds per run and the device.

| rung | chosen | {head} | s / run | device |
| --- | --- |{' --- |' * (len(BUSI_METRICS) + len(BUSBRA_METRICS))} ---: | --- |
{chr(10).join(rows)}

![the improvement ladder](waterfall.png)

## Inside and outside

Each rung's paired gain over the rung it was built on, at BUSI (inside) and at BUS-BRA (outside), read from its
95 % interval: *helps* (above 0), *hurts* (below 0) or *no clear change* (it holds 0).

{chr(10).join(inside_outside_lines(table))}

## The goals of issue #31, at the top rung

{chr(10).join(goal_lines(table))}{note}
"""


def _duration(seconds) -> str:
    from ..report import fmt_duration

    known = isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0
    return fmt_duration(seconds) if known else "–"


def _changes(changes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in changes.items()) or "the profile as it is"

