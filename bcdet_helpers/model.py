"""ResNet9 and its building blocks -- taught step by step in notebook 03.

The paper (Achyuthanwesh et al.) says "ResNet9 in PyTorch" and nothing more; the ResNet9 its
family of papers uses is the one of the popular CIFAR-10 tutorial (Myrtle.ai / Jovian): four
conv blocks and two residual blocks. We keep that layout and change one thing, the head:
the tutorial ends with ``MaxPool2d(4)``, which only collapses the last feature map to 1 x 1 for
32 x 32 inputs (4 x 4 maps). At the paper's 64 x 64 the last map is 8 x 8, so the tutorial's head
would hand a 4-times-too-long vector to the linear layer and crash. ``AdaptiveMaxPool2d(1)`` takes
the same max over whatever map it is given, so one model serves 32, 64, 96 ... px inputs.

Names a student meets here:

* :class:`ConvBlock`     conv 3x3 -> BatchNorm -> ReLU (-> max-pool 2x2)
* :class:`ResidualBlock` two ConvBlocks plus the skip: ``F(x) + x``
* :class:`ResNet9`       the paper's model; ``width=64`` gives ~6.5 M parameters
* :class:`DeepNet`       a deep plain net and its residual twin (``residual=True|False``), for the
  "why skips matter" experiment
* :func:`build_model`, :func:`count_parameters`, :func:`zero_init_residuals`, :func:`zero_init_classifier`,
  :func:`architecture`, :func:`receptive_fields`, :func:`conv_gradient_norms`
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .busi import CLASSES
from .profiles import DEFAULTS

__all__ = [
    "ConvBlock",
    "ResidualBlock",
    "ResNet9",
    "DeepNet",
    "build_model",
    "count_parameters",
    "zero_init_residuals",
    "zero_init_classifier",
    "architecture",
    "receptive_fields",
    "conv_gradient_norms",
]


class ConvBlock(nn.Sequential):
    """conv 3x3 (no bias) -> BatchNorm -> ReLU, then an optional 2x2 max-pool.

    * ``padding=1`` keeps height and width, so only the pool changes the map size (it halves it).
    * No conv bias: BatchNorm subtracts the mean right after, which would cancel any bias, and
      BatchNorm's own ``bias`` (beta) plays that role.
    """

    def __init__(self, in_ch: int, out_ch: int, pool: bool = False):
        layers = [
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two ConvBlocks at constant width plus a skip connection: ``out = F(x) + x``.

    The skip means the block only has to learn a *correction* ``F`` to its input, and that the
    gradient reaches earlier layers through the ``+ x`` unchanged, however deep the stack. If the
    last BatchNorm's weight is zero, ``F(x) = ReLU(0) = 0`` and the block is exactly the identity
    (see :meth:`zero_init`).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.branch = nn.Sequential(ConvBlock(channels, channels), ConvBlock(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + x

    @torch.no_grad()
    def zero_init(self) -> "ResidualBlock":
        """Set the last BatchNorm's weight (gamma) and bias (beta) to 0: the block becomes ``x -> x``.

        A known trick (Goyal et al. 2017, "zero-gamma") to start a deep residual net as a
        shallower one; here it is mainly the cleanest way to *see* what the skip does.
        """
        last_bn = self.branch[-1][1]
        last_bn.weight.zero_()
        last_bn.bias.zero_()
        return self


def zero_init_residuals(model: nn.Module) -> nn.Module:
    """Call :meth:`ResidualBlock.zero_init` on every residual block of ``model``; returns it."""
    for module in model.modules():
        if isinstance(module, ResidualBlock):
            module.zero_init()
    return model


class ResNet9(nn.Sequential):
    """ResNet9 (the CIFAR-10 tutorial's layout) with a size-independent head.

    ``width`` (w) is the first block's channel count; the stages are ::

        conv1  ConvBlock(in, w)              64 x 64
        conv2  ConvBlock(w, 2w, pool)        32 x 32
        res1   ResidualBlock(2w)             32 x 32
        conv3  ConvBlock(2w, 4w, pool)       16 x 16
        conv4  ConvBlock(4w, 8w, pool)        8 x  8
        res2   ResidualBlock(8w)              8 x  8
        head   AdaptiveMaxPool2d(1) -> Flatten -> Dropout -> Linear(8w, classes) [-> Scale(logit_scale)]

    (sizes for a 64 x 64 input). Nine weight layers deep along the residual path (8 convs + 1
    linear), hence the name. ``width=64`` gives the paper's ~6.5 M parameters. Three 2x2 pools
    divide the size by 8, so any input of at least 16 px works (8 px would give a 1 x 1 map).

    It is an ``nn.Sequential`` with named stages, so ``model.conv2`` or ``model[2]`` work and a
    shape trace is a loop over ``model.named_children()``. Use it in ``channels_last`` memory
    format if you like (``model.to(memory_format=torch.channels_last)``); nothing depends on the
    layout.

    **The last layer starts at zero** (:func:`zero_init_classifier`; the profile table's ``zero_head``), so
    a fresh model predicts 1/3 for every class and its first training loss is ln 3 = 1.10. With
    PyTorch's default initialisation the head -- a global *max* over BatchNorm-normalised residual
    features, straight into the linear layer -- emits large logits: the first training batch scored a
    loss of 4.2 at width 64 (1.7 at width 16) instead of 1.10 (notebook 03 measures it). Those
    confident, random first predictions cost the first epochs undoing them, and their large gradients
    are what a freshly created optimizer meets at the start of training.

    **An optional logit scale** (``logit_scale``; 1, the tutorial's head, by default: no ``Scale``
    layer). An SGD step moves the last layer's logits by about ``lr`` x the squared size of its 8w
    max-pooled inputs -- hundreds of times more than an Adam step, which is normalised per weight --
    so the paper's switch from Adam to SGD blows up at SGD rates an Adam-trained ResNet9 would call
    small (laptop tuning: 4 of 4 switching trials at SGD 0.008-0.027; Adam 1e-3 then SGD 1e-2:
    training loss 0.82 -> 2.56). Myrtle.ai's ResNet9 multiplies its logits by 0.125, which kept that
    switch flat (0.83 -> 0.83) -- but with the zero head it also slowed Adam so much that the model
    had not left the majority class by then, and in the 18-epoch ``class`` profile every arm kept
    predicting the majority class (``results/tuning/laptop/head-check/``). So the default stays 1
    and the tuning searches the SGD rates that do not blow up.
    """

    def __init__(self, in_channels: int = DEFAULTS.channels, num_classes: int = len(CLASSES),
                 width: int = DEFAULTS.width, dropout: float = DEFAULTS.dropout,
                 zero_head: bool = DEFAULTS.zero_head, logit_scale: float = DEFAULTS.logit_scale):
        w = width
        super().__init__(
            OrderedDict(
                conv1=ConvBlock(in_channels, w),
                conv2=ConvBlock(w, 2 * w, pool=True),
                res1=ResidualBlock(2 * w),
                conv3=ConvBlock(2 * w, 4 * w, pool=True),
                conv4=ConvBlock(4 * w, 8 * w, pool=True),
                res2=ResidualBlock(8 * w),
                head=nn.Sequential(
                    nn.AdaptiveMaxPool2d(1),  # the tutorial's MaxPool2d(4), for any map size
                    nn.Flatten(),
                    nn.Dropout(dropout),
                    nn.Linear(8 * w, num_classes),
                    *([Scale(logit_scale)] if logit_scale != 1 else []),
                ),
            )
        )
        if zero_head:
            zero_init_classifier(self)


class Scale(nn.Module):
    """Multiplies its input by a constant (no parameters): ResNet9's logit scale."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"{self.factor:g}"


def zero_init_classifier(model: nn.Module) -> nn.Module:
    """Zero the weight and bias of ``model``'s last ``nn.Linear``: every class starts at the same
    logit, so the first loss is ln(classes) whatever the features are. Returns ``model``.

    The weights still learn at once: the gradient of the last layer is (softmax - one-hot) x
    features, which is not zero; the layers below receive gradient from the second step on.
    """
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return model


class DeepNet(nn.Sequential):
    """A deep, narrow net with or without skips -- the twin pair of the "why skips matter" lesson.

    ``depth`` counts weight layers the way the ResNet paper does (ResNet-20 = 20): one stem conv,
    ``(depth - 2) / 2`` blocks of two convs at constant ``width``, and one linear layer. With
    ``residual=True`` each block is a :class:`ResidualBlock`; with ``residual=False`` it is the same
    two :class:`ConvBlock` s without the ``+ x``. Same layers, same parameters, same initial
    weights for the same seed -- the skip is the only difference.

    The stem max-pools twice (64 -> 16 px), an our-choice to keep the lesson's few hundred
    training steps within a couple of minutes on a laptop CPU; it is the same for both twins.
    """

    def __init__(
        self,
        depth: int = 20,
        width: int = DEFAULTS.teach_width,
        residual: bool = True,
        in_channels: int = DEFAULTS.channels,
        num_classes: int = len(CLASSES),
    ):
        if depth < 4 or depth % 2:
            raise ValueError(f"DeepNet depth must be an even number >= 4 (stem + 2 per block + linear), got {depth}")
        blocks = []
        for _ in range((depth - 2) // 2):
            if residual:
                blocks.append(ResidualBlock(width))
            else:  # the same two ConvBlocks, inside the same wrapper name, minus the skip
                blocks.append(nn.Sequential(OrderedDict(branch=nn.Sequential(ConvBlock(width, width), ConvBlock(width, width)))))
        super().__init__(
            OrderedDict(
                stem=nn.Sequential(ConvBlock(in_channels, width, pool=True), nn.MaxPool2d(2)),
                blocks=nn.Sequential(*blocks),
                head=nn.Sequential(
                    nn.BatchNorm2d(width),  # rescales the residual stream, whose size grows with depth
                    nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(),
                    nn.Linear(width, num_classes),
                ),
            )
        )
        self.residual = residual


def build_model(profile) -> ResNet9:
    """The ResNet9 a profile asks for (its ``channels`` in, 3 classes out, its ``width``, ``dropout``,
    ``zero_head`` and ``logit_scale``)."""
    return ResNet9(in_channels=profile.channels, num_classes=len(CLASSES), width=profile.width,
                   dropout=profile.dropout, zero_head=profile.zero_head, logit_scale=profile.logit_scale)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def architecture(model: nn.Module) -> str:
    """One line per layer: its name, type and parameter shapes.

    Two models with the same string have the same layers in the same order with the same shapes,
    whatever their class is called or where it was defined -- how notebook 03 (and
    ``tests/test_model.py``) check that the notebook's hand-built ResNet9 is the module's.
    """
    lines = []
    for name, module in model.named_modules():
        if len(list(module.children())):
            continue  # containers only group; their leaves carry the layers
        shapes = ", ".join(f"{p}={tuple(t.shape)}" for p, t in module.named_parameters(recurse=False))
        lines.append(f"{name}: {module!r}" + (f"  [{shapes}]" if shapes else ""))
    return "\n".join(lines)


def receptive_fields(model: nn.Module, stages=None) -> list[dict]:
    """Receptive field (in input pixels) after each top-level stage of ``model``.

    The usual recurrence, walking the layers in order: a k x k layer with stride s adds
    ``(k - 1) * jump`` pixels to the field and multiplies ``jump`` (the input-pixel distance between
    neighbouring outputs) by s. A skip does not enlarge it -- ``+ x`` sees a smaller field than the
    branch -- so the branch's layers are what count. Global pooling makes the field the whole image.
    """
    rf, jump, rows = 1, 1, []
    for stage, child in model.named_children() if stages is None else stages:
        for layer in child.modules():
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
                s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
                rf += (k - 1) * jump
                jump *= s
        global_pool = any(isinstance(m, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)) for m in child.modules())
        rows.append({"stage": stage, "receptive_field": "whole image" if global_pool else rf, "jump": jump})
    return rows


def conv_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Gradient norm of every conv layer's weight (input to output) for one cross-entropy batch.

    Shows how much learning signal reaches each depth: in a deep plain net it changes by orders
    of magnitude from the last layer to the first; with skips it stays of the same order.
    """
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    norms = [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Conv2d)]
    model.zero_grad(set_to_none=True)
    return norms
