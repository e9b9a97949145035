"""``bcdet`` -- the command line.

All argument parsing lives here; each sub-command hands its parsed arguments to a ``cli_*``
function beside it in :mod:`.commands` (or :mod:`.commands_study`, :mod:`.commands_records`), which
calls the module that does the work, so this file stays a table of contents. Heavy imports (torch)
happen inside those functions, so ``bcdet --help`` and ``bcdet data check`` stay quick.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import BcdetError
from ..options import epochs_arg, random_seeds_arg, seed_arg, seeds_arg
from ..profiles import ARMS, KINDS, PROFILES, TUNED_ARMS

PROFILE_HELP = " | ".join(PROFILES) + " (default: %(default)s)"  # every --profile lists every profile
# One rule for the default profile: a command that reproduces the paper defaults to `paper`; every other command
# works at the CPU study's scale, `laptop`. (The notebooks, opened by hand, and `make slides` default to `class`.)
PAPER_COMMANDS = ("reproduce", "publish")
DEFAULT_PROFILE_RULE = ("--profile is one of " + ", ".join(PROFILES) + " (bcdet_helpers/profiles.py); it defaults to "
                        f"paper for {' and '.join(PAPER_COMMANDS)}, which reproduce the paper, and to laptop, the CPU "
                        "study, for every other command. class runs each notebook in minutes on a CPU; smoke is for "
                        "tests.")
KIND_HELP = "grouped (leak-free) | random (paper-like): how the folds are drawn (default: %(default)s)"

# sub-command -> (module, function): each handler is named after its last word and lives in one of three modules,
# split by job: the course's commands, the ones that train a study, the ones that write a finished study's records
HOMES = {"bcdet_helpers.research.commands": ("data check", "data download", "duplicates", "train", "predict",
                                             "evaluate", "reproduce"),
         "bcdet_helpers.research.commands_study": ("tune", "study", "improve"),
         "bcdet_helpers.research.commands_records": ("publish", "ladder", "external", "stress")}
COMMANDS = tuple(key for keys in HOMES.values() for key in keys)
HANDLERS = {key: (module, f"cli_{key.split()[-1]}") for module, keys in HOMES.items() for key in keys}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bcdet",
        description="ResNet9 on breast ultrasound (BUSI): data, training, evaluation, reproduction.",
        epilog="`bcdet COMMAND --help` shows each command's options and defaults. " + DEFAULT_PROFILE_RULE,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="check or download the BUSI dataset")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    check = dsub.add_parser("check", help="validate a BUSI (or, with --busbra, a BUS-BRA) folder and print what is in it")
    check.add_argument("path", nargs="?", help="BUSI folder (default: $BCDET_DATA or data/); with --busbra, "
                                                "a BUS-BRA folder (default: $BCDET_BUSBRA or data/BUS-BRA)")
    check.add_argument("--busbra", action="store_true",
                       help="check the external test set BUS-BRA: counts, patients, scanners, checksums")
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
    _profile_option(tr, "train")
    tr.add_argument("--arm", default="switching", help=" | ".join(ARMS) + " (default: %(default)s)")
    _renamed(tr, "--schedule", "--arm")
    tr.add_argument("--seed", type=seed_arg, default=0, help="fixes split, init, augmentation, batch order (default: %(default)s)")
    tr.add_argument("--kind", default="grouped", choices=KINDS, help=KIND_HELP)
    _renamed(tr, "--split", "--kind", choices=KINDS)
    tr.add_argument("--fold", type=int, default=0, help="the test fold, 0..4 (default: %(default)s)")
    tr.add_argument("--epochs", type=epochs_arg, default=None, help="override the profile's epochs")
    tr.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")
    tr.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")

    tu = sub.add_parser("tune", help="tune an arm's rates and switch points on validation data (Optuna)")
    _profile_option(tu, "tune")
    tu.add_argument("--arm", default="all", help=" | ".join((*TUNED_ARMS, "all")) + " (default: %(default)s)")
    _renamed(tu, "--schedule", "--arm")
    tu.add_argument("--trials", type=int, default=24,
                    help="trials per arm (finished or pruned after their first run), the same for every arm "
                         "(default: %(default)s)")
    tu.add_argument("--storage", default=None,
                    help="Optuna storage URL (default: sqlite file under runs/<profile>/tuning/; "
                         "a postgresql:// or mysql:// URL lets several machines share one study)")
    tu.add_argument("--kind", default="grouped", choices=KINDS, help=KIND_HELP)
    _renamed(tu, "--split", "--kind", choices=KINDS)
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
    ev.add_argument("--crop", default="auto", choices=("auto", "off"),
                    help="auto: cut screen captures to their scan area (dark UI borders, text bands), and say how "
                         "many; images that are already a scan area stay as they are. off: use every image whole "
                         "(default: %(default)s)")

    rp = sub.add_parser("reproduce", help="run notebooks 01-06 with papermill")
    _profile_option(rp, "reproduce", after="; class is the cheap path: every notebook in minutes on a CPU")
    rp.add_argument("--seeds", type=seeds_arg, nargs="+", default=None, metavar="N",
                    help="a smaller study: only these seeds (default: the profile's own)")
    rp.add_argument("--kinds", nargs="+", choices=KINDS, default=None,
                    help="a smaller study: only these kinds of folds (default: both)")
    _renamed(rp, "--splits", "--kinds", nargs="+", choices=KINDS)
    rp.add_argument("--random-seeds", type=random_seeds_arg, nargs="+", default=None, metavar="N",
                    help="seeds of the random split, which only measures the leakage gap (default: the first seed)")
    rp.add_argument("--study", action=argparse.BooleanOptionalAction, default=None,
                    help="run notebook 05's cross-validated study (default: yes for paper and laptop, no for "
                         "class and smoke)")
    rp.add_argument("--no-ladder", dest="ladder", action="store_false",
                    help="leave out the leakage ladder's extra runs (the random split's further seeds and the "
                         "runs with test copies; `bcdet study --list` names them): the same verdict, and the "
                         "ladder without the rungs they measure")
    rp.add_argument("--out", default=None, help="default: runs/<profile>/")
    rp.add_argument("--yes", action="store_true",
                    help="start even when the training is estimated at over an hour, without asking")

    pb = sub.add_parser("publish", help="copy a finished reproduction's small outputs to results/<profile>/")
    _profile_option(pb, "publish")
    pb.add_argument("--dest", default=None, help="default: results/<profile>/ (with --partial: results/<profile>-cv-partial/, "
                                                   "with --study-only: results/<profile>-cv/)")
    only = pb.add_mutually_exclusive_group()  # argparse refuses both at once
    only.add_argument("--partial", action="store_true",
                      help="snapshot the cross-validated study while it runs (its CSVs and finished runs' records, "
                           "no verdict), to commit before the machine is lost")
    only.add_argument("--study-only", action="store_true",
                      help="publish a finished study trained without the notebooks (e.g. on a GPU machine) "
                           "to results/<profile>-cv/, without a report")
    pb.add_argument("--force", action="store_true",
                    help="replace a destination publish did not write, or committed results (it says what it replaces)")

    ld = sub.add_parser("ladder", help="the leakage ladder: how one arm's honest accuracy climbs to a paper-like one")
    _profile_option(ld, "ladder", before="whose study: ")
    ld.add_argument("--study", default=None, help="a study folder (default: results/<profile>-cv/, the published one)")
    ld.add_argument("--arm", default=None,
                    help="the arm to climb with (default: switching, the paper's method); `all`: every arm of the "
                         "study, each in its own folder, plus ladders.csv beside them")
    _record_options(ld, "ladder")
    ld.add_argument("--include-conflicts", action="store_true", help="score the label conflicts too")

    ex = sub.add_parser("external", help="every arm of a finished study on BUS-BRA (its runs' external predictions): "
                                         "AUC, carried-over threshold, calibration, per scanner, beside BUSI out-of-fold")
    _profile_option(ex, "external", before="whose study: ")
    ex.add_argument("--study", default=None, help="a study folder (default: results/<profile>-cv/, the published one)")
    _record_options(ex, "external")

    sr = sub.add_parser("stress", help="acquisition-shift stress test: each arm's out-of-fold scores under graded "
                                       "gain, contrast, speckle, blur, resolution, zoom, aspect and overlay shifts")
    _profile_option(sr, "stress", before="whose runs: ")
    sr.add_argument("--arm", nargs="+", default=None, help="arms (default: every arm of the profile's study)")
    sr.add_argument("--seed", type=seed_arg, default=0, help="the runs' seed (default: %(default)s)")
    sr.add_argument("--busbra", action="store_true", help="also measure which shift BUS-BRA resembles")
    sr.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")
    _record_options(sr, "stress")

    st = sub.add_parser("study", help="the cross-validated study alone: list its runs, train some (one job of an "
                                      "array), or train what is missing and evaluate")
    _profile_option(st, "study")
    what = st.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="print the study's runs, one per line: index and name")
    what.add_argument("--run", type=int, nargs="+", metavar="K",
                      help="train only these runs of --list (e.g. $SLURM_ARRAY_TASK_ID) and write their predictions; "
                           "nothing shared is written, so many can run at once. Then `bcdet study` collects and evaluates")
    st.add_argument("--no-ladder", dest="ladder", action="store_false",
                    help="leave out the leakage ladder's extra runs (the verdict needs none of them)")
    st.add_argument("--jobs", type=int, default=None, help="runs at once on this machine (default: one per CPU core)")
    st.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")

    im = sub.add_parser("improve", help="the improvement ladder: what honestly helps, rung by rung, on the verdict's "
                                        "folds and seeds, chosen on validation only (BUSI out-of-fold and BUS-BRA)")
    _profile_option(im, "improve")
    im.add_argument("--rungs", nargs="+", default=None, metavar="RUNG",
                    help="the rungs to climb, in order (default: baseline imbalance resolution augment longer "
                         "ensemble); baseline is always the first, ensemble must be the last")
    im.add_argument("--arm", default=None,
                    help="the arm to climb with (default: the verdict's tuned arm with the best validation score)")
    im.add_argument("--list", action="store_true",
                    help="print the ladder's runs as far as finished runs decide it, one per line; train nothing")
    im.add_argument("--jobs", type=int, default=None, help="runs at once on this machine (default: one per CPU core)")
    im.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")
    _record_options(im, "improve")
    return p


def _profile_option(parser, command: str, before: str = "", after: str = "") -> None:
    """``--profile``, with its default by the one rule (:data:`DEFAULT_PROFILE_RULE`)."""
    default = "paper" if command in PAPER_COMMANDS else "laptop"
    parser.add_argument("--profile", default=default, help=before + PROFILE_HELP + after)


class _Renamed(argparse.Action):
    """An option under its name before issue #32 (users' scripts use it): it sets the new option and says
    the new name in one line. Hidden from ``--help``."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"bcdet: {option_string} is now {self.new} (the old name still works, for now)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _renamed(parser, old: str, new: str, **kwargs) -> None:
    """Accept ``old`` as a hidden, deprecated spelling of the option ``new`` (same values)."""
    parser.add_argument(old, dest=new.lstrip("-").replace("-", "_"), action=_Renamed, new=new,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def _record_options(parser, name: str) -> None:
    """``--out`` | ``--record`` and ``--force`` of a command that writes a folder of results (ladder, external)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help=f"default: runs/<profile>/{name}/")
    where.add_argument("--record", action="store_true",
                       help=f"write the committed record, results/<profile>-{name}/ (replacing it needs --force)")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder the command did not write, or over committed results")


def preflight(key: str, args) -> None:
    """Refusals a command owes the user before it does any work.

    ``bcdet train`` and ``bcdet tune`` refuse a BUSI folder that ``bcdet data check`` calls NOT USABLE here, before it
    picks a device or touches a run folder (``reproduce`` does the same itself, and the notebooks
    through :func:`~bcdet_helpers.data.index.load_index`), so all of them say the same thing.
    """
    reads_only = key == "tune" and (getattr(args, "export", None) or getattr(args, "adopt", None))
    reads_only = reads_only or (key in ("study", "improve") and getattr(args, "list", False))
    if key in ("train", "tune", "study", "stress", "improve") and not reads_only:  # --export / --adopt / --list read no images
        from ..data.check import require_usable

        require_usable()


def path_source(filename) -> str:
    """What to check about a path that could not be read or written: the environment variable whose
    folder it lies under, bcdet's default runs folder, or else the path given on the command line
    ("check the path you gave" misleads when the user never typed it)."""
    import os
    from pathlib import Path

    from ..paths import runs_dir

    if not filename:
        return "Check the path you gave."
    path = Path(os.path.abspath(os.fsdecode(filename)))
    for var in ("BCDET_RUNS", "BCDET_DATA", "BCDET_BUSBRA"):
        value = os.environ.get(var)
        if value and path.is_relative_to(os.path.abspath(Path(value).expanduser())):
            return f"It lies under {var}={value}: check that folder, or point {var} at another."
    if path.is_relative_to(os.path.abspath(runs_dir())):
        return f"It lies under bcdet's runs folder {runs_dir()}: check that folder, or point BCDET_RUNS at another."
    return "Check the path you gave."


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
    except OSError as exc:  # a path that cannot be written or read: given, or from BCDET_RUNS / BCDET_DATA
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bcdet: error: {where}{exc.strerror or exc}. {path_source(exc.filename)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bcdet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
