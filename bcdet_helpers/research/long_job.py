"""Asking before a long reproduction: the estimate in words (:func:`print_estimate`), and for a job
over :data:`LONG_JOB_SECONDS` a question on a terminal (default no) or, without one, a refusal unless
``--yes`` / ``YES=1`` says so (:func:`confirm_long_job`); either way it names the cheaper choices once,
each with its own estimate (:func:`faster_choices`).
"""
from __future__ import annotations

import json
import math
import sys

from ..errors import BcdetError
from .pace import _describe_machine, _machine
from ..paths import project_root
from .plan import estimate, planned_runs, runs_study
from .report import fmt_duration as _fmt_duration


def print_estimate(est: dict) -> None:
    """The estimate in words. On a CPU, a job of over half an hour that starts without asking (up to
    :data:`LONG_JOB_SECONDS`) also names the cheaper choices; a longer one leaves them to
    :func:`confirm_long_job`, so they are printed once."""
    extra = est.get("runs_chapter04_only", 0)
    if est.get("study"):
        seeds = ", ".join(f"{k}: {len(v)} seed(s)" for k, v in est.get("study_seeds", {}).items())
        what = (f"(notebook 05's cross-validated study: {est['folds']} folds x arms x seeds per kind of folds "
                f"[{seeds}]" + (f" + {est['runs_ladder']} runs of the leakage ladder's arm (more random-split seeds, "
                                  "and its runs with test copies trained on)"
                                if est.get("runs_ladder") else "") + f" = {est['runs_study']} runs"
                + (f", plus notebook 04's {extra} run(s) with the profile's own seed and kind" if extra else "") + ") ")
    else:
        what = "(notebook 04's arms on one fold; notebook 05 scores them -- its cross-validated study is not run) "
    print(
        f"Profile {est['profile']!r}: {est['runs']} training runs x {est['epochs_per_run']} epochs " + what
        + f"({est['runs_done']} already finished and reused), ~{est['n_train_images']} training images per epoch."
    )
    print(
        f"Estimated training time: ~{_fmt_duration(est['training_seconds'])} "
        f"({est['seconds_per_epoch']:.2f} s/epoch, {est['seconds_per_epoch_source']}); "
        "data preparation, notebook 03's experiment and evaluation come on top."
    )
    if est["device"].startswith("cpu") and 1800 < est["training_seconds"] <= LONG_JOB_SECONDS:
        choices = faster_choices(est["profile"], est.get("study"), est["device"], est)
        print(f"No GPU found: this will take a while on the CPU.\n{choices}")
    sys.stdout.flush()


# ------------------------------------------------------------------------ starting a long job
LONG_JOB_SECONDS = 3600  # above this, nobody starts a reproduction by accident

# What a long reproduction of a profile suggests instead, cheapest first (never `smoke`: its numbers mean nothing)
LIGHTER = {"paper": ("class", "laptop"), "laptop": ("class",)}
PROFILE_NOTES = {
    "class": "each notebook in minutes at teaching scale; no cross-validated study, so no verdict",
    "laptop": "the cross-validated study at width 16, the profile made for a CPU",
}


def _make_form(profile: str, args: str = "") -> str:
    """The ``make reproduce`` line that runs ``bcdet reproduce --profile profile args``."""
    return "make reproduce" + (f" PROFILE={profile}" if profile != "paper" else "") + (f' ARGS="{args}"' if args else "")


def _recorded_course(profile: str, device) -> str:
    """How long a whole recorded reproduction of ``profile`` took, when ``results/<profile>/metrics.json``
    records one that trained every run itself on this kind of machine; else ''."""
    path = project_root() / "results" / profile / "metrics.json"
    try:
        rec = json.loads(path.read_text()).get("reproduce", {})
    except (OSError, ValueError):
        return ""
    env, here = rec.get("device", {}), _machine(device)
    same = str(env.get("device", "")).split(":")[0] == here["device"] and all(
        env.get(k) == v for k, v in here.items() if k != "device")
    if not same or (rec.get("estimate") or {}).get("runs_done", 1) or not rec.get("total_wall_time_s"):
        return ""
    return (f"; the whole course, notebooks included, took {_fmt_duration(rec['total_wall_time_s'])} on "
            f"{_describe_machine(here)} ({path.relative_to(project_root())})")


def cheaper_choices(profile: str, study: bool | None = None, device=None, est: dict | None = None) -> list[dict]:
    """What to run instead of a long reproduction of ``profile``: the lighter profiles (:data:`LIGHTER`),
    then -- when the reproduction runs the cross-validated study (``study``, default
    :func:`~bcdet_helpers.research.plan.runs_study`) -- the same study without the leakage ladder, a smaller one, or
    none. Each a dict: ``args`` (for ``bcdet reproduce``), ``make`` (the ``make reproduce`` line), ``what``,
    and, given ``device``, the ``estimate`` of its training (:func:`~bcdet_helpers.research.plan.estimate`); then a
    choice estimated to take no less than ``est`` (the estimate of the job asked for) is left out."""
    from ..profiles import get_profile

    choices = [{"profile": p, "args": f"--profile {p}", "make": _make_form(p), "what": PROFILE_NOTES[p],
                "prof": p, "study": None, "ladder": True} for p in LIGHTER.get(profile, ())]
    try:
        prof = get_profile(profile)
    except ValueError:
        prof = None
    if prof is not None and runs_study(profile, study):
        full = len(planned_runs(prof, True))
        no_ladder = len(planned_runs(prof, True, ladder=False))
        small = get_profile(profile, seeds=prof.seeds[:1], kinds=["grouped"])
        n_small = len(planned_runs(small, True))
        chapter04 = len(planned_runs(prof, False))
        if no_ladder < full:
            choices.append({"args": f"--profile {profile} --no-ladder", "make": _make_form(profile, "--no-ladder"),
                            "what": f"the whole verdict without the leakage ladder's extra runs: {no_ladder} runs, "
                                    f"not {full}",
                            "prof": prof, "study": True, "ladder": False})
        if n_small < full:
            args = f"--seeds {prof.seeds[0]} --kinds grouped"
            choices.append({"args": f"--profile {profile} {args}", "make": _make_form(profile, args),
                            "what": f"a smaller study: {n_small} runs, not {full}", "prof": small, "study": True,
                            "ladder": True})
        choices.append({"args": f"--profile {profile} --no-study", "make": _make_form(profile, "--no-study"),
                        "what": f"notebook 04's {chapter04} runs only, no cross-validated study", "prof": prof,
                        "study": False, "ladder": True})
    out = []
    for c in choices:
        if device is not None:
            c["estimate"] = estimate(c["prof"], device, study=c["study"], ladder=c["ladder"])
            if est is not None and c["estimate"]["training_seconds"] >= est.get("training_seconds", math.inf):
                continue
            if "profile" in c:
                c["what"] += _recorded_course(c["profile"], device)
        out.append({k: v for k, v in c.items() if k not in ("prof", "study", "ladder", "profile")})
    return out


def faster_choices(profile: str, study: bool | None = None, device=None, est: dict | None = None) -> str:
    """:func:`cheaper_choices` in words, one per line; with ``device``, each with its estimated training
    time and where its seconds per epoch come from."""
    choices = cheaper_choices(profile, study, device, est)
    if not choices:
        return ""
    lines = [f"Cheaper choices{f' (estimated training time on {device})' if device is not None else ''}:"]
    for c in choices:
        e = c.get("estimate")
        took = f"~{_fmt_duration(e['training_seconds'])}  " if e else ""
        lines.append(f"  {took}bcdet reproduce {c['args']}  ({c['make']})")
        pace = f" [{e['seconds_per_epoch']:.2f} s/epoch, {e['seconds_per_epoch_source']}]" if e else ""
        lines.append(f"      {c['what']}{pace}")
    if profile == "paper" and device is not None and str(device).startswith("cpu"):
        lines.append("  A CUDA GPU trains 'paper' in minutes.")
    return "\n".join(lines)


def _interactive() -> bool:
    """Is someone at a terminal to answer? (No under make -j, CI, nohup, pytest, a pipe.)"""
    try:
        return sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def confirm_long_job(est: dict, yes: bool = False) -> None:
    """Return when the job may start; else :class:`BcdetError` saying how to start it on purpose.

    Jobs up to :data:`LONG_JOB_SECONDS` of estimated training start at once. A longer one starts
    with ``yes`` (``--yes``, ``make reproduce YES=1``); otherwise on a terminal we ask, default no,
    naming the faster choices; with nobody to ask, we refuse and say how to opt in.
    """
    if est["training_seconds"] <= LONG_JOB_SECONDS or yes:
        return
    took = _fmt_duration(est["training_seconds"])
    opt_in = "add --yes (make reproduce YES=1)"
    choices = faster_choices(est["profile"], est.get("study"), est["device"], est)
    if _interactive():
        print(f"\nThis reproduction trains for ~{took} on {est['device']}.\n{choices}")
        try:
            answer = input(f"Start the ~{took} job now? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            return
        raise BcdetError(f"Not started (the answer was not 'y'). To start it without this question, {opt_in}.")
    raise BcdetError(
        f"Not started: the training alone is estimated at ~{took} on {est['device']} (over "
        f"{LONG_JOB_SECONDS // 3600} hour), and there is no terminal to confirm it on. To start it on "
        f"purpose, {opt_in}.\n{choices}")
