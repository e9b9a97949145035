"""Option values checked where they enter -- argparse and :func:`reproduce.reproduce` -- before
any work.

A seed of -1 or 2**66 used to get through the CLI and fail deep inside numpy (a 38-line
traceback), or, for ``bcdet reproduce --seeds``, in notebook 05 after notebook 04 had trained.
Each check here raises :class:`BcdetError` naming the option and a valid value; the ``*_arg``
variants are argparse ``type=`` functions, so the CLI refuses the value while parsing.
"""
from __future__ import annotations

import argparse

from .errors import BcdetError

MAX_SEED = 2**32 - 1  # numpy's limit (np.random.seed, RandomState); torch and random accept it too


def check_seed(value, option: str = "--seed") -> int:
    """``value`` as an int seed in ``0..MAX_SEED``, else :class:`BcdetError`."""
    try:
        seed = int(value)
        whole = not isinstance(value, bool) and float(value) == seed
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or not 0 <= seed <= MAX_SEED:
        raise BcdetError(f"{option} {value!r}: a seed is a whole number from 0 to {MAX_SEED} "
                         f"(numpy's limit), e.g. {option} 0.")
    return seed


def check_positive(value, option: str) -> int:
    """``value`` as an int of at least 1 (epochs), else :class:`BcdetError`."""
    try:
        n = int(value)
        ok = not isinstance(value, bool) and float(value) == n and n >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise BcdetError(f"{option} {value!r}: must be a whole number of at least 1.")
    return n


def _as_arg(check, option):
    def parse(text: str) -> int:
        try:
            return check(text, option)
        except BcdetError as exc:  # argparse prints it as "bcdet CMD: error: argument OPT: ..."
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.lstrip("-")  # argparse names the type in some messages
    return parse


seed_arg = _as_arg(check_seed, "--seed")
seeds_arg = _as_arg(check_seed, "--seeds")
random_seeds_arg = _as_arg(check_seed, "--random-seeds")  # its own name in its messages
epochs_arg = _as_arg(check_positive, "--epochs")
