"""Training: the paper's optimizer switching as data, one fast fit loop, checkpoints, run folders.

Taught in notebook 04. The paper (Achyuthanwesh et al.) trained ResNet9 with batch 128 for 50
epochs "changing the optimizers between Adam and SGD simultaneously with the change in learning
rates". We write that as a list of :class:`~bcdet_helpers.profiles.Phase` (``profiles.SCHEDULES``);
:func:`fit` walks the phases and creates a *new* optimizer at every phase boundary (Adam's moment
estimates and SGD's momentum buffer do not survive a switch -- they belong to the old optimizer).

Why the loop looks the way it does:

* **The data path is free.** All images (a few MB of uint8) are moved to the device once. Each
  epoch draws a seeded permutation, slices batches out of that tensor, and normalises and augments
  them on the device in one go (``data.augment.augment_batch``). No ``DataLoader``, no PIL, no
  per-epoch PNG decoding -- so an epoch costs what the model's forward+backward costs.
* **No host sync in the inner loop.** Loss and correct counts are summed as device tensors and
  read once per epoch. On CUDA: bfloat16 autocast (fp16 + GradScaler on older GPUs) and
  ``channels_last``.
* **One seed fixes everything**: the split (``load_split_data(seed)``), the initial weights
  (``torch.manual_seed`` before ``build_model``), dropout (the global RNG, seeded in :func:`fit`)
  and batch order + augmentation (a ``torch.Generator`` seeded from the same seed). The same seed
  twice on a CPU gives the same history, number for number.
* **Checkpoints every epoch, atomically** (temp file + ``os.replace``), holding everything the next
  epoch depends on (weights, optimizer and scheduler state, generator and RNG states, history,
  best weights), so ``fit(..., resume=True)`` ends with exactly the weights of an uninterrupted
  run. They are written by a background thread, so a 0.2-s GPU epoch does not wait for the disk.
* **Best weights by validation** (macro-F1, ties broken by lower validation loss). The test split
  is never looked at here.

The last, partial batch of an epoch is kept (``drop_last=False``): with ~550 training images and
batch 128, dropping it would throw away 6 % of the data every epoch.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from .errors import BcdetError
from .paths import runs_dir
from .profiles import RUN_FIELDS, SPLITS, Phase, Profile, get_profile
from .profiles import schedule as schedule_phases
from .runinfo import environment_info, git_commit, write_json

__all__ = [
    "FitResult",
    "choose_device",
    "fit",
    "run_dir_for",
    "train_run",
    "load_run",
    "load_checkpoint",
    "phase_table",
    "cli_train",
]

HISTORY_COLUMNS = [
    "epoch", "phase", "optimizer", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "seconds",
]
CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------------------- device
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


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} torch threads)"
    return str(device)


# --------------------------------------------------------------------------------------- result
@dataclass
class FitResult:
    """What a training run leaves: its per-epoch history and the best-by-validation weights."""

    history: pd.DataFrame
    best_state: dict | None  # state_dict (CPU tensors) of the best-by-validation epoch
    best_epoch: int | None
    device: str
    wall_time: float  # seconds of training, summed over resumed pieces
    interrupted: bool = False
    run_dir: Path | None = None
    info: dict = field(default_factory=dict)  # result.json of a finished run (train_run / load_run)

    @property
    def best(self) -> dict:
        """The history row of the best epoch (validation metrics), as a dict."""
        if self.best_epoch is None:
            return {}
        return self.history.set_index("epoch").loc[self.best_epoch].to_dict() | {"epoch": self.best_epoch}

    @property
    def seconds_per_epoch(self) -> float:
        return float(self.history["seconds"].mean()) if len(self.history) else float("nan")


# ------------------------------------------------------------------------------------- helpers
def phase_table(schedules=("constant", "switching"), epochs: int = 50) -> pd.DataFrame:
    """The phases of one or more schedules as a table (what notebook 04 shows).

    ``schedules`` is a name, a list of names, or a ``{name: [Phase, ...]}`` dict.
    """
    if isinstance(schedules, str):
        schedules = [schedules]
    if not isinstance(schedules, dict):
        schedules = {name: schedule_phases(name, epochs) for name in schedules}
    rows = []
    for name, phases in schedules.items():
        start = 1
        for i, p in enumerate(phases):
            rows.append({
                "schedule": name,
                "phase": i,
                "epochs": f"{start}-{start + p.epochs - 1}",
                "optimizer": "Adam" if p.optimizer == "adam" else "SGD + momentum",
                "lr": p.lr,
                "lr rule": "one-cycle (peak lr)" if p.scheduler == "onecycle" else "constant",
                "momentum": p.momentum if p.optimizer == "sgd" else None,
                "weight_decay": p.weight_decay,
            })
            start += p.epochs
    return pd.DataFrame(rows)


def _phase_of_epochs(phases: list[Phase]) -> list[int]:
    """Phase index of each (0-based) epoch."""
    out = []
    for i, p in enumerate(phases):
        out += [i] * p.epochs
    return out


def _make_optimizer(phase: Phase, model: torch.nn.Module) -> torch.optim.Optimizer:
    if phase.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=phase.lr, weight_decay=phase.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=phase.lr, momentum=phase.momentum, weight_decay=phase.weight_decay
    )


def _enter_phase(phase: Phase, previous: Phase | None, optimizer, model):
    """The optimizer for ``phase``: a *new* one when the optimizer changes (the paper's switch --
    Adam's moments and SGD's momentum belong to the old optimizer), otherwise the same one with the
    phase's rate and weight decay (a step of the rate, as in ``decay``)."""
    if optimizer is None or previous is None or previous.optimizer != phase.optimizer:
        return _make_optimizer(phase, model)
    for group in optimizer.param_groups:
        group["lr"], group["weight_decay"] = phase.lr, phase.weight_decay
        group.pop("initial_lr", None)  # else a new scheduler would start from the old phase's rate
    return optimizer


def _make_scheduler(phase: Phase, optimizer, steps_per_epoch: int):
    """A one-cycle rate for one-cycle phases; linear warm-up (if any) for the others."""
    total = phase.epochs * steps_per_epoch
    if phase.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=phase.lr, total_steps=total,
                                                   pct_start=phase.pct_start)
    warm = min(total, math.ceil(phase.warmup * steps_per_epoch))
    if warm <= 0:
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (warm + 1)))


def phase_stability(history: pd.DataFrame, classes: int = 3) -> list[dict]:
    """Per phase: the loss it was entered with, its peak training loss, and their ratio.

    The entry loss of the first phase is ln(classes) (what a fresh, well-conditioned model scores);
    of a later phase, the last epoch's training loss before it. A ratio well above 1 means the
    phase's start undid training (a rate too large for a fresh optimizer); issue #13 asks for
    <= 2 in every phase of a tuned arm.
    """
    rows, entry = [], math.log(classes)
    for phase, g in history.groupby("phase", sort=True):
        peak = float(g["train_loss"].max())
        rows.append({"phase": int(phase), "optimizer": str(g["optimizer"].iloc[0]),
                     "entry_loss": entry, "peak_loss": peak, "ratio": peak / entry})
        entry = float(g["train_loss"].iloc[-1])
    return rows


def _to_cpu(obj):
    """A deep copy of a (nested) state with every tensor cloned to the CPU -- safe to save while
    training goes on."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _atomic_save(obj, path: Path) -> None:
    """torch.save to a temp file, then rename: a crash mid-write never leaves half a checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


class _BackgroundSaver:
    """Writes one checkpoint at a time in a thread; :meth:`wait` re-raises a failed write."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self, obj, path):
        try:
            _atomic_save(obj, path)
        except BaseException as exc:  # noqa: BLE001 -- reported by wait()
            self._error = exc

    def save(self, obj, path: Path) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(obj, path), daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def _macro_f1(confusion: torch.Tensor) -> float:
    """Macro-F1 from a confusion matrix (rows = truth); a class never seen nor predicted scores 0,
    as scikit-learn's ``f1_score(average="macro")`` does."""
    c = confusion.double()
    tp = c.diag()
    denom = 2 * tp + (c.sum(0) - tp) + (c.sum(1) - tp)
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return float(f1.mean())


class _Progress:
    """One bar per run, one tick per epoch (a tqdm bar in Jupyter or a terminal; one printed line
    per epoch in logs -- papermill, ``> file`` -- so logs stay short)."""

    def __init__(self, total: int, done: int, desc: str, enabled: bool):
        self.enabled, self.total, self.done, self.bar = enabled, total, done, None
        self.t0, self.start_done = time.perf_counter(), done
        if not enabled:
            return
        interactive = "ipykernel" in sys.modules or sys.stderr.isatty()
        if interactive:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit="epoch", mininterval=1.0)
        else:
            print(f"{desc}: {total} epochs" + (f", resuming after epoch {done}" if done else ""), flush=True)

    def update(self, row: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        post = {"phase": row["phase"], "opt": row["optimizer"], "lr": f"{row['lr']:.2g}",
                "val_acc": f"{row['val_acc']:.3f}", "val_f1": f"{row['val_f1']:.3f}"}
        if self.bar is not None:
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
            return
        rate = (time.perf_counter() - self.t0) / max(1, self.done - self.start_done)
        eta = rate * (self.total - self.done)
        print(f"epoch {self.done}/{self.total} " + " ".join(f"{k}={v}" for k, v in post.items())
              + f" train_loss={row['train_loss']:.3f} {row['seconds']:.1f}s ETA {eta:.0f}s", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------ fit
def fit(
    model: torch.nn.Module,
    data,
    phases: list[Phase],
    *,
    batch_size: int,
    seed: int,
    device="auto",
    augment: bool = True,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    on_epoch_end=None,
) -> FitResult:
    """Train ``model`` on ``data`` (a :class:`~bcdet_helpers.data.SplitData`) through ``phases``.

    Validation runs after every epoch; the best-by-validation weights (macro-F1, then lower loss)
    are returned in ``FitResult.best_state``. With ``run_dir`` a checkpoint is written there every
    epoch and ``history.csv`` is kept up to date; ``resume=True`` continues from that checkpoint.

    ``stop_after=k`` stops after ``k`` epochs of *this call* (as if interrupted; for teaching and
    tests). ``on_epoch_end(row)`` is called after each epoch's checkpoint. Ctrl-C (a
    ``KeyboardInterrupt``) makes sure the last finished epoch is checkpointed and returns with
    ``interrupted=True``; the model then holds the interrupted epoch's weights, so use
    ``best_state`` or resume.
    """
    device = choose_device(device)
    cuda = device.type == "cuda"
    phases = list(phases)
    epoch_phase = _phase_of_epochs(phases)
    total_epochs = len(epoch_phase)
    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    if augment:
        from .data.augment import augment_batch

    # --- data on the device, once
    x_train, y_train = data.part("train")
    x_val, y_val = data.part("val")
    if len(x_train) == 0 or len(x_val) == 0:
        raise BcdetError(f"fit needs training and validation images; got {len(x_train)} train, {len(x_val)} val.")
    x_train, y_train = x_train.to(device), y_train.to(device)
    x_val, y_val = x_val.to(device), y_val.to(device)
    mean, std = float(data.mean), float(data.std)
    n_train, n_classes = len(x_train), len(data.classes)
    steps = math.ceil(n_train / batch_size)

    # channels_last on every device: on a 2-core CPU a width-16 ResNet9 step took 579 ms vs 803 ms
    # contiguous (issue #17); on CUDA it is what the tensor cores want.
    model.to(device, memory_format=torch.channels_last)
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if cuda and amp_dtype == torch.float16 else None
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    def prepare(x_uint8, gen=None):
        x = x_uint8.float().div_(255.0)
        if gen is not None:
            x = augment_batch(x, gen)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last)

    def autocast():
        return torch.autocast("cuda", dtype=amp_dtype) if cuda else torch.autocast("cpu", enabled=False)

    # --- state: fresh or from the checkpoint
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    best = {"state": None, "epoch": None, "f1": -1.0, "loss": float("inf")}
    start, wall_before, opt_state, sched_state = 0, 0.0, None, None
    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = _load_training_checkpoint(ckpt_path, phases, seed, batch_size)
        model.load_state_dict(ck["model"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["rng"])
        if cuda and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        history, best, start, wall_before = ck["history"], ck["best"], ck["epoch"], ck["wall_time"]
        opt_state, sched_state = ck["optimizer"], ck["scheduler"]
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
    else:
        torch.manual_seed(seed)  # dropout draws from the global RNG
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)

    optimizer = scheduler = None
    if start < total_epochs:
        p_now = epoch_phase[start]
        p_before = epoch_phase[start - 1] if start > 0 else None
        optimizer = _make_optimizer(phases[p_now], model)
        if opt_state is not None and p_before not in (None, p_now) \
                and phases[p_before].optimizer == phases[p_now].optimizer:  # resumed right at a rate step
            optimizer.load_state_dict(opt_state)
            optimizer = _enter_phase(phases[p_now], phases[p_before], optimizer, model)
        scheduler = _make_scheduler(phases[p_now], optimizer, steps)
        if opt_state is not None and p_before == p_now:  # mid-phase: optimizer and rate exactly as saved
            optimizer.load_state_dict(opt_state)  # after the scheduler, which resets rate and momentum
            if scheduler is not None and sched_state is not None:
                scheduler.load_state_dict(sched_state)

    if progress:
        print(f"Training on {_describe(device)}: {n_train} train / {len(x_val)} val images, "
              f"batch {batch_size}, {total_epochs} epochs in {len(phases)} phase(s)", flush=True)
    bar = _Progress(total_epochs, start, desc=run_dir.name if run_dir else "fit", enabled=progress)
    saver = _BackgroundSaver()
    saved_epoch = start  # the epoch the checkpoint on disk ends with
    t_call = time.perf_counter()
    interrupted, epoch_done_in_memory = False, True

    def checkpoint(epoch_count: int, background: bool = True) -> None:
        nonlocal saved_epoch
        if ckpt_path is None or epoch_count == saved_epoch:
            return
        state = {
            "version": CHECKPOINT_VERSION,
            "epoch": epoch_count,
            "phase": epoch_phase[epoch_count - 1],
            "phases": [asdict(p) for p in phases],
            "seed": seed,
            "batch_size": batch_size,
            "model": _to_cpu(model.state_dict()),
            "optimizer": _to_cpu(optimizer.state_dict()),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "generator": gen.get_state(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if cuda else None,
            "history": [dict(r) for r in history],
            "best": dict(best),
            "wall_time": wall_before + time.perf_counter() - t_call,
        }
        _atomic_csv(pd.DataFrame(history, columns=HISTORY_COLUMNS), run_dir / "history.csv")
        if background:
            saver.save(state, ckpt_path)
        else:
            saver.wait()
            _atomic_save(state, ckpt_path)
        saved_epoch = epoch_count

    try:
        for epoch in range(start, total_epochs):
            if stop_after is not None and epoch - start >= stop_after:
                interrupted = True
                break
            p_idx = epoch_phase[epoch]
            phase = phases[p_idx]
            if epoch > start and p_idx != epoch_phase[epoch - 1]:  # a phase boundary (maybe a switch)
                optimizer = _enter_phase(phase, phases[epoch_phase[epoch - 1]], optimizer, model)
                scheduler = _make_scheduler(phase, optimizer, steps)
            t0 = time.perf_counter()
            epoch_done_in_memory = False

            # --- train
            model.train()
            perm = torch.randperm(n_train, generator=gen).to(device, non_blocking=True)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for s in range(steps):
                idx = perm[s * batch_size:(s + 1) * batch_size]
                xb = prepare(x_train[idx], gen if augment else None)
                yb = y_train[idx]
                with autocast():
                    logits = model(xb)
                    loss = F.cross_entropy(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                lr_used = optimizer.param_groups[0]["lr"]  # the rate of this update (a Python float)
                if scheduler is not None:
                    scheduler.step()
                loss_sum += loss.detach().float() * len(idx)
                correct += (logits.detach().argmax(1) == yb).sum()

            # --- validate (one or a few big batches)
            v_loss, v_conf = _evaluate(model, x_val, y_val, prepare, autocast, n_classes)
            train_loss, train_correct = float(loss_sum), int(correct)  # the one sync of the epoch
            v_conf = v_conf.cpu()
            row = {
                "epoch": epoch + 1,
                "phase": p_idx,
                "optimizer": phase.optimizer,
                "lr": float(lr_used),  # of the epoch's last update
                "train_loss": train_loss / n_train,
                "train_acc": train_correct / n_train,
                "val_loss": float(v_loss) / len(x_val),
                "val_acc": float(v_conf.diag().sum()) / len(x_val),
                "val_f1": _macro_f1(v_conf),
                "seconds": time.perf_counter() - t0,
            }
            history.append(row)
            if row["val_f1"] > best["f1"] or (row["val_f1"] == best["f1"] and row["val_loss"] < best["loss"]):
                best = {"state": _to_cpu(model.state_dict()), "epoch": epoch + 1,
                        "f1": row["val_f1"], "loss": row["val_loss"]}
            epoch_done_in_memory = True
            checkpoint(epoch + 1)
            bar.update(row)
            if on_epoch_end is not None:
                on_epoch_end(row)
    except KeyboardInterrupt:
        interrupted = True
        if progress:
            print("\nInterrupted (Ctrl-C): saving the last finished epoch; pass resume=True to go on.", flush=True)
    finally:
        bar.close()
        if epoch_done_in_memory and history:
            checkpoint(len(history), background=False)  # no-op when already saved
        saver.wait()

    wall = wall_before + time.perf_counter() - t_call
    if interrupted and progress and ckpt_path is not None:
        print(f"Checkpoint after epoch {saved_epoch} in {ckpt_path}", flush=True)
    return FitResult(
        history=pd.DataFrame(history, columns=HISTORY_COLUMNS),
        best_state=best["state"],
        best_epoch=best["epoch"],
        device=str(device),
        wall_time=wall,
        interrupted=interrupted or len(history) < total_epochs,
        run_dir=run_dir,
    )


@torch.inference_mode()
def _evaluate(model, x, y, prepare, autocast, n_classes, chunk: int = 1024):
    """Summed cross-entropy and confusion matrix (device tensors) of ``model`` on ``(x, y)``."""
    model.eval()
    loss = torch.zeros((), device=x.device)
    conf = torch.zeros(n_classes * n_classes, device=x.device, dtype=torch.long)
    for s in range(0, len(x), chunk):
        xb, yb = prepare(x[s:s + chunk]), y[s:s + chunk]
        with autocast():
            logits = model(xb)
        loss += F.cross_entropy(logits.float(), yb, reduction="sum")
        conf += torch.bincount(yb * n_classes + logits.argmax(1), minlength=n_classes * n_classes)
    return loss, conf.view(n_classes, n_classes)


def _load_training_checkpoint(path: Path, phases, seed, batch_size) -> dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise BcdetError(f"Cannot read the checkpoint {path} ({exc}). Delete it to start the run afresh.") from exc
    want = {"phases": [asdict(p) for p in phases], "seed": seed, "batch_size": batch_size}
    have = {k: ck.get(k) for k in want}
    if have != want:
        diff = ", ".join(f"{k}: checkpoint {have[k]!r} vs now {want[k]!r}" for k in want if have[k] != want[k])
        raise BcdetError(
            f"The checkpoint {path} belongs to a different run ({diff}). Resume with the same settings, "
            "or delete the folder to start over."
        )
    return ck


# ------------------------------------------------------------------------------------ run folders
def run_dir_for(profile_name: str, schedule: str, split: str, seed: int, fold: int = 0) -> Path:
    """``runs/<profile>/<schedule>-<split>-fold<fold>-seed<seed>``: where :func:`train_run` keeps one run."""
    return runs_dir(profile_name) / f"{schedule}-{split}-fold{fold}-seed{seed}"


def _run_config(prof: Profile, schedule_name: str, phases, seed: int, split: str, fold: int) -> dict:
    return {
        "profile": prof.to_dict(),
        "schedule": schedule_name,
        "phases": [asdict(p) for p in phases],
        "seed": seed,
        "split": split,
        "fold": fold,
    }


def _same_config(a: dict, b: dict) -> list[str]:
    """What differs between two run configs: the profile fields that shape a run
    (:data:`~bcdet_helpers.profiles.RUN_FIELDS`), schedule, phases, seed, split, fold. The device
    does not count, and JSON round-trips tuples to lists."""
    norm = lambda v: json.loads(json.dumps(v, default=str))  # noqa: E731
    pa, pb = a.get("profile") or {}, b.get("profile") or {}
    differs = [f"profile.{f}" for f in RUN_FIELDS if norm(pa.get(f)) != norm(pb.get(f))]
    return differs + [k for k in ("schedule", "phases", "seed", "split", "fold") if norm(a.get(k)) != norm(b.get(k))]


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise BcdetError(f"A seed must be a whole number from 0 to {2**32 - 1} (numpy's range), got {seed!r}.")
    return seed


def train_run(
    profile: str | Profile,
    schedule: str = "switching",
    seed: int = 0,
    split: str = "grouped",
    epochs: int | None = None,
    device="auto",
    resume: bool = False,
    progress: bool = True,
    fold: int = 0,
    params: dict | None = None,
    run_dir: str | Path | None = None,
) -> FitResult:
    """One reproducible training run in its own folder (see :func:`run_dir_for`).

    Fold ``fold`` of the split kind ``split`` is the test part (never looked at here); ``params``
    overrides the arm's numbers (:func:`~bcdet_helpers.profiles.arm_params`; ``bcdet tune`` uses
    it, with its own ``run_dir``).

    Writes ``config.json``, ``history.csv``, ``checkpoint.pt`` (every epoch), ``best.pt`` (the
    best-by-validation weights + what :func:`load_checkpoint` needs), ``last.pt`` (the final
    weights, same format) and ``result.json``. A folder
    that already holds the finished run is loaded, not retrained -- notebook 05 reuses notebook
    04's runs that way. A folder with an unfinished run needs ``resume=True`` (or deleting).
    """
    schedule_name = schedule
    if split not in SPLITS:
        raise BcdetError(f"Unknown split {split!r}. Choose 'grouped' (leak-free) or 'random' (paper-like).")
    if epochs is not None and epochs < 1:
        raise BcdetError(f"--epochs must be at least 1, got {epochs}.")
    _check_seed(seed)
    try:
        prof = get_profile(profile, epochs=epochs)
        phases = schedule_phases(schedule_name, prof.epochs, prof, params)
    except ValueError as exc:  # unknown profile / schedule: the message lists the valid names
        raise BcdetError(str(exc)) from None
    if not isinstance(fold, int) or not 0 <= fold < prof.folds:
        raise BcdetError(f"--fold must be 0..{prof.folds - 1} (profile {prof.name!r} has {prof.folds} folds), got {fold!r}.")
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(prof.name, schedule_name, split, seed, fold)
    config = _run_config(prof, schedule_name, phases, seed, split, fold)

    recorded = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    if recorded:
        differs = _same_config(recorded, config)
        if differs:
            raise BcdetError(
                f"{run_dir} holds a run with different settings ({', '.join(differs)} differ, e.g. another "
                f"--epochs). Delete that folder to train with the new settings, or set BCDET_RUNS to another folder."
            )
        if (run_dir / "result.json").exists():
            if progress:
                print(f"Loaded the finished run {run_dir} (delete the folder to train it again).")
            return load_run(run_dir)
        if not resume:
            raise BcdetError(
                f"{run_dir} holds an unfinished run. Pass resume=True (bcdet train ... --resume) to continue "
                "it, or delete the folder to start over."
            )

    from .data import load_split_data
    from .model import build_model

    dev = choose_device(device)
    data = load_split_data(prof, split=split, seed=seed, fold=fold)
    torch.manual_seed(seed)
    model = build_model(prof)
    run_dir.mkdir(parents=True, exist_ok=True)
    # the commit the run *started* from (result.json records the one at its end; a resumed run keeps
    # its first start), so a code change during a long run shows up as two different commits
    started = recorded.get("started") or {"git_commit": git_commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(run_dir / "config.json", {**config, "device": str(dev), "started": started})

    res = fit(model, data, phases, batch_size=prof.batch_size, seed=seed, device=dev, augment=prof.augment,
              run_dir=run_dir, resume=resume, progress=progress)
    if res.interrupted:
        return res

    meta = {
        "image_size": data.image_size, "channels": data.channels, "width": prof.width,
        "mean": float(data.mean), "std": float(data.std), "classes": tuple(data.classes),
        "profile": prof.name, "schedule": schedule_name, "split": split, "fold": fold, "seed": seed,
        "best_epoch": res.best_epoch,
    }
    _atomic_save({"model": res.best_state, "meta": meta}, run_dir / "best.pt")
    # the weights at the end of training: the study's weights rule (no selection on a noisy curve)
    _atomic_save({"model": _to_cpu(model.state_dict()), "meta": {**meta, "epoch": len(res.history)}},
                 run_dir / "last.pt")
    _atomic_csv(res.history, run_dir / "history.csv")
    best_row = res.history.set_index("epoch").loc[res.best_epoch]
    info = {
        "profile": prof.name, "schedule": schedule_name, "split": split, "fold": fold, "seed": seed,
        "epochs": len(res.history),
        "best_epoch": res.best_epoch,
        "best_val": {k: float(best_row[k]) for k in ("val_loss", "val_acc", "val_f1")},
        "final_val": {k: float(res.history[k].iloc[-1]) for k in ("val_loss", "val_acc", "val_f1")},
        "phase_stability": phase_stability(res.history, len(data.classes)),
        "wall_time_s": res.wall_time,
        "seconds_per_epoch": res.seconds_per_epoch,
        "n_train": int((data.split == "train").sum()), "n_val": int((data.split == "val").sum()),
        "environment": environment_info(dev),
    }
    write_json(run_dir / "result.json", info)
    res.info = info
    return res


def load_run(run_dir: str | Path) -> FitResult:
    """A finished run's history, best weights and result.json, from its folder."""
    run_dir = Path(run_dir)
    result = run_dir / "result.json"
    if not result.exists():
        raise BcdetError(
            f"{run_dir} holds no finished run (no result.json). Train it with train_run(...) or "
            "`bcdet train` (add --resume to continue an interrupted one)."
        )
    info = json.loads(result.read_text())
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    history = pd.read_csv(run_dir / "history.csv")
    return FitResult(
        history=history,
        best_state=best["model"],
        best_epoch=info["best_epoch"],
        device=info["environment"].get("device", "?"),
        wall_time=info["wall_time_s"],
        interrupted=False,
        run_dir=run_dir,
        info=info,
    )


def load_checkpoint(path: str | Path, device="cpu"):
    """``(model, meta)`` from a run's ``best.pt`` (or its folder); the model is in eval mode.

    ``meta`` holds what prediction needs: image_size, channels, width, mean, std, classes, and where
    the weights came from (profile, schedule, split, seed, best_epoch).
    """
    from .model import build_model

    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.exists():
        raise BcdetError(f"No checkpoint at {path}. Train one with `bcdet train` (it writes runs/<profile>/.../best.pt).")
    what_to_pass = "Pass the best.pt of a finished run, e.g. runs/laptop/switching-grouped-seed0/best.pt."
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise BcdetError(f"{path} is not a PyTorch checkpoint (empty, damaged or another kind of file: "
                         f"{reason}). {what_to_pass}") from None
    if not isinstance(ck, dict) or "meta" not in ck or "model" not in ck:
        raise BcdetError(f"{path} is not a bcdet best.pt (no 'meta'). {what_to_pass}")
    meta = ck["meta"]
    try:
        prof = Profile(name=meta["profile"], image_size=meta["image_size"], channels=meta["channels"],
                       width=meta["width"])
        model = build_model(prof)
        model.load_state_dict(ck["model"])
    except (KeyError, RuntimeError) as exc:
        raise BcdetError(f"{path} was written by another version of bcdet or for another model ({exc!s:.120}). "
                         f"Retrain it with this version (bcdet train ...). {what_to_pass}") from None
    dev = choose_device(device)
    return model.to(dev).eval(), meta


# ------------------------------------------------------------------------------------------- CLI
def cli_train(args) -> int:
    """``bcdet train``: one headless run; prints where the results went and the best val metrics."""
    res = train_run(args.profile, args.schedule, seed=args.seed, split=args.split, epochs=args.epochs,
                    device=args.device, resume=args.resume, fold=args.fold)
    if res.interrupted:
        print(f"Interrupted after epoch {len(res.history)}. Continue with the same command plus --resume.")
        return 130
    b = res.best
    print(f"Run folder: {res.run_dir}")
    print("  config.json, history.csv, checkpoint.pt, best.pt (best-by-validation weights), result.json")
    print(f"Best epoch {res.best_epoch}/{len(res.history)}: val accuracy {b['val_acc']:.3f}, "
          f"val macro-F1 {b['val_f1']:.3f}, val loss {b['val_loss']:.3f}")
    print(f"Wall time {res.wall_time:.1f} s, {res.seconds_per_epoch:.2f} s/epoch on {res.device}")
    return 0
