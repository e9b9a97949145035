"""Which device to train on, and how to name it in logs."""
from __future__ import annotations

import os

import torch

from .errors import BcdetError

__all__ = ["choose_device", "describe_device", "auto_jobs", "worker_threads"]


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


def auto_jobs(device) -> int:
    """Runs at once on this machine by default: one single-thread worker per core on a CPU (two
    1-thread workers trained 1.13x the runs of one 2-thread run on a 2-core VM, 1.36x with
    channels_last; issue #17), one on a GPU (it keeps the CUDA start-up and cuDNN autotuning to one
    process). ``bcdet tune`` and the study (:func:`~bcdet_helpers.study.run_study`) both use it."""
    return max(1, os.cpu_count() or 1) if str(device) == "cpu" else 1


def worker_threads(jobs: int) -> int:
    """Torch threads for each of ``jobs`` workers: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))
