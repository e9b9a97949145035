"""The tensor cache: round trip, reuse, and rebuild when the data or the size changes."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from bcdet_helpers.data.cache import cache_path, load_cache, resize_image
from bcdet_helpers.data.index import build_index


def test_round_trip(mini_busi):
    built = load_cache(mini_busi, image_size=24, channels=1)
    assert not built["meta"]["loaded_from_cache"]
    assert cache_path(24, 1).exists()
    again = load_cache(mini_busi, image_size=24, channels=1)
    assert again["meta"]["loaded_from_cache"]
    assert torch.equal(built["images"], again["images"]) and torch.equal(built["labels"], again["labels"])
    assert again["images"].dtype == torch.uint8 and again["images"].shape == (18, 1, 24, 24)
    index = build_index(mini_busi)
    assert again["files"] == list(index["file"])
    assert again["labels"].tolist() == index["y"].tolist()
    first = index["path"][0]
    assert np.array_equal(again["images"][0].numpy(), resize_image(first, 24, 1))


def test_rebuilds_when_an_image_changes(mini_busi):
    old = load_cache(mini_busi, image_size=16, channels=1)
    p = mini_busi / "normal" / "normal (3).png"
    arr = np.asarray(Image.open(p))
    Image.fromarray(255 - arr).save(p)  # new content, new size/mtime
    new = load_cache(mini_busi, image_size=16, channels=1)
    assert not new["meta"]["loaded_from_cache"]
    i = new["files"].index("normal/normal (3).png")
    assert not torch.equal(old["images"][i], new["images"][i])


def test_size_and_channels_get_their_own_file(mini_busi):
    a = load_cache(mini_busi, image_size=16, channels=1)
    b = load_cache(mini_busi, image_size=20, channels=3)
    assert a["images"].shape[1:] == (1, 16, 16) and b["images"].shape[1:] == (3, 20, 20)
    assert cache_path(16, 1) != cache_path(20, 3)
    assert load_cache(mini_busi, image_size=16, channels=1)["meta"]["loaded_from_cache"]


def test_another_resize_method_gets_its_own_cache_and_is_never_reused(mini_busi):
    """The resize filter is a profile field (issue #32): a cache squashed with another filter is not
    the one asked for, even under the asked-for file name."""
    import shutil

    import pytest

    from bcdet_helpers.data import load_split_data
    from bcdet_helpers.data.cache import RESIZE, resize_method
    from bcdet_helpers.profiles import get_profile

    bicubic = load_cache(mini_busi, image_size=24, channels=1)
    assert bicubic["meta"]["resize"] == RESIZE == "squash, PIL bicubic (antialiased)"  # what earlier caches hold
    assert cache_path(24, 1) == cache_path(24, 1, "bicubic") != cache_path(24, 1, "nearest")
    nearest = load_cache(mini_busi, image_size=24, channels=1, resize="nearest")
    assert not nearest["meta"]["loaded_from_cache"] and nearest["meta"]["resize"] == resize_method("nearest")
    assert not torch.equal(bicubic["images"], nearest["images"])
    assert load_cache(mini_busi, image_size=24, channels=1, resize="nearest")["meta"]["loaded_from_cache"]
    shutil.copy(cache_path(24, 1, "nearest"), cache_path(24, 1))  # the wrong filter under the default's name
    again = load_cache(mini_busi, image_size=24, channels=1)
    assert not again["meta"]["loaded_from_cache"] and torch.equal(again["images"], bicubic["images"])
    with pytest.raises(ValueError, match="resize"):
        load_cache(mini_busi, image_size=24, channels=1, resize="sideways")
    data = load_split_data(get_profile("smoke", image_size=24, resize="nearest"), root=mini_busi)
    assert data.meta["resize"] == resize_method("nearest")
    assert data.meta["cache_file"] == str(cache_path(24, 1, "nearest"))
