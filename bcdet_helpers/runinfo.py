"""What a recorded number needs beside it: versions, device, machine, commit, wall time.

Every ``result.json``, ``metrics.json`` and benchmark file embeds :func:`environment_info`, so a
figure in the README can always be traced to the run and the machine that produced it.
"""
from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from .paths import project_root

PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "pandas", "matplotlib", "seaborn", "papermill")


def git_commit() -> str | None:
    """The checkout's commit, with ``-dirty`` appended (git describe's word) when the code that runs
    -- ``bcdet_helpers/``, ``notebooks/``, ``pyproject.toml`` -- differs from it, so a record never
    names a commit whose code did not produce it. A copy without ``.git`` (a GPU machine the tree
    was copied to) names the commit it was copied from in ``$BCDET_GIT_COMMIT``."""
    if os.environ.get("BCDET_GIT_COMMIT"):
        return os.environ["BCDET_GIT_COMMIT"]
    try:
        git = dict(cwd=project_root(), capture_output=True, text=True, timeout=5)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **git).stdout.strip() or None
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                  "bcdet_helpers", "notebooks", "pyproject.toml"], **git).stdout.strip()
        return f"{commit}-dirty" if commit and changed else commit
    except (OSError, subprocess.SubprocessError):
        return None


def device_info(device=None) -> dict:
    """Name the device a run used: the GPU model on CUDA, the CPU and thread count otherwise."""
    import torch

    dev = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    info = {"device": dev, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if dev.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(dev))
    info["cpu"] = platform.processor() or platform.machine()
    return info


def environment_info(device=None) -> dict:
    versions = {"python": sys.version.split()[0]}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": versions,
        **device_info(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def jsonable(obj):
    """A copy of ``obj`` that strict JSON accepts: numpy scalars/arrays -> Python, NaN/inf -> None,
    tuples -> lists, Paths -> str (``metrics.json`` must load in any JSON reader, not only Python's)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_atomic(path: str | Path, write) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it to ``path`` (folder created).

    An interrupted write (Ctrl-C, a full disk) leaves neither half a file at ``path`` nor the temp file
    beside it; the temp name carries the process id, so two processes writing one file do not collide."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: dict) -> Path:
    """Write strict JSON (NaN -> null, see :func:`jsonable`) atomically (:func:`write_atomic`)."""
    text = json.dumps(jsonable(data), indent=2, default=str, allow_nan=False) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))
