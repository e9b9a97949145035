"""BUSI on disk -> tensors: locate, check, index, near-duplicates, split, cache, augment.

The entry point for training and the notebooks is :func:`load_split_data`. The tensor-side names
load lazily, so ``bcdet data check`` never pays for ``import torch``.
"""
from .busbra import find_busbra, locate_busbra, read_busbra  # noqa: F401  (the external test set, issue #30)
from .locate import find_busi, locate_busi  # noqa: F401

_LAZY = {"SplitData": ".splitdata", "load_split_data": ".dataset"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
