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

This module holds the course's commands (data, train, predict, evaluate, reproduce); the research
commands live beside it, split by job (issue #32): :mod:`.commands_study` (``study``, ``tune``,
``improve``: they train) and :mod:`.commands_records` (``publish``, ``ladder``, ``external``,
``stress``: they read a finished study and write its records).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..busi import CLASSES

TEACHING_REMINDER = (
    "Reminder: this is a teaching model trained on one small public dataset -- not a medical "
    "device. Do not use it to diagnose anyone."
)


# ------------------------------------------------------------------------------------------ data
def cli_check(args) -> int:
    """``bcdet data check [--busbra] [PATH]``: print the report; exit 0 when usable, 1 otherwise."""
    if getattr(args, "busbra", False):  # the external test set (issue #30): the same kind of report
        from ..data.busbra_check import check_busbra as check
    else:
        from ..data.check import check_dataset as check
    report = check(getattr(args, "path", None))
    print(report.format())
    return 0 if report.ok else 1


def cli_download(args) -> int:
    """``bcdet data download [--dest D] [--url U] [--force] [--allow-incomplete]``."""
    from ..data.download import download_busi

    download_busi(dest=args.dest, url=args.url, force=args.force,
                  allow_incomplete=getattr(args, "allow_incomplete", False))
    return 0


def cli_duplicates(args) -> int:
    """``bcdet duplicates [PATH] [--csv OUT]``: print the groups, optionally write the pairs."""
    from ..data.duplicates import summarize
    from ..data.index import load_index
    from ..data.similarity import THRESHOLD

    t0 = time.perf_counter()
    bundle = load_index(getattr(args, "path", None), full=True)
    index, pairs = bundle["index"], bundle["pairs"]
    if getattr(args, "csv", None):
        from ..runinfo import write_atomic

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
    from .. import runs

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


# ---------------------------------------------------------------------------------- evaluation
def _resize_of(meta: dict) -> str:
    """The resize filter a checkpoint's images were squashed with (one that predates the field: the
    filter every earlier run used), so a file is read as its training images were."""
    from ..profiles import RUN_FIELDS_BEFORE

    return meta.get("resize", RUN_FIELDS_BEFORE["resize"])


def cli_predict(args) -> int:
    """``bcdet predict IMAGE... --checkpoint C``: per-class probabilities for each image."""
    from ..checkpoints import load_checkpoint
    from ..data.cache import load_images
    from ..device import choose_device
    from ..evaluate import predict_proba

    device = choose_device(getattr(args, "device", "auto"))
    model, meta = load_checkpoint(args.checkpoint, device=device)
    classes = tuple(meta.get("classes", CLASSES))
    x = load_images(args.images, int(meta["image_size"]), int(meta.get("channels", 1)), _resize_of(meta))
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
    are cut to their scan area first (:mod:`bcdet_helpers.data.scanarea`) and the command says how many were.
    """
    from .. import plots
    from ..checkpoints import load_checkpoint
    from ..data.cache import load_images, load_scan_areas
    from ..data.folders import folder_dataset, parse_map, single_class_warning
    from ..data.scanarea import crop_counts, crop_summary
    from ..device import choose_device
    from ..evaluate import _plain, predict_proba
    from ..metrics import accuracy, classification_metrics, macro_f1_of_proba
    from ..paths import runs_dir
    from ..runinfo import environment_info, write_json
    from ..uncertainty import bootstrap_ci, bootstrap_count, expected_calibration_error

    start = time.time()
    device = choose_device(getattr(args, "device", "auto"))
    model, meta = load_checkpoint(args.checkpoint, device=device)
    classes = tuple(meta.get("classes", CLASSES))
    paths, y = folder_dataset(args.folder, classes, parse_map(getattr(args, "map", None)))
    size, channels, crop = int(meta["image_size"]), int(meta.get("channels", 1)), getattr(args, "crop", "auto")
    if crop == "auto":  # screen captures -> their scan area; scan areas (BUSI, BUS-BRA) come through as they are
        x, crops = load_scan_areas(paths, size, channels, _resize_of(meta))
    else:
        x, crops = load_images(paths, size, channels, _resize_of(meta)), [None] * len(paths)
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
    from ..errors import BcdetError

    try:
        rp.reproduce(args.profile, out=getattr(args, "out", None), seeds=getattr(args, "seeds", None),
                     kinds=getattr(args, "kinds", None), yes=getattr(args, "yes", False),
                     study=getattr(args, "study", None), random_seeds=getattr(args, "random_seeds", None),
                     ladder=getattr(args, "ladder", True))
    except ValueError as exc:  # unknown profile
        raise BcdetError(str(exc)) from None
    return 0
