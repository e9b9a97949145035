"""The one hyperparameter table.

Every number that shapes a run lives here and nowhere else: notebooks, the CLI, the tests and the
benchmarks all read a :class:`Profile` by name. Where the paper (Achyuthanwesh et al.) is silent we
had to choose; those choices are marked ``# ours`` so the notebooks can say so.

Profiles
--------
``paper``   the paper's setting: 64 x 64 inputs, batch 128, 50 epochs, full-width ResNet9 (~6.5 M
            parameters). About 6 s per run on an H100, 30-37 min on a 2-core CPU (results/).
``laptop``  the CPU-friendly profile for students, teachers and multi-seed studies on a CPU: same
            data, same schedules and epochs, a narrower ResNet9.                   # ours
``smoke``   a tiny run that exercises every code path in seconds; what ``make test`` executes.

Schedules
---------
A schedule is a list of :class:`Phase` -- the paper's "changing the optimizers between Adam and
SGD simultaneously with the change in learning rates" written down as data. The paper gives no
rates and no switch points, so every number in ``SCHEDULES`` is ours. Phases are written for
50 epochs and scaled to a profile's epoch count by :func:`schedule`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

CLASSES = ("benign", "malignant", "normal")
SPLITS = ("grouped", "random")  # grouped = near-duplicates kept together (leak-free, ours); random = paper-like


@dataclass(frozen=True)
class Phase:
    """One stretch of training with one optimizer and one learning-rate rule."""

    optimizer: str  # "adam" | "sgd"
    lr: float  # the rate (the peak rate for one-cycle)
    epochs: int
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4  # ours
    scheduler: str = "constant"  # "constant" | "onecycle" (within this phase)

    def __post_init__(self):
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"Phase optimizer must be 'adam' or 'sgd', not {self.optimizer!r}")
        if self.scheduler not in ("constant", "onecycle"):
            raise ValueError(f"Phase scheduler must be 'constant' or 'onecycle', not {self.scheduler!r}")
        if self.epochs < 1 or self.lr <= 0:
            raise ValueError(f"Phase needs epochs >= 1 and lr > 0, got {self}")


# Written for the paper's 50 epochs. All rates and switch points are ours (the paper gives none).
SCHEDULES: dict[str, tuple[Phase, ...]] = {
    # (i) the paper's baseline: one optimizer, one fixed rate (~81% claimed).
    "constant": (Phase("adam", 1e-3, 50),),
    # (ii) the paper's method: Adam and SGD alternate while the rate steps down (~90% claimed).
    "switching": (
        Phase("adam", 1e-3, 15),
        Phase("sgd", 1e-2, 15),
        Phase("adam", 1e-4, 10),
        Phase("sgd", 1e-3, 10),
    ),
    # (iii) a modern reference: one optimizer, one-cycle rate (warm-up then anneal).
    "onecycle": (Phase("adam", 3e-3, 50, scheduler="onecycle"),),
}


@dataclass(frozen=True)
class Profile:
    name: str
    image_size: int = 64  # paper
    channels: int = 1  # ours: BUSI is grayscale (764 of 780 images); see notebook 02
    width: int = 64  # channels of ResNet9's first block; 64 gives the ~6.5 M-parameter model
    batch_size: int = 128  # paper
    epochs: int = 50  # paper
    augment: bool = True  # ours: flips + small affine; the paper does not say
    val_fraction: float = 0.15  # ours: the paper gives no split
    test_fraction: float = 0.15  # ours
    seeds: tuple[int, ...] = (0, 1, 2)  # ours: seeds of the switching-vs-constant study (nb 05)
    splits: tuple[str, ...] = SPLITS  # the splits of the study (nb 05)
    schedules: tuple[str, ...] = ("constant", "switching")  # what notebooks 04/05 compare
    max_per_class: int | None = None  # a subset, for smoke runs only
    teach_depth: int = 56  # weight layers of nb 03's plain-vs-residual twins (ResNet paper's 56)  # ours
    teach_width: int = 16  # channels of the twins  # ours
    teach_steps: int = 150  # SGD steps the twins train for in nb 03 (~1 min on a laptop CPU)  # ours
    teach_batch: int = 32  # ours
    teach_lr: float = 0.05  # SGD, momentum 0.9  # ours
    bootstrap: int = 2000  # bootstrap resamples for confidence intervals
    extra: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return asdict(self)


# The fields that change what one training run computes. A finished run is reused as long as these
# match; the others (seeds, splits, bootstrap, teach_*) belong to the study or to other chapters.
RUN_FIELDS = ("image_size", "channels", "width", "batch_size", "epochs", "augment",
              "val_fraction", "test_fraction", "max_per_class")


PROFILES: dict[str, Profile] = {
    "paper": Profile("paper"),
    "laptop": Profile("laptop", width=16),  # ours: 1/16 of the paper's compute per epoch
    "smoke": Profile(
        "smoke",
        image_size=32,
        width=8,
        batch_size=32,
        epochs=4,  # enough for every phase of `switching` to run once
        seeds=(0,),
        max_per_class=24,
        teach_depth=8,
        teach_width=8,
        teach_steps=10,
        bootstrap=100,
    ),
}


def get_profile(name: str | Profile, **overrides) -> Profile:
    """The profile called ``name``, with optional field overrides (``epochs=2``, ``seeds=[0]``...).

    An override of ``None`` keeps the profile's own value, so a notebook parameter such as
    ``seeds = None`` can be handed straight through; lists become tuples.
    """
    if isinstance(name, Profile):
        prof = name
    else:
        try:
            prof = PROFILES[name]
        except KeyError:
            raise ValueError(
                f"Unknown profile {name!r}. Choose one of: {', '.join(PROFILES)}."
            ) from None
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    if not overrides:
        return prof
    prof = replace(prof, **overrides)
    if not prof.seeds or not all(isinstance(s, int) for s in prof.seeds):
        raise ValueError(f"seeds must be one or more integers, got {prof.seeds!r}")
    if not prof.splits or not set(prof.splits) <= set(SPLITS):
        raise ValueError(f"splits must be one or more of {', '.join(SPLITS)}, got {prof.splits!r}")
    return prof


def schedule(name: str, epochs: int = 50) -> list[Phase]:
    """The phases of schedule ``name`` scaled from 50 epochs to ``epochs``.

    Each phase keeps its share of the run (rounded, at least one epoch); phases that no longer fit
    are dropped from the end, so ``sum(p.epochs) == epochs`` always holds.
    """
    try:
        phases = SCHEDULES[name]
    except KeyError:
        raise ValueError(f"Unknown schedule {name!r}. Choose one of: {', '.join(SCHEDULES)}.") from None
    total = sum(p.epochs for p in phases)
    if epochs == total:
        return list(phases)
    out, used = [], 0
    for i, p in enumerate(phases):
        left = epochs - used
        if left <= 0:
            break
        n = left if i == len(phases) - 1 else max(1, min(left, round(p.epochs * epochs / total)))
        out.append(replace(p, epochs=n))
        used += n
    return out
