"""How fast this machine trains a profile: seconds per epoch for :func:`bcdet_helpers.research.plan.estimate`.

From finished runs of the profile on this machine, else from the committed reference runs under
``results/`` recorded on the same kind of machine (the same number of CPU cores, or the same GPU), else
timed now on warmed-up training steps -- :func:`_pace` says which.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time

from ..busi import CLASSES
from ..paths import project_root, runs_dir
from ..runkey import AUGMENTED, RunKey


def _machine(device) -> dict:
    """What a recorded run must share with this machine for its pace to count here: the device type;
    on a CPU the number of cores, on a CUDA GPU its name."""
    dev = str(device)
    kind = dev.split(":")[0]
    if kind == "cuda":
        try:
            import torch

            return {"device": kind, "gpu": torch.cuda.get_device_name(torch.device(dev))}
        except Exception:  # no CUDA here (a test asking about "cuda"): the device type alone
            return {"device": kind}
    return {"device": kind, "cpu_count": os.cpu_count()} if kind == "cpu" else {"device": kind}


def _describe_machine(machine: dict) -> str:
    if machine.get("gpu"):
        return f"the GPU {machine['gpu']}"
    if machine.get("cpu_count"):
        return f"a {machine['cpu_count']}-core CPU"
    return machine["device"]


def _recorded_values(folders, profile: str, machine: dict, threads: int | None = None) -> dict:
    """Seconds per epoch of the finished runs of ``profile`` in ``folders`` (``<folder>/*/result.json``)
    recorded on ``machine`` (:func:`_machine`; only the keys it has are compared) and, given ``threads``,
    trained with that many torch threads: folder -> values. The leakage ladder's runs that also train on
    copies of their test images are left out: an epoch of theirs is longer, and
    :func:`~bcdet_helpers.research.plan.estimate` counts that separately."""
    out = {}
    for folder in folders:
        for result in sorted(folder.glob("*/result.json")):
            key = RunKey.find(result.parent.name)
            if key is None or key.kind == AUGMENTED:  # not a run of the table (a tuning trial), or a ladder one
                continue
            try:
                info = json.loads(result.read_text())
            except (OSError, ValueError):
                continue
            env = info.get("environment", {})
            if info.get("profile", profile) != profile or str(env.get("device", "")).split(":")[0] != machine["device"]:
                continue
            if (any(env.get(k) != v for k, v in machine.items() if k != "device")
                    or threads not in (None, env.get("torch_threads"))):
                continue
            spe = info.get("seconds_per_epoch")
            if spe and math.isfinite(spe):
                out.setdefault(folder, []).append(float(spe))
    return out


def reference_run_folders(profile: str) -> list:
    """Where the committed reference runs live: ``results/<x>/runs/`` and ``results/history/<x>/runs/``
    (which of their runs are ``profile``'s, their records say)."""
    results = project_root() / "results"
    return sorted(p for p in [*results.glob("*/runs"), *results.glob("history/*/runs")] if p.is_dir())


def _recorded_seconds_per_epoch(profile: str, device, threads: int | None = None) -> tuple[float, str] | None:
    """Median seconds/epoch of finished runs of ``profile`` on this kind of machine and where it comes
    from, or None: this machine's own runs (``runs/<profile>/``, the same device type) first, else the
    committed reference runs (:func:`reference_run_folders`) recorded on the same kind of machine (the
    same number of CPU cores, or the same GPU). ``threads``: only runs trained with that many torch
    threads (the study's workers)."""
    here = _machine(device)
    own = _recorded_values([runs_dir(profile)], profile, {"device": here["device"]}, threads)
    if own:
        values = [v for vs in own.values() for v in vs]
        return statistics.median(values), f"{_n_runs(len(values))} of this profile finished in {runs_dir(profile)}"
    refs = _recorded_values(reference_run_folders(profile), profile, here, threads)
    if not refs:
        return None
    values = [v for vs in refs.values() for v in vs]
    root = project_root()
    where = ", ".join(f"{p.parent.relative_to(root)}/" for p in refs)
    return statistics.median(values), f"{_n_runs(len(values))} on {_describe_machine(here)} in {where}"


def _n_runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _steady_seconds(step, warmup: int = 2, repeats: int = 5, budget_s: float = 8.0, clock=time.perf_counter) -> float:
    """Median seconds of one call of ``step`` once it is warm: ``warmup`` untimed calls first (the first
    steps allocate memory and pick kernels, and take several times longer), then up to ``repeats`` timed
    one by one -- at least three, fewer than ``repeats`` once ``budget_s`` has passed. The median, so that
    one step slowed by something else on the machine does not move the estimate."""
    for _ in range(warmup):
        step()
    times, start = [], clock()
    while len(times) < repeats and (len(times) < 3 or clock() - start < budget_s):
        t0 = clock()
        step()
        times.append(clock() - t0)
    return statistics.median(times)


_PER_IMAGE: dict = {}  # measured seconds per training image, per model shape and device (one process)


def _cpu_load() -> tuple[float, int] | None:
    """``(1-minute load average, cores)`` when other work keeps at least 3/4 of this machine's cores
    busy, else None. Timing on such a CPU is what made the ``class`` estimate say ~31 min once and 83 s
    on a retry (issue #27): PyTorch's threads wait on each other while other processes hold the cores,
    and small steps (``class``'s) slow down ten-fold and more, unevenly."""
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None
    return (load, cores) if load >= 0.75 * cores else None


def _measure_seconds_per_epoch(prof, device, n_train: int) -> float:
    """Time real training steps (forward + backward + Adam) of this profile's ResNet9, as ``fit`` runs
    them (``channels_last``; on a CPU with freed memory kept, :func:`device.keep_freed_memory`), on warmed
    steps (:func:`_steady_seconds`), and scale to an epoch's images plus its validation pass.

    On the CPU the cost grows linearly with the number of images, so we time batches of 32 and scale; on
    a GPU full batches (small ones would overestimate). On a busy CPU (:func:`_cpu_load`) the steps are
    timed with one torch thread too and the faster pace is kept: one thread is hardly slowed by other
    processes, several are, unevenly. Measured once per model shape and device in a process.
    """
    import torch
    import torch.nn.functional as F

    from ..batches import MEMORY_FORMAT
    from ..device import keep_freed_memory
    from ..model import build_model

    batch = prof.batch_size if device.type != "cpu" else min(prof.batch_size, 32)
    key = (prof.image_size, prof.channels, prof.width, batch, str(device))
    if key not in _PER_IMAGE:
        if device.type == "cpu":
            keep_freed_memory()
        torch.manual_seed(0)
        model = build_model(prof).to(device, memory_format=MEMORY_FORMAT).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(batch, prof.channels, prof.image_size, prof.image_size, device=device)
        x = x.contiguous(memory_format=MEMORY_FORMAT)
        y = torch.randint(0, len(CLASSES), (batch,), device=device)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        seconds = _steady_seconds(step)
        threads = torch.get_num_threads()
        if device.type == "cpu" and threads > 1 and _cpu_load() is not None:
            torch.set_num_threads(1)
            try:
                seconds = min(seconds, _steady_seconds(step, warmup=1, budget_s=4.0))  # the model is warm
            finally:
                torch.set_num_threads(threads)
        _PER_IMAGE[key] = seconds / batch
    # + validation (a forward pass over ~val/train as many images, ~1/3 of a training step each)
    val_share = prof.val_fraction / (1 - prof.val_fraction)
    return _PER_IMAGE[key] * n_train * (1 + val_share / 3)


def _busy_cpu() -> str:
    """A note for the estimate when the CPU is busy (:func:`_cpu_load`)."""
    busy = _cpu_load()
    return (f"; the CPU was busy (load average {busy[0]:.1f} on {busy[1]} cores): timed with one thread too, the "
            "faster kept, but a busy CPU slows the training itself" if busy else "")


def _pace(prof, dev, n_train: int, jobs: int) -> tuple[float, int, str]:
    """``(seconds per epoch, runs at once, where the number comes from)`` for :func:`~bcdet_helpers.research.plan.estimate`.

    The study trains ``jobs`` runs at once (``run_study``'s workers): with seconds/epoch recorded by such
    workers (``worker_threads(jobs)`` torch threads each) its runs take 1/jobs of the wall time; otherwise
    one run's pace counts and no credit is taken. Recorded runs first (:func:`_recorded_seconds_per_epoch`:
    this machine's, else the committed ones of the same kind of machine): a whole run's pace, the same on
    every call. Else warmed steps timed now (:func:`_measure_seconds_per_epoch`).
    """
    from ..device import worker_threads

    if jobs > 1:
        found = _recorded_seconds_per_epoch(prof.name, dev, worker_threads(jobs))
        if found is not None:
            return found[0], jobs, f"recorded: median of {found[1]}, trained {jobs} at a time (1/{jobs} of it each)"
    found = _recorded_seconds_per_epoch(prof.name, dev)
    if found is not None:
        return found[0], 1, f"recorded: median of {found[1]}"
    note = _busy_cpu() if dev.type == "cpu" else ""
    return (_measure_seconds_per_epoch(prof, dev, n_train), 1,
            f"measured now: median of warmed training steps of this profile's ResNet9{note}")
