"""The ``bcdet`` sub-commands: what each one prints and returns, beside the parser (:mod:`.cli`).

:mod:`.cli` parses the arguments and calls one ``cli_*`` function here; each turns the parsed
arguments into calls of the module that does the work and prints the outcome for a person -- the
domain modules print nothing of the command line's and know nothing of ``argparse``. Heavy imports
(torch, the data modules) happen inside each function, so ``bcdet --help`` and ``bcdet data check``
stay quick. A handler returns the exit status; :class:`~bcdet_helpers.errors.BcdetError` is
printed by :func:`.cli.main` as ``bcdet: error: ...`` (exit 2).

The dependencies point one way: :mod:`.cli` -> this module -> the domain modules. No module below
imports this one or :mod:`.cli`, not even inside a function (``tests/test_layout.py`` checks), and
the handlers have no second home: ``cli_train`` and the others are imported from here only.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .busi import CLASSES

TEACHING_REMINDER = (
    "Reminder: this is a teaching model trained on one small public dataset -- not a medical "
    "device. Do not use it to diagnose anyone."
)


# ------------------------------------------------------------------------------------------ data
def cli_check(args) -> int:
    """``bcdet data check [--busbra] [PATH]``: print the report; exit 0 when usable, 1 otherwise."""
    if getattr(args, "busbra", False):  # the external test set (issue #30): the same kind of report
        from .data.busbra_check import check_busbra as check
    else:
        from .data.check import check_dataset as check
    report = check(getattr(args, "path", None))
    print(report.format())
    return 0 if report.ok else 1


def cli_download(args) -> int:
    """``bcdet data download [--dest D] [--url U] [--force] [--allow-incomplete]``."""
    from .data.download import download_busi

    download_busi(dest=args.dest, url=args.url, force=args.force,
                  allow_incomplete=getattr(args, "allow_incomplete", False))
    return 0


def cli_duplicates(args) -> int:
    """``bcdet duplicates [PATH] [--csv OUT]``: print the groups, optionally write the pairs."""
    from .data.duplicates import summarize
    from .data.index import load_index
    from .data.similarity import THRESHOLD

    t0 = time.perf_counter()
    bundle = load_index(getattr(args, "path", None), full=True)
    index, pairs = bundle["index"], bundle["pairs"]
    if getattr(args, "csv", None):
        from .runinfo import write_atomic

        out = write_atomic(args.csv, lambda tmp: pairs.to_csv(tmp, index=False))  # never half a CSV (Ctrl-C)
        print(f"wrote {len(pairs)} pairs to {out}")
    sizes = index.groupby("group")["file"].transform("size")
    grouped = index[sizes >= 2].groupby("group", sort=True)
    # numbered 1..n here; the index's own group ids also count every single image, so they have gaps
    for n, (_, members) in enumerate(grouped, start=1):
        cross = members["label"].nunique() > 1
        tag = "  <-- CROSSES CLASSES (label conflict)" if cross else ""
        print(f"group {n}/{grouped.ngroups} ({len(members)} images){tag}")
        for f in members["file"]:
            print(f"    {f}")
    s = summarize(index, pairs)
    print(
        f"\n{s['pairs']} near-duplicate pairs (similarity >= {THRESHOLD}) among {s['images']} images; "
        f"{s['groups']} groups holding {s['images_in_groups']} images; "
        f"{s['cross_class_groups']} groups cross classes ({s['cross_class_pairs']} cross-class pairs). "
        f"[{time.perf_counter() - t0:.1f} s]"
    )
    return 0


# ------------------------------------------------------------------------------------ training
def cli_train(args) -> int:
    """``bcdet train``: one headless run; prints where the results went and the best val metrics."""
    from . import runs

    res = runs.train_run(args.profile, args.arm, kind=args.kind, fold=args.fold, seed=args.seed, epochs=args.epochs,
                         device=args.device, resume=args.resume)
    if res.interrupted:  # fit has said so, in one line, with how to go on
        return 130
    b = res.best
    print(f"Run folder: {res.run_dir}")
    print("  config.json, history.csv, checkpoint.pt, best.pt (best-by-validation weights), result.json")
    print(f"Best epoch {res.best_epoch}/{len(res.history)}: val accuracy {b['val_acc']:.3f}, "
          f"val macro-F1 {b['val_f1']:.3f}, val loss {b['val_loss']:.3f}")
    print(f"Wall time {res.wall_time:.1f} s, {res.seconds_per_epoch:.2f} s/epoch on {res.device}")
    return 0


def cli_tune(args) -> int:
    """``bcdet tune``: tune one arm (or ``all``) with an equal number of trials; ``--export DIR``
    only writes the summaries of the studies so far."""
    from . import tune
    from .profiles import SEARCH_SPACES, get_profile

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

    from .busi import CLASSES
    from .data import load_split_data
    from .errors import BcdetError
    from .paths import runs_dir
    from .profiles import get_profile
    from .runkey import RunKey
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
    from .paths import project_root

    record = getattr(args, "record", False)
    out = Path(args.out) if args.out else (project_root() / "results" / f"{prof.name}-stress" if record
                                           else runs_dir(prof.name) / "stress")
    claim(out, force=getattr(args, "force", False))  # before any work: never over a folder bcdet did not write
    from .data.busbra import find_busbra

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
        from .data.cache import load_cache
        from .study.external import external_images

        got = external_images(prof.image_size, prof.channels)
        if got is None:
            raise BcdetError("--busbra: no BUS-BRA copy found. Set BCDET_BUSBRA to its folder (or put it in data/BUS-BRA).")
        ext, table = got
        cache = load_cache(None, prof.image_size, prof.channels)
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
        from .errors import BcdetError

        raise BcdetError(f"--jobs must be at least 1, got {args.jobs}.")
    study = run_study(design, device=args.device, jobs=args.jobs, only=args.run)
    if study is None:
        names = [design.runs()[k].name for k in args.run]
        print(f"trained {', '.join(names)}; when every run is done, `bcdet study --profile {design.profile.name}` "
              "collects and evaluates them")
        return 0
    print("\n".join(study.summary("grouped")))
    return 0


# ---------------------------------------------------------------------------------- evaluation
def cli_predict(args) -> int:
    """``bcdet predict IMAGE... --checkpoint C``: per-class probabilities for each image."""
    from .checkpoints import load_checkpoint
    from .data.cache import load_images
    from .device import choose_device
    from .evaluate import predict_proba

    device = choose_device(getattr(args, "device", "auto"))
    model, meta = load_checkpoint(args.checkpoint, device=device)
    classes = tuple(meta.get("classes", CLASSES))
    x = load_images(args.images, int(meta["image_size"]), int(meta.get("channels", 1)))
    proba = predict_proba(model, x, float(meta["mean"]), float(meta["std"]), device=device)
    width = max(len(str(p)) for p in args.images)
    print(f"{'image':<{width}}  " + "  ".join(f"{c:>9}" for c in classes) + "  prediction")
    for path, row in zip(args.images, proba):
        cells = "  ".join(f"{p:9.3f}" for p in row)
        print(f"{str(path):<{width}}  {cells}  {classes[int(row.argmax())]}")
    print(TEACHING_REMINDER)
    return 0


def cli_evaluate(args) -> int:
    """``bcdet evaluate DIR --checkpoint C [--map SRC=DST ...] [--out O] [--crop auto|off]``.

    Scores a checkpoint on any folder-per-class dataset and writes ``metrics.json`` (the same
    metrics as notebook 05, with bootstrap CIs and ECE) and ``confusion_matrix.png`` to ``--out``
    (default ``runs/evaluate/<folder name>``). With ``--crop auto`` (the default) screen captures
    are cut to their scan area first (:mod:`.data.scanarea`) and the command says how many were.
    """
    from . import plots
    from .checkpoints import load_checkpoint
    from .data.cache import load_images, load_scan_areas
    from .data.folders import folder_dataset, parse_map, single_class_warning
    from .data.scanarea import crop_counts, crop_summary
    from .device import choose_device
    from .evaluate import _plain, predict_proba
    from .metrics import accuracy, classification_metrics, macro_f1_of_proba
    from .paths import runs_dir
    from .runinfo import environment_info, write_json
    from .uncertainty import bootstrap_ci, bootstrap_count, expected_calibration_error

    start = time.time()
    device = choose_device(getattr(args, "device", "auto"))
    model, meta = load_checkpoint(args.checkpoint, device=device)
    classes = tuple(meta.get("classes", CLASSES))
    paths, y = folder_dataset(args.folder, classes, parse_map(getattr(args, "map", None)))
    size, channels, crop = int(meta["image_size"]), int(meta.get("channels", 1)), getattr(args, "crop", "auto")
    if crop == "auto":  # screen captures -> their scan area; scan areas (BUSI, BUS-BRA) come through as they are
        x, crops = load_scan_areas(paths, size, channels)
    else:
        x, crops = load_images(paths, size, channels), [None] * len(paths)
    proba = predict_proba(model, x, float(meta["mean"]), float(meta["std"]), device=device)
    m = classification_metrics(y, proba, classes)
    warning = single_class_warning(y, classes)
    n_boot = bootstrap_count(meta.get("profile"))  # the checkpoint's profile's, as in notebook 05
    result = {
        "warning": warning,
        "folder": str(Path(args.folder).resolve()),
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "map": parse_map(getattr(args, "map", None)),
        "checkpoint_meta": {k: _plain(v) for k, v in meta.items() if isinstance(_plain(v), (str, int, float, list, tuple, type(None)))},
        **m,
        "ci": {
            "accuracy": bootstrap_ci(y, proba, accuracy, n_boot, 0),
            "macro_f1": bootstrap_ci(y, proba, macro_f1_of_proba, n_boot, 0),
        },
        "ece": expected_calibration_error(y, proba),
        "crop": {"mode": crop, **(crop_counts(crops) if crop == "auto" else {})},
        "predictions": [
            {"file": str(p), "true": classes[t], "pred": classes[int(r.argmax())], "proba": [round(float(v), 4) for v in r],
             "crop_box": list(c.box) if c is not None and c.cropped else None}
            for p, t, r, c in zip(paths, y, proba, crops)
        ],
        "environment": environment_info(device),
        "wall_time_s": None,
    }
    out = Path(args.out) if getattr(args, "out", None) else runs_dir() / "evaluate" / Path(args.folder).resolve().name
    fig = plots.confusion_matrices(np.asarray(m["confusion_matrix"]), classes, title=f"{Path(args.folder).name}")
    new = not out.exists()
    try:
        png = plots.save(fig, out, "confusion_matrix")
        result["wall_time_s"] = round(time.time() - start, 2)
        write_json(out / "metrics.json", result)
    except BaseException:  # Ctrl-C, a full disk: no new --out folder that looks like a finished evaluation
        if new:
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise
    ci = result["ci"]
    if warning:
        print(f"\n{'!' * 100}\n{warning}\n{'!' * 100}\n", flush=True)
        print(warning, file=sys.stderr)
    print(f"{len(y)} images from {args.folder}  ({', '.join(f'{c}: {int((y == i).sum())}' for i, c in enumerate(classes))})")
    print(crop_summary(crops) if crop == "auto" else "crop off: every image used whole")
    print(f"accuracy {m['accuracy']:.3f}  (95% CI {ci['accuracy']['low']:.3f}-{ci['accuracy']['high']:.3f})   "
          f"macro-F1 {m['macro_f1']:.3f}  (95% CI {ci['macro_f1']['low']:.3f}-{ci['macro_f1']['high']:.3f})")
    for c, row in m["per_class"].items():
        print(f"  {c:<10} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
              f"specificity {row['specificity']:.3f}  F1 {row['f1']:.3f}  n={row['support']}")
    print(f"wrote {out / 'metrics.json'} and {png}")
    print("Note: if this folder holds images the model was trained or validated on (BUSI itself, for a "
          "BUSI checkpoint), these numbers are optimistic -- a fair test uses images the model never saw.")
    print(TEACHING_REMINDER)
    return 0


# ------------------------------------------------------------------------------- reproduction
def cli_reproduce(args) -> int:
    """``bcdet reproduce --profile P [--study | --no-study] [--no-ladder] [--seeds N ...] [--random-seeds N ...]
    [--kinds K ...] [--out O] [--yes]``."""
    from . import reproduce as rp
    from .errors import BcdetError

    try:
        rp.reproduce(args.profile, out=getattr(args, "out", None), seeds=getattr(args, "seeds", None),
                     kinds=getattr(args, "kinds", None), yes=getattr(args, "yes", False),
                     study=getattr(args, "study", None), random_seeds=getattr(args, "random_seeds", None),
                     ladder=getattr(args, "ladder", True))
    except ValueError as exc:  # unknown profile
        raise BcdetError(str(exc)) from None
    return 0


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
    from .paths import runs_dir

    cv = runs_dir(profile) / "cv"
    done, runs = cv / "study.json", cv / "runs.csv"
    return done.exists() and (not runs.exists() or done.stat().st_mtime >= runs.stat().st_mtime)


def cli_ladder(args) -> int:
    """``bcdet ladder --profile P [--study DIR] [--arm A] [--out DIR | --record] [--force]``: the leakage
    ladder of a finished study, from its files alone (no training), to ``runs/<profile>/ladder/``; only
    ``--record`` writes the committed ``results/<profile>-ladder/`` (and replacing it needs ``--force``)."""
    import shlex

    from .errors import BcdetError
    from .paths import project_root, runs_dir
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


def cli_external(args) -> int:
    """``bcdet external --profile P [--study DIR] [--out DIR | --record] [--force]``: every arm of a finished
    study on BUS-BRA, from its files and BUS-BRA's table alone (no training), to ``runs/<profile>/external/``;
    only ``--record`` writes the committed ``results/<profile>-external/`` (replacing it needs ``--force``)."""
    import shlex

    from .errors import BcdetError
    from .paths import project_root, runs_dir
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


def _ladders_of_every_arm(study: Path, out: Path, command: str, args) -> int:
    """``bcdet ladder --arm all``: one ladder per arm of the study that ran the random split (``out/<arm>/``)
    and ``out/ladders.csv`` with every arm's rungs side by side, so a reader sees whether the headline
    holds for all of them."""
    import pandas as pd

    from .outputs import claim, mark
    from .study import load_study, write_ladder

    ours = claim(out, force=getattr(args, "force", False), names=["ladders.csv"])
    recorded = load_study(study)
    arms = [a for a in recorded.arms if (a, "random") in {(r.arm, r.kind) for r in recorded.runs}]
    tables = []
    for arm in arms:
        table = write_ladder(study, out / arm, arm, command=command, include_conflicts=args.include_conflicts,
                             profile=args.profile, force=getattr(args, "force", False))
        print(f"--- {arm}")
        _print_ladder(table, out / arm)
        tables.append(table.assign(arm=arm))
    out.mkdir(parents=True, exist_ok=True)
    pd.concat(tables, ignore_index=True).to_csv(out / "ladders.csv", index=False)
    if ours:
        mark(out, command)
    return 0


def _print_ladder(table, out: Path) -> None:
    from .published import PUBLISHED
    from .study.ladder import not_measured, reaches

    for r in table.itertuples():
        tag = " [INFLATION: chosen on test]" if r.label == "inflation" else " [leakage]" if r.label == "leakage" else ""
        gain = "" if r.Index == 0 else f" ({100 * r.gain:+.1f})"
        print(f"{r.rung:>20}: {100 * r.accuracy:5.1f} % [{100 * r.low:.1f}, {100 * r.high:.1f}]{gain}{tag}  {r.note}")
    for name in not_measured(table):
        print(f"{name:>20}: not measured (the study has no runs for it; running the study again trains them)")
    print(f"{reaches(table, PUBLISHED['paper_switching']['accuracy'])}. Written to {out}")


def cli_improve(args) -> int:
    """``bcdet improve --profile P [--rungs R ...] [--arm A] [--jobs N] [--list] [--out DIR | --record] [--force]``:
    the improvement ladder (:mod:`study.improve`): every rung's runs on the verdict's folds and seeds, chosen on
    validation, scored on BUSI out-of-fold and BUS-BRA, to ``runs/<profile>/improve/``; only ``--record`` writes
    the committed ``results/<profile>-improve/`` (replacing it needs ``--force``). Resumable: finished runs are
    loaded. ``--list`` trains nothing and prints the runs as far as finished runs decide the ladder."""
    import shlex

    from .data.busbra import find_busbra
    from .errors import BcdetError
    from .paths import project_root
    from .profiles import get_profile
    from .study.improve import check_rungs, describe_estimate, estimate_improve, list_runs, plan_ladder
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
