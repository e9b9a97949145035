"""One way to spread work over worker processes, shared by the study and the tuner.

The study hands its workers runs to train (:func:`~bcdet_helpers.research.study.run_study`); the tuner
hands each worker its number and lets it pull trials from the shared Optuna storage until the study is
full (:func:`~bcdet_helpers.research.tune.tune`). Both go through :func:`in_workers`, so both start
their workers the same way: spawned processes (CUDA cannot be forked), the cores shared out as torch
threads (:func:`~bcdet_helpers.device.worker_threads`), and each worker ending with its parent
(:func:`die_with_parent`). A study that outgrows one machine does not use this at all: it lists its
runs and lets a scheduler run them by index (``bcdet study --list`` / ``--run K``, README).
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator

from ..device import worker_threads


def in_workers(fn: Callable, tasks: Iterable, jobs: int) -> Iterator:
    """``fn(task)`` for every task, yielded as each finishes (not in order), ``jobs`` at a time.

    ``jobs == 1`` runs them here, one after another, with this process's threads. Otherwise ``jobs``
    spawned workers of :func:`worker_threads` threads each take tasks as they free up; ``fn`` must
    be importable (a module-level function, or a :func:`functools.partial` of one), and a script that
    calls this needs Python's ``if __name__ == "__main__":`` guard. An exception in a task is raised
    here; leaving the loop early (or Ctrl-C) terminates the workers."""
    if jobs == 1:
        yield from map(fn, tasks)
        return
    with mp.get_context("spawn").Pool(jobs, initializer=start_worker, initargs=(worker_threads(jobs),)) as pool:
        yield from pool.imap_unordered(fn, tasks)


def start_worker(threads: int) -> None:
    """What every worker does first: end with its parent, and use ``threads`` torch threads."""
    import torch

    die_with_parent()
    torch.set_num_threads(threads)


def die_with_parent() -> bool:
    """In a worker process started by :mod:`multiprocessing`: ask Linux to end this process when its
    parent ends; True when it will (Linux only, a no-op elsewhere and in a main process).

    Why: the study's and the tuner's workers train runs in folders their parent chose. If the parent
    is killed (``kill PID``, a lost SSH session) they would train on, orphaned, and the study started
    again would train the same run in the same folder twice at once, each process overwriting the
    other's checkpoint -- it happened while the laptop study ran. (Ctrl-C reaches the whole process
    group and stops the workers anyway.)
    """
    parent = mp.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return False
    PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent.pid:  # the parent ended before we asked
        os.kill(os.getpid(), signal.SIGTERM)
    return True
