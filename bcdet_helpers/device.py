"""Which device to train on, and how to name it in logs."""
from __future__ import annotations

import ctypes
import os
import platform

import torch

from .errors import BcdetError

__all__ = ["choose_device", "describe_device", "auto_jobs", "worker_threads", "keep_freed_memory"]

# On a CPU, fit calls keep_freed_memory() (issue #17); benchmarks/throughput.py turns it off to measure
# the difference.
KEEP_FREED_MEMORY = True
_kept = False


def choose_device(request: str | torch.device = "auto") -> torch.device:
    """The device to train on: ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Asking for a device that is not there is a user error (BcdetError), not a silent fallback:
    a run the user believes is on the GPU must not quietly take an hour on the CPU.
    """
    req = str(request).lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if req == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if req.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BcdetError(
                f"Device {req!r} was asked for, but no CUDA GPU is available to PyTorch "
                f"(torch {torch.__version__}). Use --device cpu (or device='cpu'), or --device auto "
                "to take the best device there is."
            )
        return torch.device(req)
    if req == "mps":
        if not has_mps:
            raise BcdetError(
                "Device 'mps' was asked for, but Apple MPS is not available. Use --device cpu or auto."
            )
        return torch.device("mps")
    if req == "cpu":
        return torch.device("cpu")
    raise BcdetError(f"Unknown device {request!r}. Choose one of: auto, cpu, cuda, mps.")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} torch threads)"
    return str(device)


# On a CUDA GPU: workers at most, and GiB of GPU memory asked per worker (a margin, not a measurement)
GPU_JOBS = 4
GIB_PER_GPU_JOB = 4


def auto_jobs(device) -> int:
    """Runs at once on this machine by default: one single-thread worker per core on a CPU (on a
    2-core VM two 1-thread workers trained 1.10x the runs per hour of one 2-thread run, both with
    channels_last and freed memory kept: ``benchmarks/results/vm-throughput-laptop.md``, issue #17);
    on a CUDA GPU :data:`GPU_JOBS` workers where the cores and the GPU's memory allow (one a
    :data:`GIB_PER_GPU_JOB`): one process leaves an H100 idle between its small batches, and 4
    workers trained 2.13x its runs per hour (``paper`` profile,
    ``benchmarks/results/h100-throughput-paper.md``); one elsewhere (Apple MPS). ``bcdet tune`` and
    the study (:func:`~bcdet_helpers.research.study.run_study`) both use it; ``--jobs`` overrides it."""
    cores = max(1, os.cpu_count() or 1)
    if str(device) == "cpu":
        return cores
    if str(device).startswith("cuda"):
        return max(1, min(GPU_JOBS, cores, gpu_memory_gib(device) // GIB_PER_GPU_JOB))
    return 1


def gpu_memory_gib(device) -> int:
    """Whole GiB of memory on a CUDA ``device``; 0 when there is none."""
    try:
        return torch.cuda.get_device_properties(torch.device(device)).total_memory // 2**30
    except (RuntimeError, AssertionError, ValueError):
        return 0


def worker_threads(jobs: int) -> int:
    """Torch threads for each of ``jobs`` workers: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def keep_freed_memory() -> bool:
    """Ask glibc to keep the memory PyTorch frees for the next allocation instead of handing it
    back to the operating system; True when this process now does (Linux with glibc only).

    Why: glibc serves every block over 32 MB -- a width-16 ResNet9's activations for a batch of 128
    are 32-64 MB each -- with a fresh ``mmap`` and returns it on ``free``, so every training step
    re-faults and zeroes the same memory: about 90 000 page faults and a quarter of a second of
    kernel time per step on a 2-core CPU, 20-25 % of the step (issue #17,
    ``benchmarks/throughput.py``). With ``mmap`` off and no trimming, the heap grows once to
    the run's peak and is reused. Results are bit for bit the same (only where the bytes live
    changes); the price is that the process keeps its peak memory until it ends. Called by
    :func:`~bcdet_helpers.train.fit` on a CPU. (In the environment, ``MALLOC_MMAP_MAX_=0`` with a
    large ``MALLOC_TRIM_THRESHOLD_`` does the same for a whole process.)
    """
    global _kept
    if _kept or not KEEP_FREED_MEMORY or platform.libc_ver()[0] != "glibc":
        return _kept
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # <malloc.h>
    libc = ctypes.CDLL(None)
    _kept = bool(libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, -1))  # -1: never trim
    return _kept
