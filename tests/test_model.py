"""bcdet_helpers.model: shapes, parameter counts, the identity trick, the twins, and notebook 03's copy."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from bcdet_helpers import model as bm
from bcdet_helpers.profiles import get_profile

NOTEBOOK_03 = Path(__file__).resolve().parents[1] / "notebooks" / "03_resnet9_residual_blocks.ipynb"


def conv_block_params(cin: int, cout: int) -> int:
    """3x3 conv without bias + BatchNorm (weight and bias per channel)."""
    return cin * cout * 3 * 3 + 2 * cout


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models: one thread is faster here and kinder to a shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("size", [16, 32, 64, 96])
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet9_forward_any_size(size, channels):
    torch.manual_seed(0)
    model = bm.ResNet9(in_channels=channels, width=8).eval()
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


def test_resnet9_paper_width_64x64():
    model = bm.ResNet9(in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 3)


def test_resnet9_parameter_count_by_hand():
    w, cin, classes = 64, 3, 3
    expected = (
        conv_block_params(cin, w)  # conv1
        + conv_block_params(w, 2 * w)  # conv2
        + 2 * conv_block_params(2 * w, 2 * w)  # res1
        + conv_block_params(2 * w, 4 * w)  # conv3
        + conv_block_params(4 * w, 8 * w)  # conv4
        + 2 * conv_block_params(8 * w, 8 * w)  # res2
        + 8 * w * classes + classes  # linear
    )
    model = bm.ResNet9(in_channels=cin, num_classes=classes, width=w)
    assert bm.count_parameters(model) == expected
    assert 6.4e6 < expected < 6.7e6  # "~6.5 M" as the paper's family reports


def test_count_parameters_skips_frozen_and_buffers():
    model = bm.ConvBlock(2, 4)
    assert bm.count_parameters(model) == conv_block_params(2, 4)  # running stats are not parameters
    model[0].weight.requires_grad_(False)
    assert bm.count_parameters(model) == 2 * 4


def test_convblock_pool_halves_size():
    x = torch.randn(2, 3, 10, 10)
    assert bm.ConvBlock(3, 5)(x).shape == (2, 5, 10, 10)
    assert bm.ConvBlock(3, 5, pool=True)(x).shape == (2, 5, 5, 5)
    assert bm.ConvBlock(3, 5)[0].bias is None


def _randomise_batchnorm(model: nn.Module):
    """Non-trivial BN statistics and affine parameters, so the identity test is not vacuous."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_zero_init_residual_block_is_identity(mode):
    torch.manual_seed(0)
    block = bm.ResidualBlock(8)
    _randomise_batchnorm(block)
    x = torch.randn(4, 8, 6, 6)
    getattr(block, mode)()
    with torch.no_grad():
        assert not torch.allclose(block(x), x)  # a normal block changes its input...
        block.zero_init()
        assert torch.equal(block(x), x)  # ...a zero-initialised one is exactly the identity


def test_zero_init_residuals_reaches_every_block():
    model = bm.zero_init_residuals(bm.ResNet9(width=4))
    last_bns = [model.res1.branch[-1][1], model.res2.branch[-1][1]]
    assert all(bool((bn.weight == 0).all()) for bn in last_bns)
    assert bool((model.conv1[1].weight != 0).all())  # only residual branches are touched


def test_channels_last_gives_same_output():
    torch.manual_seed(0)
    model = bm.ResNet9(width=8).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_plain_and_residual_twins_differ_only_in_skips():
    torch.manual_seed(0)
    plain = bm.DeepNet(depth=20, width=8, residual=False)
    torch.manual_seed(0)
    resid = bm.DeepNet(depth=20, width=8, residual=True)
    convs = [sum(isinstance(m, nn.Conv2d) for m in net.modules()) for net in (plain, resid)]
    linears = [sum(isinstance(m, nn.Linear) for m in net.modules()) for net in (plain, resid)]
    assert convs == [19, 19] and linears == [1, 1]  # 19 convs + 1 linear = 20 weight layers
    assert bm.count_parameters(plain) == bm.count_parameters(resid)
    # same names and shapes, and the same seed gives the same initial weights
    for (n1, t1), (n2, t2) in zip(plain.state_dict().items(), resid.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2)
    x = torch.randn(2, 1, 64, 64)
    plain.eval(), resid.eval()
    with torch.no_grad():
        assert not torch.allclose(plain(x), resid(x))  # yet the skips change what they compute


def test_deepnet_rejects_odd_depth():
    with pytest.raises(ValueError, match="even"):
        bm.DeepNet(depth=7)


def test_gradient_reaches_first_layer():
    """With the zero-initialised classifier the body gets no gradient on the very first step (the
    head's weights are 0) but does from the second step on."""
    torch.manual_seed(0)
    model = bm.ResNet9(width=8)
    x, y = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 0])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.cross_entropy(model(x), y).backward()
    assert model.conv1[0].weight.grad.abs().sum() == 0 and model.head[3].weight.grad.abs().sum() > 0
    opt.step()
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    grad = model.conv1[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_fresh_model_starts_at_ln3_in_train_mode():
    """The conditioning fix: a fresh ResNet9 at the paper's width, in train mode (BatchNorm on batch
    statistics, as fit sees it), scores ln 3 on its first batch; PyTorch's default head does not."""
    import math

    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 64, 64) * 2, torch.randint(0, 3, (32,))
    fresh = bm.ResNet9(width=64).train()
    assert abs(nn.functional.cross_entropy(fresh(x), y).item() - math.log(3)) < 0.15
    torch.manual_seed(0)
    default = bm.ResNet9(width=64, zero_head=False, logit_scale=1.0).train()  # the tutorial's head
    assert nn.functional.cross_entropy(default(x), y).item() > math.log(3) + 0.15  # the test can fail


@pytest.mark.realdata
def test_first_training_step_loss_is_ln3_on_busi(real_busi):
    """Issue #13's acceptance test: the paper profile's first training batch on BUSI."""
    import math

    from bcdet_helpers.data import load_split_data
    from bcdet_helpers.profiles import get_profile

    prof = get_profile("paper")
    data = load_split_data(prof, "grouped", fold=0, seed=0)
    x, y = data.part("train")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[: prof.batch_size]
    torch.manual_seed(0)
    model = bm.build_model(prof).train()
    loss = nn.functional.cross_entropy(model(data.normalize(x[idx])), y[idx]).item()
    assert abs(loss - math.log(3)) < 0.15, loss


def test_conv_gradient_norms_one_per_conv_layer():
    torch.manual_seed(0)
    net = bm.DeepNet(depth=8, width=4)
    norms = bm.conv_gradient_norms(net, torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 0]))
    assert len(norms) == 7 and all(n > 0 for n in norms)
    assert all(p.grad is None for p in net.parameters())  # leaves no gradients behind


def test_build_model_follows_profile():
    prof = get_profile("smoke")
    model = bm.build_model(prof)
    assert isinstance(model, bm.ResNet9)
    assert bm.count_parameters(model) == bm.count_parameters(bm.ResNet9(prof.channels, 3, prof.width))
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, prof.channels, prof.image_size, prof.image_size)).shape == (2, 3)
    wider = bm.build_model(get_profile("smoke", channels=3, width=16))
    assert wider.conv1[0].weight.shape == (16, 3, 3, 3)


def test_receptive_fields_by_hand():
    rows = {r["stage"]: r["receptive_field"] for r in bm.receptive_fields(bm.ResNet9(width=4))}
    # conv3x3 adds 2*jump, maxpool2 adds 1*jump and doubles jump
    assert rows == {
        "conv1": 3,  # one 3x3 conv
        "conv2": 3 + 2 + 1,  # conv, pool -> jump 2
        "res1": 6 + 2 * 2 * 2,  # two convs at jump 2
        "conv3": 14 + 2 * 2 + 2,  # conv at jump 2, pool -> jump 4
        "conv4": 20 + 2 * 4 + 4,  # conv at jump 4, pool -> jump 8
        "res2": 32 + 2 * 2 * 8,  # two convs at jump 8
        "head": "whole image",
    }


def test_architecture_string_sees_shapes():
    a, b = bm.architecture(bm.ResNet9(width=4)), bm.architecture(bm.ResNet9(width=4))
    assert a == b
    assert a != bm.architecture(bm.ResNet9(width=8))
    assert a != bm.architecture(bm.ResNet9(width=4, in_channels=3))
    assert "res2.branch.1.0" in a


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from bcdet_helpers import plots

    norms = {"plain": [10.0, 1.0, 0.1], "residual": [1.0, 1.0, 1.0]}
    losses = {"plain": [1.1, 1.0, 1.0, 1.0], "residual": [1.1, 0.9, 0.7, 0.5]}
    rows = [{"stage": "conv1", "size": 64, "channels": 64, "receptive_field": 3},
            {"stage": "head", "size": 1, "channels": 3, "receptive_field": "whole image"}]
    for fig in (plots.plain_vs_residual_gradients(norms), plots.plain_vs_residual_loss(losses, baseline=1.0),
                plots.stage_shapes(rows),
                plots.loss_bands({"plain 20": [[1.1, 1.0, 0.9], [1.2, 1.0, 0.8]], "residual 56": [[1.1, 0.7, 0.5]]},
                                 smooth=2, baseline=1.0)):
        assert isinstance(fig, Figure)
        matplotlib.pyplot.close(fig)


def _notebook_definitions() -> dict:
    """Execute the notebook's cells tagged ``model-definition`` and return their namespace."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK_03, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "model-definition" in c.metadata.get("tags", [])]
    assert len(cells) >= 3, "notebook 03 should tag its ConvBlock, ResidualBlock and ResNet9 cells"
    namespace: dict = {}
    for cell in cells:
        exec(compile(cell.source, f"{NOTEBOOK_03.name}:model-definition", "exec"), namespace)
    return namespace


@pytest.mark.skipif(not NOTEBOOK_03.exists(), reason="notebook 03 not written yet")
@pytest.mark.parametrize("kwargs", [{}, {"in_channels": 3, "width": 16}])
def test_notebook_resnet9_is_the_module_resnet9(kwargs):
    ns = _notebook_definitions()
    torch.manual_seed(0)
    mine = ns["ResNet9"](**kwargs)
    ref = bm.ResNet9(**kwargs)
    assert bm.architecture(mine) == bm.architecture(ref)
    assert bm.count_parameters(mine) == bm.count_parameters(ref)
    mine.load_state_dict(ref.state_dict())
    mine.eval(), ref.eval()
    x = torch.randn(2, kwargs.get("in_channels", 1), 64, 64)
    with torch.no_grad():
        assert torch.equal(mine(x), ref(x))


def test_logits_are_the_last_layer_times_the_logit_scale():
    """Issue #13: ``logit_scale`` multiplies the last layer's output, a constant without parameters;
    the default (1, the tutorial's head) adds no layer at all."""
    from bcdet_helpers.profiles import DEFAULTS

    torch.manual_seed(0)
    model = bm.ResNet9(width=4, zero_head=False, logit_scale=0.125).eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        features = x
        for name, stage in model.named_children():
            features = features if name == "head" else stage(features)
        linear = model.head[:-1](features)
        assert torch.allclose(model(x), 0.125 * linear)
    assert isinstance(model.head[-1], bm.Scale) and "Scale(0.125)" in bm.architecture(model)
    assert bm.count_parameters(model) == bm.count_parameters(bm.ResNet9(width=4))
    assert DEFAULTS.logit_scale == 1 and isinstance(bm.ResNet9(width=4).head[-1], nn.Linear)


def test_a_checkpoint_records_its_logit_scale_and_older_ones_load_unscaled(tmp_path):
    from bcdet_helpers.checkpoints import load_checkpoint

    model = bm.ResNet9(width=4, zero_head=False)
    meta = {"profile": "smoke", "image_size": 32, "channels": 1, "width": 4, "mean": 0.3, "std": 0.2}
    torch.save({"model": model.state_dict(), "meta": meta}, tmp_path / "best.pt")  # no "logit_scale": older
    assert isinstance(load_checkpoint(tmp_path / "best.pt")[0].head[-1], nn.Linear)
    torch.save({"model": model.state_dict(), "meta": {**meta, "logit_scale": 0.125}}, tmp_path / "new.pt")
    assert load_checkpoint(tmp_path / "new.pt")[0].head[-1].factor == 0.125


def test_the_zero_head_is_a_profile_field():
    """``zero_head`` (issue #32): the profile's value reaches build_model; off, the last layer keeps
    PyTorch's random initialisation."""
    from bcdet_helpers.profiles import DEFAULTS

    def last(m):
        return [x for x in m.modules() if isinstance(x, nn.Linear)][-1]

    torch.manual_seed(0)
    zero = last(bm.build_model(get_profile("smoke")))
    assert DEFAULTS.zero_head and not zero.weight.any() and not zero.bias.any()
    random = last(bm.build_model(get_profile("smoke", zero_head=False)))
    assert random.weight.abs().sum() > 0 and random.bias.abs().sum() > 0
    assert not last(bm.ResNet9(width=4)).weight.any()  # the class's default is the table's
