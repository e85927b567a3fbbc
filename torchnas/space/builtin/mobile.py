"""``mobile``: MobileNetV2-style stages of inverted residual blocks, for 1-D signals and images.

A stem convolution, then stages; each stage picks its width (output channels), depth (blocks),
expansion ratio and depthwise kernel size, the labels ``stage{i}/width``, ``stage{i}/depth``,
``stage{i}/expand`` and ``stage{i}/kernel``. A block is a pointwise expansion (absent at ratio
1), a depthwise convolution (stride on the stage's first block), then a linear pointwise
projection, each with batch norm; ReLU6 after the first two, as in MobileNetV2 (Sandler et
al. 2018). A block whose input and output shapes match adds its input (the residual). The head is
a pointwise convolution, global average pooling, optional dropout and the classifier; plus a
log-uniform learning rate like the other spaces. The default is small enough to train on
MNIST-1D in seconds per epoch on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from torchnas._util.errors import SpaceError
from torchnas.space._hp import HP
from torchnas.space.builtin._common import conv_kinds, head_size, signal_shape
from torchnas.space.builtin._registry import register

__all__ = ["InvertedResidual", "MobileSpace"]


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand (1x1), depthwise (k x k), project (1x1, linear).

    Args:
        dims: 1 (Conv1d) or 2 (Conv2d).
        c_in, c_out: channels in and out.
        expand: expansion ratio of the hidden channels.
        kernel: depthwise kernel size (odd; padded to keep the size at stride 1).
        stride: depthwise stride.
    """

    def __init__(self, dims: int, c_in: int, c_out: int, expand: int, kernel: int,
                 stride: int) -> None:
        super().__init__()
        conv, norm = conv_kinds(dims)
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [conv(c_in, hidden, 1, bias=False), norm(hidden), nn.ReLU6()]
        layers += [
            conv(hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden,
                 bias=False),
            norm(hidden), nn.ReLU6(),
            conv(hidden, c_out, 1, bias=False), norm(c_out),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return x + out if self.residual else out


@register("mobile")
class MobileSpace:
    """Inverted residual stages with searchable width, depth, expansion and kernel.

    Args:
        input_shape: ``(C, L)`` or ``(C, H, W)``; a flat ``(L,)`` is read as one channel.
        num_classes: classifier outputs.
        widths: per stage, the channel counts to choose from (its length is the number of
            stages).
        strides: per stage, the stride of its first block (then 1).
        depth: ``(low, high)`` blocks per stage.
        expansions: expansion ratios to choose from.
        kernels: depthwise kernel sizes to choose from (odd).
        stem: channels of the stem convolution (kernel 3).
        stem_stride: stride of the stem convolution.
        head: channels of the pointwise convolution before pooling.
        dropout_rate: dropout before the classifier when the ``dropout`` decision is true.
        lr: ``(low, high)`` of the log-uniform learning rate (``None``: no ``lr`` decision).
        num_outputs: outputs of the last layer instead of ``num_classes`` (a regression
            of ``num_outputs`` targets; ``None``: ``num_classes``).
    """

    name: ClassVar[str]  # set by @register above

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 40),
        num_classes: int = 10,
        widths: Sequence[Sequence[int]] = ((16, 24), (24, 32, 48), (32, 48, 64)),
        strides: Sequence[int] = (1, 2, 2),
        depth: tuple[int, int] = (1, 3),
        expansions: Sequence[int] = (1, 3, 6),
        kernels: Sequence[int] = (3, 5, 7),
        stem: int = 16,
        stem_stride: int = 2,
        head: int = 96,
        dropout_rate: float = 0.2,
        lr: tuple[float, float] | None = (5e-4, 1e-2),
        num_outputs: int | None = None,
    ) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.widths = widths
        self.strides = strides
        self.depth = depth
        self.expansions = expansions
        self.kernels = kernels
        self.stem = stem
        self.stem_stride = stem_stride
        self.head = head
        self.dropout_rate = dropout_rate
        self.lr = lr
        self.num_outputs = num_outputs

    def __call__(self, hp: HP) -> nn.Module:
        given, shape = signal_shape(self.name, self.input_shape, self.num_classes,
                                    self.num_outputs)
        if len(self.strides) != len(self.widths):
            raise SpaceError(f"space 'mobile': {len(self.widths)} stages of widths but "
                             f"{len(self.strides)} strides")
        dims = len(shape) - 1
        conv, norm = conv_kinds(dims)
        layers: list[nn.Module] = [nn.Unflatten(1, shape)] if len(given) == 1 else []
        stem, head = hp.scale(self.stem), hp.scale(self.head)
        layers += [conv(shape[0], stem, 3, stride=self.stem_stride, padding=1, bias=False),
                   norm(stem), nn.ReLU6()]
        channels = stem
        for i, (choices, stride) in enumerate(zip(self.widths, self.strides, strict=True)):
            with hp.scope(f"stage{i}"):
                width = hp.choice("width", list(choices))
                blocks = hp.int("depth", self.depth[0], self.depth[1])
                expand = hp.choice("expand", list(self.expansions))
                kernel = hp.choice("kernel", list(self.kernels))
            for b in range(blocks):
                layers.append(InvertedResidual(dims, channels, hp.scale(width), expand, kernel,
                                               stride if b == 0 else 1))
                channels = hp.scale(width)
        pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
        layers += [conv(channels, head, 1, bias=False), norm(head), nn.ReLU6(), pool,
                   nn.Flatten()]
        if hp.bool("dropout"):
            layers.append(nn.Dropout(self.dropout_rate))
        layers.append(nn.Linear(head, head_size(self.num_classes, self.num_outputs)))
        if self.lr is not None:
            hp.float("lr", self.lr[0], self.lr[1], log=True)
        return nn.Sequential(*layers)
