"""The ``bcdet`` sub-commands that train a study: ``study``, ``tune`` and ``improve`` (beside :mod:`.cli`).

Split from :mod:`.commands` by job (issue #32): that module keeps the course's commands (data, train,
predict, evaluate, reproduce); this one the research commands that train many runs; :mod:`.commands_records`
the ones that read a finished study and write its records. The same rules hold: :mod:`.cli` calls one
``cli_*`` function here, heavy imports happen inside it, a handler returns the exit status, and no module
below the CLI imports this one, not even inside a function (``tests/test_layout.py`` checks).
"""
from __future__ import annotations

from pathlib import Path


def cli_study(args) -> int:
    """``bcdet study``: the design's runs (``--list``), some of them (``--run K ...``: one job of an array),
    or every missing run and the evaluation (no flag) -- :func:`study.run_study` on
    :func:`study.study_design`."""
    from .study import run_study, study_design

    design = study_design(args.profile, ladder=args.ladder)
    if args.list:
        for i, key in enumerate(design.runs()):
            print(f"{i}\t{key.name}")
        return 0
    if args.jobs is not None and args.jobs < 1:
        from ..errors import BcdetError

        raise BcdetError(f"--jobs must be at least 1, got {args.jobs}.")
    study = run_study(design, device=args.device, jobs=args.jobs, only=args.run)
    if study is None:
        names = [design.runs()[k].name for k in args.run]
        print(f"trained {', '.join(names)}; when every run is done, `bcdet study --profile {design.profile.name}` "
              "collects and evaluates them")
        return 0
    print("\n".join(study.summary("grouped")))
    return 0


def cli_tune(args) -> int:
    """``bcdet tune``: tune one arm (or ``all``) with an equal number of trials; ``--export DIR``
    only writes the summaries of the studies so far."""
    from . import tune
    from ..profiles import SEARCH_SPACES, get_profile

    if getattr(args, "adopt", None):
        import json

        entry = tune.tuned_entry(args.adopt, args.trials)  # numbers and strings: its JSON is a Python literal
        print(f"# paste into bcdet_helpers/profiles.py:\nTUNED[{get_profile(args.profile).name!r}] = "
              + json.dumps(entry, indent=4))
        return 0
    if getattr(args, "export", None):
        prof = get_profile(args.profile)
        for s in tune.export(prof.name, args.storage or tune.storage_url(prof.name), args.export, args.kind):
            print(f"{s['arm']}: {s['trials']} trials ({s['stable_trials']} stable), best {s['best_value']:.3f}")
        return 0
    arms = list(SEARCH_SPACES) if args.arm == "all" else [args.arm]
    for arm in arms:
        s = tune.tune(args.profile, arm, args.trials, storage=args.storage, kind=args.kind, seed=args.seed,
                      device=args.device, jobs=args.jobs, out=args.out)
        print(f"{arm}: best score {s['best_value']:.3f} after {s['trials']} trials (trial {s['best_trial']}): "
              f"{s['params']}")
    return 0


def cli_improve(args) -> int:
    """``bcdet improve --profile P [--rungs R ...] [--arm A] [--jobs N] [--list] [--out DIR | --record] [--force]``:
    the improvement ladder (:mod:`study.improve`): every rung's runs on the verdict's folds and seeds, chosen on
    validation, scored on BUSI out-of-fold and BUS-BRA, to ``runs/<profile>/improve/``; only ``--record`` writes
    the committed ``results/<profile>-improve/`` (replacing it needs ``--force``). Resumable: finished runs are
    loaded. ``--list`` trains nothing and prints the runs as far as finished runs decide the ladder."""
    import shlex

    from ..data.busbra import find_busbra
    from ..errors import BcdetError
    from ..paths import project_root
    from ..profiles import get_profile
    from .study.improve import check_rungs, plan_ladder
    from .study.improve_runs import describe_estimate, estimate_improve, list_runs
    from .study.improve_report import write_improvement

    try:
        prof = get_profile(args.profile)
    except ValueError as exc:
        raise BcdetError(str(exc)) from None
    rungs = check_rungs(args.rungs)
    if args.jobs is not None and args.jobs < 1:
        raise BcdetError(f"--jobs must be at least 1, got {args.jobs}.")
    if args.arm is not None and args.arm not in prof.study_arms:
        raise BcdetError(f"Unknown arm {args.arm!r}. Choose one of the study's arms: {', '.join(prof.study_arms)}.")
    if args.list:
        arm, how, choices = plan_ladder(prof, rungs, args.arm)
        print(f"# arm {arm}: {how}")
        print("\n".join(list_runs(choices)))
        return 0
    record = getattr(args, "record", False)
    out = Path(args.out) if args.out else (project_root() / "results" / f"{prof.name}-improve" if record else None)
    given = {"--profile": prof.name, "--rungs": " ".join(args.rungs) if args.rungs else None, "--arm": args.arm,
             "--out": args.out}
    command = " ".join(["bcdet improve", *(f"{k} {v if k == '--rungs' else shlex.quote(str(v))}"
                                           for k, v in given.items() if v)]
                       + (["--record"] if record else []))  # not --jobs, --device, --force: no number changes

    def announce(arm: str, choices) -> None:  # after the destination is checked, before any training
        print(f"The improvement ladder of {prof.name!r}, arm {arm}: "
              + describe_estimate(estimate_improve(choices, prof, args.device, args.jobs)), flush=True)
        if find_busbra() is None:
            print("BUS-BRA not found (set BCDET_BUSBRA): the ladder's BUS-BRA columns stay empty; the runs predict it "
                  "later, from their weights, when it is there and `bcdet improve` runs again.", flush=True)

    table = write_improvement(prof, out, rungs=rungs, arm=args.arm, jobs=args.jobs, device=args.device,
                              command=command, force=args.force, before=announce)
    for r in table.to_dict("records"):
        gain = "" if not r["below"] else f" ({100 * r['accuracy_gain']:+.1f} over {r['below']})"
        kept = "" if not r["below"] else ("" if r["adopted"] else "  [not adopted by validation]")
        print(f"{r['rung']:>11} {r['chosen'] or '':>12}: accuracy {100 * r['accuracy']:5.1f} % "
              f"[{100 * r['accuracy_low']:.1f}, {100 * r['accuracy_high']:.1f}]{gain}, balanced "
              f"{100 * r['balanced_accuracy']:.1f} %{kept}")
    from .study.improve import improve_work

    print(f"Written to {out or improve_work(prof)}")
    return 0
