"""Chapter 03 (ResNet9 and residual blocks): predict, build a block (the chapter's real coding task),
count, predict before measuring, and an open question."""
from __future__ import annotations

import math

from .core import NotAnswered, call, choice, exercise, hint, number, open_exercise


@exercise("03.1", answer="predicted_negative", title="Predict: which block can output a negative number?")
def which_block_goes_negative(answer, *, minimum):
    """``minimum``: the smallest output each block gave in the notebook, ``{"ours": ..., "he": ...}``."""
    guess = choice(answer, ("ours", "he", "both", "neither"))
    negative = [name for name in ("ours", "he") if minimum[name] < 0]
    truth = "both" if len(negative) == 2 else negative[0] if negative else "neither"
    if guess != truth:
        hint("follow the last operation of each block: He et al. apply ReLU *after* the addition, ours adds x "
             "*after* the branch's ReLU. Which one can x, which may be negative, pass through untouched?")
    return (f"measured minimum: ours {minimum['ours']:.2f}, He et al. {minimum['he']:.2f}. Nothing follows our "
            "addition, so x passes through; but our branch ends in a ReLU, F(x) >= 0, so a block can only push "
            "features up")


@exercise("03.2", answer="ProjectionBlock", title="Write a residual block that changes the number of channels",
          kind="code")
def projection_block(cls):
    import torch

    from ..model import count_parameters

    if not isinstance(cls, type):
        hint("define a class: class ProjectionBlock(nn.Module): ...")
    torch.manual_seed(0)
    block = cls(16, 32).eval()
    if getattr(block, "branch", None) is None or getattr(block, "skip", None) is None:
        raise NotAnswered
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        out = call(block, x)
        if tuple(out.shape) != (2, 32, 8, 8):
            hint(f"output shape {tuple(out.shape)}, expected (2, 32, 8, 8): how many channels does each of the "
                 "two paths end with, and does either change height or width?")
        expected = (3 * 3 * 16 * 32 + 2 * 32) + (3 * 3 * 32 * 32 + 2 * 32) + 16 * 32  # branch + 1x1 skip
        if count_parameters(block) != expected:
            hint(f"{count_parameters(block)} parameters, expected {expected}: count each path's weights. Does "
                 "your skip have a bias, or a kernel larger than it needs to be?")
        block.branch[-1][1].weight.zero_()  # a zero branch: the output must be the skip alone
        if not torch.allclose(block(x), block.skip(x), atol=1e-6):
            hint("with a zero branch the output should be what the skip path alone gives: what does your "
                 "forward return?")
    return "a 1x1 convolution is the cheapest way to make x addable; ResNet9 avoids it by widening in plain ConvBlocks"


@exercise("03.3", answer="conv3_shape", title="Compute conv3's output shape for 96 x 96 inputs", kind="read")
def conv3_shape(answer):
    import torch
    from torch import nn

    from ..model import ResNet9

    net = ResNet9(in_channels=1, width=64).eval()
    with torch.no_grad():
        truth = tuple(nn.Sequential(net.conv1, net.conv2, net.res1, net.conv3)(torch.zeros(8, 1, 96, 96)).shape)
    try:
        given = tuple(int(n) for n in answer)
    except (TypeError, ValueError):
        hint("give a tuple of four numbers, (N, C, H, W)")
    if len(given) != 4:
        hint("four numbers: (batch, channels, height, width)")
    if given[0] != truth[0]:
        hint("the batch size never changes")
    if given[1] != truth[1]:
        hint("count the channels: conv1 outputs w, and each later ConvBlock doubles them")
    if given[2:] != truth[2:]:
        hint("count the 2x2 pools up to and including conv3 (the residual block keeps the size)")
    return f"{truth}: two pools (96 -> 48 -> 24), 4 x 64 channels"


@exercise("03.4", answer="residual_params", title="Count the parameters of ResidualBlock(256)", kind="read")
def residual_params(answer):
    from ..model import ResidualBlock, count_parameters

    truth = count_parameters(ResidualBlock(256))
    value = number(answer)
    if value == truth:
        return f"{truth:,}: two 3x3 convs of 256 x 256 weights plus BatchNorm's gamma and beta; the skip is free"
    if value == 2 * 3 * 3 * 256 * 256:
        hint("the convolutions are right; BatchNorm adds two learnt numbers per channel")
    if value == 2 * (3 * 3 * 256 * 256 + 256):
        hint("the convs have no bias (BatchNorm follows), but BatchNorm has two parameters per channel")
    side = "larger" if value < truth else "smaller"
    hint(f"the real count is {side}. List the layers with weights in the block (section 1 counted one "
         "ConvBlock's), and ask which of them has a bias")


@exercise("03.7", answer="predicted_lower_loss", title="Predict: does the 20- or the 56-layer plain net train better?")
def degradation(answer, *, final_loss):
    """``final_loss``: ``{depth: training loss at the end}`` of the plain nets (mean over seeds)."""
    depths = sorted(int(d) for d in final_loss)
    value = int(number(answer))
    if value not in depths:
        hint(f"answer with one of the depths: {', '.join(map(str, depths))}")
    best = min(final_loss, key=final_loss.get)
    if value != int(best):
        hint("this run measured " + ", ".join(f"{d} layers: {final_loss[d]:.3f}" for d in final_loss)
             + ". The deeper net could copy the shallower one and make its extra layers the identity: does the "
               "optimiser find that solution?")
    return ("measured end-of-training loss: " + ", ".join(f"{d} layers {final_loss[d]:.3f}" for d in final_loss)
            + " -- on the *training* images, so it is not overfitting")


@exercise("03.6", answer="predicted_gradient", title="Predict: the plain net's gradient, first layer vs last")
def gradient_ratio(answer, *, ratio):
    """``ratio``: measured gradient norm of the plain twin's first conv layer over its last."""
    measured = "b" if ratio > 10 else "c" if ratio < 0.1 else "a"
    guess = choice(answer, ("a", "b", "c"))
    if guess != measured:
        hint(f"this run measured first/last = {ratio:.3g}. With BatchNorm after every convolution a deep plain "
             "stack does not necessarily make the gradient vanish (Yang et al., 2019)")
    return f"measured first/last = {ratio:.3g}"


@exercise("03.5", answer="predicted_first_loss", title="Predict the first training loss of a fresh ResNet9")
def first_loss(answer, *, measured):
    """``measured``: the first-batch loss of a fresh, default (zero-head) ResNet9 in this run."""
    value = number(answer)
    if abs(value - 1 / 3) < 0.02:
        hint("1/3 is the probability the model gives each class; the loss is minus the log of the "
             "probability of the right class")
    if value < 0.2:
        hint("a loss near 0 means a confident, right prediction; what does a model whose logits are all "
             "zero predict?")
    if abs(value - measured) > 0.05:
        hint(f"this run measured {measured:.3f}. What probability does softmax give each class when all "
             "logits are equal, and what does cross-entropy make of that probability?")
    return f"ln 3 = {math.log(3):.4f}; measured {measured:.4f}"


open_exercise("03.8", "why_not_overfitting", "Open question: why is degradation not overfitting?")
