"""``bcdet`` -- the command line.

All argument parsing lives here; each sub-command hands its parsed arguments to a ``cli_*``
function beside it in :mod:`.commands`, which calls the module that does the work, so this file
stays a table of contents. Heavy imports (torch) happen inside those functions, so ``bcdet --help``
and ``bcdet data check`` stay quick.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import BcdetError
from .options import epochs_arg, seed_arg, seeds_arg
from .profiles import KINDS

# sub-command -> (module, function): every handler lives in bcdet_helpers.commands
HANDLERS = {
    "data check": ("bcdet_helpers.commands", "cli_check"),
    "data download": ("bcdet_helpers.commands", "cli_download"),
    "duplicates": ("bcdet_helpers.commands", "cli_duplicates"),
    "train": ("bcdet_helpers.commands", "cli_train"),
    "tune": ("bcdet_helpers.commands", "cli_tune"),
    "predict": ("bcdet_helpers.commands", "cli_predict"),
    "evaluate": ("bcdet_helpers.commands", "cli_evaluate"),
    "reproduce": ("bcdet_helpers.commands", "cli_reproduce"),
    "publish": ("bcdet_helpers.commands", "cli_publish"),
    "ladder": ("bcdet_helpers.commands", "cli_ladder"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bcdet",
        description="ResNet9 on breast ultrasound (BUSI): data, training, evaluation, reproduction.",
        epilog="`bcdet COMMAND --help` shows each command's options and defaults.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="check or download the BUSI dataset")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    check = dsub.add_parser("check", help="validate a BUSI folder and print what is in it")
    check.add_argument("path", nargs="?", help="BUSI folder (default: $BCDET_DATA or data/)")
    dl = dsub.add_parser("download", help="fetch, verify and unpack BUSI (skipped when present)")
    dl.add_argument("--dest", default=None, help="folder to unpack into (default: data/)")
    dl.add_argument("--url", default=None, help="zip URL (default: $BCDET_BUSI_URL or the authors')")
    dl.add_argument("--force", action="store_true", help="download even if a copy is found")
    dl.add_argument("--allow-incomplete", action="store_true",
                    help="keep a zip with fewer images than the published 780 (your own subset)")

    dup = sub.add_parser("duplicates", help="find near-duplicate images (same scan) in BUSI")
    dup.add_argument("path", nargs="?", help="BUSI folder (default: $BCDET_DATA or data/)")
    dup.add_argument("--csv", default=None, help="write one row per pair to this CSV")

    tr = sub.add_parser("train", help="one headless training run")
    tr.add_argument("--profile", default="laptop", help="paper | laptop | class | smoke (default: %(default)s)")
    tr.add_argument("--schedule", default="switching",
                    help="constant | decay | switching | onecycle (default: %(default)s)")
    tr.add_argument("--seed", type=seed_arg, default=0, help="fixes split, init, augmentation, batch order (default: %(default)s)")
    tr.add_argument("--split", default="grouped", choices=KINDS,
                    help="grouped (leak-free) | random (paper-like) (default: %(default)s)")
    tr.add_argument("--fold", type=int, default=0, help="the test fold, 0..4 (default: %(default)s)")
    tr.add_argument("--epochs", type=epochs_arg, default=None, help="override the profile's epochs")
    tr.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")
    tr.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")

    tu = sub.add_parser("tune", help="tune an arm's rates and switch points on validation data (Optuna)")
    tu.add_argument("--profile", default="laptop", help="paper | laptop | class | smoke (default: %(default)s)")
    tu.add_argument("--schedule", default="all", help="constant | decay | switching | onecycle | all (default: %(default)s)")
    tu.add_argument("--trials", type=int, default=12, help="finished trials per arm, the same for every arm (default: %(default)s)")
    tu.add_argument("--storage", default=None,
                    help="Optuna storage URL (default: sqlite file under runs/<profile>/tuning/; "
                         "a postgresql:// or mysql:// URL lets several machines share one study)")
    tu.add_argument("--split", default="grouped", choices=KINDS, help="(default: %(default)s)")
    tu.add_argument("--seed", type=seed_arg, default=0, help="the sampler's and the runs' seed (default: %(default)s)")
    tu.add_argument("--jobs", type=int, default=None,
                    help="parallel workers on this machine (default: one 1-thread worker per core on a CPU, 1 on a GPU)")
    tu.add_argument("--device", default="cpu", help="auto | cpu | cuda | mps (default: %(default)s)")
    tu.add_argument("--out", default=None, help="folder for trials CSV, best values, figures (default: runs/<profile>/tuning/)")
    tu.add_argument("--export", default=None, metavar="DIR",
                    help="train nothing: write every arm's summary so far (and a copy of a SQLite study) to DIR")
    tu.add_argument("--adopt", default=None, metavar="DIR",
                    help="train nothing: print the profiles.TUNED entry an exported folder supports (equal budgets "
                         "of at least --trials per arm, a stable best trial each), to paste into profiles.py")

    pr = sub.add_parser("predict", help="class probabilities for images (a teaching model!)")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")

    ev = sub.add_parser("evaluate", help="evaluate a checkpoint on a folder-per-class dataset")
    ev.add_argument("folder")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--map", action="append", default=[], metavar="SRC=DST",
                    help="rename a class folder, e.g. --map malign=malignant (repeat for several)")
    ev.add_argument("--out", default=None, help="folder for metrics.json and figures")
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")

    rp = sub.add_parser("reproduce", help="run notebooks 01-05 with papermill")
    rp.add_argument("--profile", default="paper", help="paper | laptop | smoke (default: %(default)s)")
    rp.add_argument("--seeds", type=seeds_arg, nargs="+", default=None, metavar="N",
                    help="a smaller study: only these seeds (default: the profile's own)")
    rp.add_argument("--splits", nargs="+", choices=KINDS, default=None,
                    help="a smaller study: only these splits (default: both)")
    rp.add_argument("--random-seeds", type=seeds_arg, nargs="+", default=None, metavar="N",
                    help="seeds of the random split, which only measures the leakage gap (default: the first seed)")
    rp.add_argument("--study", action=argparse.BooleanOptionalAction, default=None,
                    help="run notebook 05's cross-validated study (default: yes for paper and laptop, no for "
                         "class and smoke)")
    rp.add_argument("--no-ladder", dest="ladder", action="store_false",
                    help="leave out the leakage ladder's extra runs (25 of laptop's 105): the same verdict, "
                         "and the ladder without the rungs they measure")
    rp.add_argument("--out", default=None, help="default: runs/<profile>/")
    rp.add_argument("--yes", action="store_true",
                    help="start even when the training is estimated at over an hour, without asking")

    pb = sub.add_parser("publish", help="copy a finished reproduction's small outputs to results/<profile>/")
    pb.add_argument("--profile", default="paper", help="paper | laptop | smoke (default: %(default)s)")
    pb.add_argument("--dest", default=None, help="default: results/<profile>/ (with --partial: results/<profile>-cv-partial/, "
                                                   "with --study-only: results/<profile>-cv/)")
    only = pb.add_mutually_exclusive_group()  # argparse refuses both at once
    only.add_argument("--partial", action="store_true",
                      help="snapshot the cross-validated study while it runs (its CSVs and finished runs' records, "
                           "no verdict), to commit before the machine is lost")
    only.add_argument("--study-only", action="store_true",
                      help="publish a finished study trained without the notebooks (e.g. on a GPU machine) "
                           "to results/<profile>-cv/, without a report")

    ld = sub.add_parser("ladder", help="the leakage ladder: how one arm's honest accuracy climbs to a paper-like one")
    ld.add_argument("--profile", default="laptop", help="whose study (default: %(default)s)")
    ld.add_argument("--study", default=None, help="a study folder (default: results/<profile>-cv/, the published one)")
    ld.add_argument("--arm", default=None, help="the arm to climb with (default: switching, the paper's method)")
    ld.add_argument("--out", default=None, help="default: results/<profile>-ladder/")
    ld.add_argument("--include-conflicts", action="store_true", help="score the label conflicts too")
    return p


def preflight(key: str, args) -> None:
    """Refusals a command owes the user before it does any work.

    ``bcdet train`` and ``bcdet tune`` refuse a BUSI folder that ``bcdet data check`` calls NOT USABLE here, before it
    picks a device or touches a run folder (``reproduce`` does the same itself, and the notebooks
    through :func:`~bcdet_helpers.data.index.load_index`), so all of them say the same thing.
    """
    reads_only = key == "tune" and (getattr(args, "export", None) or getattr(args, "adopt", None))
    if key in ("train", "tune") and not reads_only:  # --export / --adopt read a study, no images
        from .data.check import require_usable

        require_usable()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    key = args.command + (f" {args.data_command}" if args.command == "data" else "")
    module, func = HANDLERS[key]
    try:
        preflight(key, args)
        handler = getattr(importlib.import_module(module), func)
        return int(handler(args) or 0)
    except BcdetError as exc:
        print(f"bcdet: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave that cannot be written or read
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bcdet: error: {where}{exc.strerror or exc}. Check the path you gave.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bcdet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
