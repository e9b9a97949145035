"""BUSI on disk -> tensors: locate, check, index, near-duplicates, split, cache, augment.

The entry point for training and the notebooks is :func:`load_split_data`.
"""
from .locate import find_busi, locate_busi  # noqa: F401
from .splitdata import SplitData  # noqa: F401
