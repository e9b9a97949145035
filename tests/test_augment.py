"""Augmentation: shape kept, deterministic per generator, flips only left-right."""
from __future__ import annotations

import pytest
import torch

from bcdet_helpers.data.augment import AUGMENT, augment_batch, v2_transform


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, 1, 32, 32, generator=g)


def test_shape_dtype_and_determinism():
    x = _batch()
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    c = augment_batch(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_per_sample_randomness():
    x = _batch()[:1].repeat(6, 1, 1, 1)
    y = augment_batch(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(y[0], y[1])


def test_flip_only_is_an_exact_left_right_flip():
    x = _batch()
    params = dict(AUGMENT, hflip_p=1.0, degrees=0.0, translate=0.0, scale=(1.0, 1.0))
    y = augment_batch(x, torch.Generator().manual_seed(0), params)
    assert torch.allclose(y, x.flip(-1), atol=1e-5)


def test_identity_when_everything_is_off():
    x = _batch()
    params = dict(AUGMENT, hflip_p=0.0, degrees=0.0, translate=0.0, scale=(1.0, 1.0))
    assert torch.allclose(augment_batch(x, torch.Generator().manual_seed(0), params), x, atol=1e-5)


def test_no_vertical_flip_and_v2_reads_the_same_params():
    assert AUGMENT["vflip_p"] == 0.0
    t = v2_transform()
    flip, affine = t.transforms
    assert flip.p == AUGMENT["hflip_p"]
    assert affine.degrees == [-AUGMENT["degrees"], AUGMENT["degrees"]]
    assert tuple(affine.scale) == AUGMENT["scale"]
    out = t(torch.rand(1, 32, 32))
    assert out.shape == (1, 32, 32)


def test_rejects_uint8():
    with pytest.raises(TypeError):
        augment_batch(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_test_copies_join_training_and_leave_the_test_and_validation_alone():
    """SplitData.with_test_copies (the leakage ladder's augment_before_split rung): k augmented
    copies of every test image, labelled like it, in the training part; deterministic by seed."""
    import numpy as np

    from bcdet_helpers.data import SplitData

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 1, 16, 16), generator=g, dtype=torch.uint8)
    split = np.array(["train"] * 5 + ["val"] * 2 + ["test"] * 3)
    data = SplitData(images=images, labels=torch.arange(10) % 3, files=[f"f{i}" for i in range(10)], parts=split)
    leaky = data.with_test_copies(2, seed=1)
    assert len(leaky.files) == 16 and leaky.files[10:] == ["f7#copy0", "f8#copy0", "f9#copy0", "f7#copy1", "f8#copy1", "f9#copy1"]
    assert (leaky.parts == "train").sum() == 5 + 6 and leaky.files_of("test") == data.files_of("test")
    assert leaky.files_of("val") == data.files_of("val") and leaky.mean == data.mean
    assert torch.equal(leaky.labels[10:], torch.cat([data.labels[7:]] * 2)) and leaky.images.dtype == torch.uint8
    assert not torch.equal(leaky.images[10:13], images[7:])  # augmented, not plain copies
    assert torch.equal(leaky.images, data.with_test_copies(2, seed=1).images)
    with pytest.raises(ValueError, match="at least 1"):
        data.with_test_copies(0)
