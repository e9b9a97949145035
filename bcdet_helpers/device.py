"""Which device to train on, and how to name it in logs."""
from __future__ import annotations

import torch

from .errors import BcdetError

__all__ = ["choose_device", "describe_device"]


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
