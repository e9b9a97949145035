"""The improvement ladder's runs as files and seconds (issue #31; split from
:mod:`~bcdet_helpers.research.study.improve` by job, issue #32): before training, which runs the ladder holds
(:func:`list_runs`, ``bcdet improve --list``) and how long they take (:func:`estimate_improve`); after it, the
scored folder the chosen runs are gathered into (:func:`collect`), each rung's record (:func:`choice_record`,
read back by :func:`choices_json`) and what its runs cost (:func:`run_cost`).

The rungs, the design and the choices themselves -- :class:`~bcdet_helpers.research.study.improve.Choice`,
:class:`~bcdet_helpers.research.study.improve.Step`, :func:`~bcdet_helpers.research.study.improve.plan_ladder` -- live in
:mod:`~bcdet_helpers.research.study.improve`; this module reads them and decides nothing.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import BcdetError
from ...profiles import Profile
from .improve import CHOICE_METRIC, RUNG, Choice, Step
from .ladder import _shown

__all__ = ["collect", "choice_record", "choices_json", "run_cost", "describe_environment", "estimate_improve",
           "describe_estimate", "list_runs"]


# ---------------------------------------------------------------------------------- the scored folder
def collect(choices: list[Choice], out: str | Path, base: Profile) -> Path:
    """``out`` as one study folder whose arms are the rungs: each decided training rung's chosen candidate's
    ``oof/``, ``val/`` and ``external/`` files (``arm`` renamed to the rung), its ``runs.csv`` rows, the shared
    ``folds.csv`` (checked to be the same for every rung: the verdict's folds), a ``design.json`` that names the
    base profile and the rungs, and ``choices.json``: what each rung chose, how, and from which run folders.
    Rewritten whole on every call."""
    from ...runinfo import write_json

    out = Path(out)
    trained = [c for c in choices if RUNG[c.rung].trains and c.decided]
    if not trained or trained[0].rung != "baseline":
        raise BcdetError("the ladder has no finished baseline to score yet: run `bcdet improve` to train it.")
    if out.exists():
        shutil.rmtree(out)
    for part in ("oof", "val", "external"):
        (out / part).mkdir(parents=True, exist_ok=True)
    folds_ref, runs_rows = None, []
    for choice in trained:
        step = choice.step()
        folds = pd.read_csv(step.folder / "folds.csv")
        cols = ["partition", "kind", "fold", "file"] if "partition" in folds else ["kind", "fold", "file"]
        folds = folds.sort_values(cols).reset_index(drop=True)
        if folds_ref is None:
            folds_ref = folds
            folds.to_csv(out / "folds.csv", index=False)
        elif not folds[cols].equals(folds_ref[cols]):
            raise BcdetError(f"{step.folder}/folds.csv differs from the baseline's: every rung must train on the "
                             "verdict's folds. Delete that study folder and run `bcdet improve` again.")
        for key in step.keys:
            new = replace(key, arm=choice.rung)
            for part in ("oof", "val"):
                df = pd.read_csv(step.folder / part / f"{key.name}.csv")
                df.assign(arm=choice.rung).to_csv(out / part / f"{new.name}.csv", index=False)
            ext = step.folder / "external" / f"{key.name}.csv.gz"
            if ext.exists():
                pd.read_csv(ext).assign(arm=choice.rung).to_csv(out / "external" / f"{new.name}.csv.gz",
                                                               index=False, compression="gzip")
        runs = pd.read_csv(step.folder / "runs.csv")
        runs = runs[runs["run"].isin({d.name for d in step.run_dirs()})] if "run" in runs else runs
        runs_rows.append(runs.assign(arm=choice.rung, profile=step.profile.name))
    pd.concat(runs_rows, ignore_index=True).to_csv(out / "runs.csv", index=False)
    arms = [c.rung for c in trained]
    write_json(out / "design.json", {"profile": base.to_dict(), "arms": arms, "improvement_ladder": True})
    write_json(out / "choices.json", {"choices": [choice_record(c) for c in choices]})
    return out


def choice_record(c: Choice) -> dict:
    """What ``choices.json`` and ``improve.json`` keep of a rung's decision."""
    return {"rung": c.rung, "adds": RUNG[c.rung].adds, "why": RUNG[c.rung].why, "below": c.below,
            "candidates": {s.candidate: {"profile": s.profile.name, "changes": s.changes, "overrides": s.overrides,
                                         "study": _shown(s.folder), "screened_on": len(s.screen_keys),
                                         "validation": c.scores.get(s.candidate), "cost": run_cost(s, c.needs(s))}
                           for s in c.steps},
            "chosen": c.chosen, "value": c.value, "adopted": c.adopted, "how": c.how,
            "choice_metric": CHOICE_METRIC}


def run_cost(step: Step, keys=None) -> dict:
    """What a step's finished runs (of ``keys``, default all of its own) cost, from their ``result.json``: runs,
    seconds of training per run (mean) and in all, and the device they trained on (the commonest, in words)."""
    seconds, devices = [], []
    for run in step.run_dirs(keys):
        try:
            info = json.loads((run / "result.json").read_text())
        except (OSError, ValueError):
            continue
        seconds.append(float(info.get("wall_time_s") or math.nan))
        devices.append(describe_environment(info.get("environment") or {}))
    return {"runs": len(seconds), "seconds_per_run": float(np.nanmean(seconds)) if seconds else math.nan,
            "seconds": float(np.nansum(seconds)), "device": max(set(devices), key=devices.count) if devices else ""}


def describe_environment(env: dict) -> str:
    """A run's ``environment`` (``runinfo.environment_info``) in a few words: ``cuda (NVIDIA H200)`` or
    ``cpu (2 cores, 1 thread)``."""
    device = str(env.get("device", "?")).split(":")[0]
    if env.get("gpu"):
        return f"{device} ({env['gpu']})"
    if device == "cpu":
        threads = env.get("torch_threads")
        return (f"cpu ({env.get('cpu_count', '?')} cores"
                + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "") + ")")
    return device


# ---------------------------------------------------------------------------------------- estimate
def estimate_improve(choices: list[Choice], base: Profile, device="auto", jobs: int | None = None) -> dict:
    """Runs still to train and their time: each step's missing runs x its cost relative to a ``base`` run
    (pixels x epochs, :meth:`~bcdet_helpers.research.study.improve.Step.cost`) x a base run's seconds
    (:func:`bcdet_helpers.research.pace._pace`: this machine's recorded runs, else the committed ones of the same kind of
    machine, else timed now). A rung of several candidates not chosen yet: every candidate's screening runs, then
    the rest of one candidate's runs -- the cheapest one's in ``seconds_low``, the dearest's in ``seconds_high``.
    Above an undecided rung the steps are provisional (on its first candidate): ``seconds_low`` counts them as
    if the cheapest outcome of that rung were kept (another candidate, or none), ``seconds_high`` the dearest."""
    from ...device import auto_jobs, choose_device
    from ..pace import _pace
    from ..plan import _n_train_images

    dev = choose_device(device)
    spe, at_once, source = _pace(base, dev, _n_train_images(base), auto_jobs(dev) if jobs is None else jobs)
    run_s = spe * base.epochs
    low = high = 0.0
    runs_todo = runs_total = 0
    lo_factor = hi_factor = 1.0  # how far the real stack's cost may be from the provisional one
    stack_cost = 1.0  # the cost of a run of the stack the next rung builds on
    for c in choices:
        if not c.steps:
            continue
        costs = [s.cost(base) for s in c.steps]
        for s, cost in zip(c.steps, costs):
            needs = c.needs(s)
            todo = len(needs) - s.runs_done(needs)
            runs_todo, runs_total = runs_todo + todo, runs_total + len(needs)
            low += todo * run_s * cost * lo_factor
            high += todo * run_s * cost * hi_factor
        rest = c.rest_to_choose
        if rest:  # the one validation keeps trains the rest of its runs: which one is not known yet
            runs_todo, runs_total = runs_todo + rest, runs_total + rest
            low += rest * run_s * min(costs) * lo_factor
            high += rest * run_s * max(costs) * hi_factor
        if c.decided:
            stack_cost = c.step().cost(base) if c.adopted else stack_cost
        else:  # provisional above: the chosen or first candidate; the outcome may be any candidate (or the chosen
            # one), or none of them
            lead = c.step().cost(base) if c.chosen is not None else costs[0]
            options = [lead] if c.chosen is not None else costs
            outcomes = [x / lead for x in options] + [stack_cost / lead]
            lo_factor, hi_factor = lo_factor * min(outcomes), hi_factor * max(outcomes)
            stack_cost = lead
    return {"runs_total": runs_total, "runs_todo": runs_todo, "seconds_low": low / at_once,
            "seconds_high": high / at_once, "seconds_per_base_run": run_s, "jobs": at_once, "source": source,
            "device": str(dev), "decided": all(c.decided for c in choices)}


def describe_estimate(est: dict) -> str:
    """The estimate in a sentence or two."""
    from ..report import fmt_duration

    low, high = fmt_duration(est["seconds_low"]), fmt_duration(est["seconds_high"])
    span = low if low == high else f"{low} to {high} (it depends on what validation keeps)"
    return (f"{est['runs_todo']} of the ladder's {est['runs_total']} runs to train on {est['device']}: ~{span} "
            f"({fmt_duration(est['seconds_per_base_run'])} per baseline run, {est['source']}; a 1.5x side costs "
            "~2.25x, a 2x side ~4x, twice the epochs 2x).")


def list_runs(choices: list[Choice]) -> list[str]:
    """``bcdet improve --list``: one line per run -- index, rung, candidate, run folder -- then the undecided note."""
    lines, i = [], 0
    for c in choices:
        if not c.steps:
            lines.append(f"-\t{c.rung}\t(no training: {c.how})")
            continue
        for s in c.steps:
            for key in c.needs(s):
                lines.append(f"{i}\t{c.rung}\t{s.candidate}\t{s.profile.name}/{key.folder()}")
                i += 1
        if c.rest_to_choose:
            lines.append(f"#\t{c.rung}\tthen the candidate validation keeps trains its other {c.rest_to_choose} runs")
        if not c.decided:
            lines.append(f"#\t{c.rung}\t{c.how}")
    return lines


def choices_json(path: str | Path) -> list[dict]:
    """The ``choices`` a scored folder recorded (:func:`collect`)."""
    return json.loads((Path(path) / "choices.json").read_text())["choices"]
