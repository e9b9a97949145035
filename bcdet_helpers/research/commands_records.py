"""The ``bcdet`` sub-commands that read a finished study and write its records: ``publish``, ``ladder``,
``external`` and ``stress`` (beside :mod:`.cli`).

Split from :mod:`.commands` by job (issue #32): none of them trains; each reads a study's files (or its runs'
weights) and writes a folder under ``runs/``, or with ``--record`` the committed one under ``results/``. The
same rules hold as in :mod:`.commands`: :mod:`.cli` calls one ``cli_*`` function here, heavy imports happen
inside it, a handler returns the exit status, and no module below the CLI imports this one, not even inside a
function (``tests/test_layout.py`` checks).
"""
from __future__ import annotations

from pathlib import Path


def cli_publish(args) -> int:
    """``bcdet publish --profile P [--dest D] [--partial | --study-only] [--force]``."""
    import json

    from .publish import publish, publish_partial, publish_study

    force = getattr(args, "force", False)
    if getattr(args, "study_only", False):
        dest = publish_study(args.profile, dest=getattr(args, "dest", None), force=force)
        print(f"Published the finished study ({sum(1 for _ in (dest / 'oof').glob('*.csv'))} runs' out-of-fold "
              f"predictions, study.json, {sum(1 for _ in (dest / 'runs').glob('*'))} run records) to {dest}")
        return 0
    if getattr(args, "partial", False):
        dest = publish_partial(args.profile, dest=getattr(args, "dest", None), force=force)
        print(f"Snapshot of the study ({sum(1 for _ in (dest / 'runs').glob('*'))} finished runs, no verdict) "
              f"in {dest}: commit it; its README says how to restore it on a fresh machine.")
        if _study_finished(args.profile):
            print(f"This study has finished (its study.json is newer than its runs): `bcdet publish --profile "
                  f"{args.profile}` without --partial publishes it with its verdict.")
        return 0
    dest = publish(args.profile, dest=getattr(args, "dest", None), force=force)
    n = sum(1 for _ in (dest / "runs").iterdir())
    print(f"Published {n} run(s), metrics.json, report.md and figures to {dest}")
    cv = dest.with_name(dest.name + "-cv")
    if (json.loads((dest / "metrics.json").read_text()).get("reproduce", {}).get("study") or {}).get("run"):
        print(f"and the cross-validated study ({sum(1 for _ in (cv / 'oof').glob('*.csv'))} runs' out-of-fold "
              f"predictions, study.json) to {cv}")
    return 0


def _study_finished(profile: str) -> bool:
    """Has ``runs/<profile>/cv`` been evaluated since its last run finished? ``study.json`` is written when
    the study ends; a study that runs again adds rows to ``runs.csv`` after it."""
    from ..paths import runs_dir

    cv = runs_dir(profile) / "cv"
    done, runs = cv / "study.json", cv / "runs.csv"
    return done.exists() and (not runs.exists() or done.stat().st_mtime >= runs.stat().st_mtime)


def cli_ladder(args) -> int:
    """``bcdet ladder --profile P [--study DIR] [--arm A] [--out DIR | --record] [--force]``: the leakage
    ladder of a finished study, from its files alone (no training), to ``runs/<profile>/ladder/``; only
    ``--record`` writes the committed ``results/<profile>-ladder/`` (and replacing it needs ``--force``)."""
    import shlex

    from ..errors import BcdetError
    from ..paths import project_root, runs_dir
    from .study import LADDER_ARM, write_ladder

    study = Path(args.study) if args.study else project_root() / "results" / f"{args.profile}-cv"
    if not (study / "folds.csv").exists():
        raise BcdetError(f"{study} holds no study (no folds.csv). Run it first: `bcdet reproduce --profile {args.profile}` "
                         f"then `bcdet publish --profile {args.profile}`, or point --study at a study folder "
                         f"(e.g. runs/{args.profile}/cv).")
    record = getattr(args, "record", False)
    if args.out:
        out = Path(args.out)
    else:
        name = "ladders" if args.arm == "all" else "ladder"  # every arm's beside the one committed ladder
        out = project_root() / "results" / f"{args.profile}-{name}" if record else runs_dir(args.profile) / name
    given = {"--profile": args.profile, "--study": args.study, "--arm": args.arm, "--out": args.out}
    command = " ".join(["bcdet ladder", *(f"{k} {shlex.quote(str(v))}" for k, v in given.items() if v)]
                       + (["--record"] if record else [])  # not --force: it changes no number of the record
                       + (["--include-conflicts"] if args.include_conflicts else []))
    if args.arm == "all":
        return _ladders_of_every_arm(study, out, command, args)
    table = write_ladder(study, out, args.arm or LADDER_ARM, command=command, include_conflicts=args.include_conflicts,
                         profile=args.profile, force=getattr(args, "force", False))
    _print_ladder(table, out)
    return 0


def _ladders_of_every_arm(study: Path, out: Path, command: str, args) -> int:
    """``bcdet ladder --arm all``: one ladder per arm of the study that ran the random split (``out/<arm>/``)
    and ``out/ladders.csv`` with every arm's rungs side by side, so a reader sees whether the headline
    holds for all of them."""
    import pandas as pd

    from .outputs import claim, mark
    from .study import load_study, write_ladder

    ours = claim(out, force=getattr(args, "force", False), names=["ladders.csv", "orders.csv"])
    recorded = load_study(study)
    arms = [a for a in recorded.arms if (a, "random") in {(r.arm, r.kind) for r in recorded.runs}]
    tables, orders = [], []
    for arm in arms:
        table = write_ladder(study, out / arm, arm, command=command, include_conflicts=args.include_conflicts,
                             profile=args.profile, force=getattr(args, "force", False))
        print(f"--- {arm}")
        _print_ladder(table, out / arm)
        tables.append(table.assign(arm=arm))
        if (out / arm / "orders.csv").exists():
            orders.append(pd.read_csv(out / arm / "orders.csv"))
    out.mkdir(parents=True, exist_ok=True)
    pd.concat(tables, ignore_index=True).to_csv(out / "ladders.csv", index=False)
    if orders:  # every arm's habits over every order, side by side
        pd.concat(orders, ignore_index=True).to_csv(out / "orders.csv", index=False)
    if ours:
        mark(out, command)
    return 0


def _print_ladder(table, out: Path) -> None:
    import pandas as pd

    from ..published import PUBLISHED
    from .study.ladder import not_measured, reaches

    for r in table.itertuples():
        tag = " [INFLATION: chosen on test]" if r.label == "inflation" else " [leakage]" if r.label == "leakage" else ""
        gain = "" if r.Index == 0 else f" ({100 * r.gain:+.1f})"
        print(f"{r.rung:>20}: {100 * r.accuracy:5.1f} % [{100 * r.low:.1f}, {100 * r.high:.1f}]{gain}{tag}  {r.note}")
    for name in not_measured(table):
        print(f"{name:>20}: not measured (the study has no runs for it; running the study again trains them)")
    if (out / "orders.csv").exists():
        for r in pd.read_csv(out / "orders.csv").itertuples():
            print(f"{r.habit:>20}: {100 * r.mean_over_orders:+.1f} points on average over {r.orders} orders "
                  f"({100 * r.lowest:+.1f} to {100 * r.highest:+.1f})" if r.orders else f"{r.habit:>20}: {r.note}")
    print(f"{reaches(table, PUBLISHED['paper_switching']['accuracy'])}. Written to {out}")


def cli_external(args) -> int:
    """``bcdet external --profile P [--study DIR] [--out DIR | --record] [--force]``: every arm of a finished
    study on BUS-BRA, from its files and BUS-BRA's table alone (no training), to ``runs/<profile>/external/``;
    only ``--record`` writes the committed ``results/<profile>-external/`` (replacing it needs ``--force``)."""
    import shlex

    from ..errors import BcdetError
    from ..paths import project_root, runs_dir
    from .study.external_report import write_external

    study = Path(args.study) if args.study else project_root() / "results" / f"{args.profile}-cv"
    if not (study / "oof").is_dir():
        raise BcdetError(f"{study} holds no study (no oof/). Run it first (`bcdet study --profile {args.profile}` with "
                         f"BCDET_BUSBRA set), or point --study at a study folder (e.g. runs/{args.profile}/cv).")
    record = getattr(args, "record", False)
    if args.out:
        out = Path(args.out)
    else:
        out = project_root() / "results" / f"{args.profile}-external" if record else runs_dir(args.profile) / "external"
    given = {"--profile": args.profile, "--study": args.study, "--out": args.out}
    command = " ".join(["bcdet external", *(f"{k} {shlex.quote(str(v))}" for k, v in given.items() if v)]
                       + (["--record"] if record else []))  # not --force: it changes no number of the record
    result = write_external(study, out, command=command, profile=args.profile, force=getattr(args, "force", False))
    for line in result.format():
        print(line)
    print(f"Written to {out}")
    return 0


def cli_stress(args) -> int:
    """``bcdet stress --profile P [--arm A ...] [--busbra] [--out DIR | --record] [--force]``: every arm's finished
    grouped runs (all folds, one seed), pooled out of fold, under every shift of :data:`shifts.SHIFTS` ->
    ``curves.csv`` and ``stress.png`` (with ``--busbra`` also ``resemblance.csv``, ``profiles.csv``,
    ``sizes.csv``) in ``runs/<profile>/stress/``; only ``--record`` writes the committed
    ``results/<profile>-stress/`` (replacing it needs ``--force``). Trains nothing: runs missing their weights
    are named, with the command that trains them."""
    import shlex

    import pandas as pd
    import torch

    from ..busi import CLASSES
    from ..data import load_split_data
    from ..errors import BcdetError
    from ..paths import runs_dir
    from ..profiles import get_profile
    from ..runkey import RunKey
    from .resemblance import compare_profiles, compare_sizes, intensity_profile, resemblance
    from .stress import plot_stress, stress_run
    from .study.design import study_design

    try:
        prof = get_profile(args.profile)
    except ValueError as exc:
        raise BcdetError(str(exc)) from None
    arms = args.arm or list(study_design(prof, ladder=False).arms)
    keys = {arm: [RunKey(arm, "grouped", f, args.seed) for f in range(prof.folds)] for arm in arms}
    missing = [k.run_dir(prof.name) for ks in keys.values() for k in ks if not (k.run_dir(prof.name) / "last.pt").exists()]
    if missing:
        raise BcdetError(f"{len(missing)} run(s) have no weights, e.g. {missing[0]}: train them first "
                         f"(`bcdet study --profile {prof.name}`); the stress test trains nothing.")
    from .outputs import claim, mark
    from ..paths import project_root

    record = getattr(args, "record", False)
    out = Path(args.out) if args.out else (project_root() / "results" / f"{prof.name}-stress" if record
                                           else runs_dir(prof.name) / "stress")
    claim(out, force=getattr(args, "force", False))  # before any work: never over a folder bcdet did not write
    from ..data.busbra import find_busbra

    if args.busbra and find_busbra() is None:
        raise BcdetError("--busbra: no BUS-BRA copy found. Set BCDET_BUSBRA to its folder (or put it in data/BUS-BRA).")
    out.mkdir(parents=True, exist_ok=True)
    given = {"--profile": prof.name, "--arm": " ".join(args.arm) if args.arm else None, "--seed": args.seed or None,
             "--out": args.out}
    mark(out, " ".join(["bcdet stress", *(f"{k} {shlex.quote(str(v))}" for k, v in given.items() if v is not None)]
                       + (["--busbra"] if args.busbra else []) + (["--record"] if record else [])))
    frames = []
    for arm, ks in keys.items():
        datas = [load_split_data(prof, "grouped", args.seed, fold=k.fold) for k in ks]
        frames.append(stress_run([k.run_dir(prof.name) for k in ks], datas, device=args.device))
    curves = pd.concat(frames, ignore_index=True)
    curves.to_csv(out / "curves.csv", index=False)
    plot_stress(curves).savefig(out / "stress.png", dpi=120)
    if args.busbra:
        from ..data.cache import load_cache
        from .study.external import external_images

        got = external_images(prof.image_size, prof.channels, prof.resize)
        if got is None:
            raise BcdetError("--busbra: no BUS-BRA copy found. Set BCDET_BUSBRA to its folder (or put it in data/BUS-BRA).")
        ext, table = got
        cache = load_cache(None, prof.image_size, prof.channels, resize=prof.resize)
        lesion = (cache["labels"] != CLASSES.index("normal")).numpy()
        busi = cache["images"][torch.from_numpy(lesion)]
        resemblance(busi, ext).to_csv(out / "resemblance.csv", index=False)
        compare_profiles(intensity_profile(busi), intensity_profile(ext), ("BUSI", "BUSBRA")).to_csv(
            out / "profiles.csv", index=False)
        root = Path(cache["meta"]["root"])
        compare_sizes({"BUSI (lesions)": [root / f for f, k in zip(cache["files"], lesion) if k],
                       "BUS-BRA": list(table["path"])}).to_csv(out / "sizes.csv", index=False)
    print(f"Written to {out}")
    return 0
