"""Study throughput, side by side in one run: training runs per hour, and the GFLOP/s they reach.

    make bench                                            # runs this after bench.py
    .venv/bin/python benchmarks/throughput.py --profile laptop --runs 4 --epochs 3

A study is many short, independent runs (arms x folds x seeds, tuning trials), so what counts is
runs per hour, not the speed of one epoch. The ways compared, every run a real ``fit`` of the
``switching`` arm (its own seed: own initialisation, data order, augmentation, history):

* ``one at a time, contiguous``  -- how runs went before issue #17: one after another, every core
  for one run, PyTorch's default (contiguous) memory layout, glibc's default allocator settings.
* ``one at a time, channels_last`` -- the same with ``channels_last``.
* ``N workers x 1 thread, channels_last`` -- N processes at once, one thread each.
* ``..., freed memory kept``     -- and glibc keeps freed memory for reuse instead of returning it
  (``device.keep_freed_memory``: no page faults for the big activations every step). The last
  way is what ``fit``, ``bcdet tune`` and the study do now on a CPU.

Every way runs in fresh processes (the allocator setting cannot be undone in a process).
Runs are shortened to ``--epochs`` epochs; runs per hour are projected to the profile's full epoch
count (an epoch costs the same throughout a run). GFLOP/s count the training steps' forward and
backward FLOPs (``torch.utils.flop_counter``; validation and the optimizer step not counted).
Results go to ``benchmarks/results/<host>-throughput-<profile>.{json,md}``.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bcdet_helpers import batches
from bcdet_helpers import device as bdevice
from bcdet_helpers.data import load_split_data
from bcdet_helpers.device import choose_device
from bcdet_helpers.model import build_model
from bcdet_helpers.profiles import get_profile, schedule
from bcdet_helpers.runinfo import environment_info, write_json
from bcdet_helpers.train import fit

RESULTS = Path(__file__).resolve().parent / "results"


def train_flops_per_image(prof) -> float:
    """Forward + backward FLOPs of one training image (counted on a batch of 8)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(prof).train()
    x = torch.randn(8, prof.channels, prof.image_size, prof.image_size)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), torch.zeros(8, dtype=torch.long)).backward()
    return counter.get_total_flops() / 8


def some_runs(prof, seeds, epochs: int, device: str, threads: int, layout: str, keep: bool, barrier=None) -> float:
    """Train one short run per seed, one after another; returns the wall time of the runs alone
    (data loading and a one-epoch warm-up come first, and with ``barrier`` every worker starts the
    clock together)."""
    torch.set_num_threads(threads)
    batches.MEMORY_FORMAT = torch.contiguous_format if layout == "contiguous" else torch.channels_last
    bdevice.KEEP_FREED_MEMORY = keep
    data = load_split_data(prof, "grouped", 0)
    fit(build_model(prof), data, schedule("constant", 1, prof), batch_size=prof.batch_size, seed=99,
        device=device, augment=prof.augmentation, progress=False)  # warm-up: allocator, kernels
    phases = schedule("switching", epochs, prof)
    if barrier is not None:
        barrier.wait()
    t0 = time.perf_counter()
    for seed in seeds:
        torch.manual_seed(seed)
        fit(build_model(prof), data, phases, batch_size=prof.batch_size, seed=seed, device=device,
            augment=prof.augmentation, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _worker(args, barrier, out):
    out.put(some_runs(*args, barrier=barrier))


def in_processes(prof, seeds, epochs, device, jobs: int, layout: str, keep: bool) -> float:
    """``jobs`` fresh processes share ``seeds`` (``jobs`` = 1: one process with every core; more:
    one thread each, as the study's and ``bcdet tune``'s workers); the wall time from their common
    start until the last one finishes."""
    ctx = mp.get_context("spawn")
    threads = (os.cpu_count() or 1) if jobs == 1 else 1
    shares = [s for s in (seeds[w::jobs] for w in range(jobs)) if s]
    q, barrier = ctx.Queue(), ctx.Barrier(len(shares))
    procs = [ctx.Process(target=_worker, args=((prof, share, epochs, device, threads, layout, keep), barrier, q))
             for share in shares]
    for p in procs:
        p.start()
    walls = [q.get() for _ in procs]
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise RuntimeError("a benchmark worker failed")
    return max(walls)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="laptop")
    ap.add_argument("--runs", type=int, default=4, help="runs per way (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="workers of the concurrent way")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    prof = get_profile(args.profile)
    device = str(choose_device(args.device))
    cores = os.cpu_count() or 1
    data = load_split_data(prof, "grouped", 0)  # builds the caches before anything is timed
    n_train = int((data.parts == "train").sum())
    flops = train_flops_per_image(prof) * n_train * args.epochs
    seeds = list(range(args.runs))
    j = args.jobs
    ways = {  # name: (processes, layout, keep freed memory)
        "one at a time, contiguous (before)": (1, "contiguous", False),
        "one at a time, channels_last": (1, "channels_last", False),
        f"{j} workers x 1 thread, channels_last": (j, "channels_last", False),
        "one at a time, channels_last, freed memory kept": (1, "channels_last", True),
        f"{j} workers x 1 thread, channels_last, freed memory kept (now)": (j, "channels_last", True),
    }
    if device.startswith("cuda"):  # fit keeps freed memory on a CPU only; contiguous is no way on a GPU
        ways = {n: w for n, w in ways.items() if w[1] == "channels_last" and not w[2]}
    rows = {}
    for name, way in ways.items():
        wall = in_processes(prof, seeds, args.epochs, device, *way)
        rows[name] = {"wall_s": wall, "runs_per_hour": 3600 * args.runs * args.epochs / prof.epochs / wall,
                      "gflops": flops * args.runs / wall / 1e9}
        print(f"  {name}: {wall:.1f} s for {args.runs} x {args.epochs} epochs -> "
              f"{rows[name]['runs_per_hour']:.1f} full runs/hour, {rows[name]['gflops']:.0f} GFLOP/s", flush=True)
    base = next(iter(rows.values()))["runs_per_hour"]
    rec = {"profile": prof.name, "runs": args.runs, "epochs_per_run": args.epochs, "full_run_epochs": prof.epochs,
           "n_train": n_train, "train_gflop_per_run_epoch": flops / args.epochs / 1e9, "results": rows,
           "environment": environment_info(device), "command": " ".join([Path(sys.executable).name, *sys.argv])}
    lines = [f"Runs per hour, profile `{prof.name}` ({prof.image_size} px, width {prof.width}, {n_train} training "
             f"images), device {device} ({cores} cores), {args.runs} runs x {args.epochs} epochs per way, projected "
             f"to {prof.epochs}-epoch runs; host `{socket.gethostname()}`.", "",
             "| way | wall (s) | full runs / hour | vs first | GFLOP/s |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {r['wall_s']:.1f} | {r['runs_per_hour']:.1f} | {r['runs_per_hour'] / base:.2f}x | "
              f"{r['gflops']:.0f} |" for n, r in rows.items()]
    stem = Path(args.out) if args.out else RESULTS / f"{socket.gethostname()}-throughput-{prof.name}"
    write_json(stem.with_suffix(".json"), rec)
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
