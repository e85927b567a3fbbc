"""``chain_cnn``: a chain of convolutions then dense layers, for 1-D signals and 2-D images.

Per conv layer: filters, kernel size and stride; then 0..N dense layers with their widths;
one activation, optional dropout before the classifier, and a log-uniform learning rate.
Convolutions are 1-D for inputs shaped ``(channels, length)`` and 2-D for
``(channels, height, width)``; each is followed by batch norm and the activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import nn

from torchnas.space._hp import HP
from torchnas.space.builtin._common import (
    ACTIVATIONS,
    conv_kinds,
    flat_features,
    head_size,
    signal_shape,
)
from torchnas.space.builtin._registry import register

__all__ = ["ChainCNNSpace"]


@register("chain_cnn")
class ChainCNNSpace:
    """Convolution chain + dense head.

    Args:
        input_shape: ``(C, L)`` or ``(C, H, W)``; a flat ``(L,)`` is read as one channel.
        num_classes: classifier outputs.
        max_conv_layers: conv layers range over ``1..max_conv_layers``.
        filters, kernels, strides: per-layer choices.
        max_dense_layers: dense layers range over ``0..max_dense_layers``.
        units: ``(low, high, step)`` of each dense layer's width.
        activations: names for the one activation of the model.
        dropout_rate: dropout before the classifier when the ``dropout`` decision is true.
        batchnorm: batch norm after each convolution.
        lr: ``(low, high)`` of the log-uniform learning rate (``None``: no ``lr`` decision).
        num_outputs: outputs of the last layer instead of ``num_classes`` (a regression
            of ``num_outputs`` targets; ``None``: ``num_classes``).
    """

    name: ClassVar[str]  # set by @register above

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 40),
        num_classes: int = 10,
        max_conv_layers: int = 4,
        filters: Sequence[int] = (24, 36, 48, 64),
        kernels: Sequence[int] = (3, 5, 7),
        strides: Sequence[int] = (1, 2),
        max_dense_layers: int = 2,
        units: tuple[int, int, int] = (32, 256, 32),
        activations: Sequence[str] = ("relu", "gelu"),
        dropout_rate: float = 0.2,
        batchnorm: bool = True,
        lr: tuple[float, float] | None = (5e-4, 1e-2),
        num_outputs: int | None = None,
    ) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.max_conv_layers = max_conv_layers
        self.filters = filters
        self.kernels = kernels
        self.strides = strides
        self.max_dense_layers = max_dense_layers
        self.units = units
        self.activations = activations
        self.dropout_rate = dropout_rate
        self.batchnorm = batchnorm
        self.lr = lr
        self.num_outputs = num_outputs

    def __call__(self, hp: HP) -> nn.Module:
        given, shape = signal_shape(self.name, self.input_shape, self.num_classes,
                                    self.num_outputs)
        conv, norm = conv_kinds(len(shape) - 1)
        act = ACTIVATIONS[hp.choice("activation", list(self.activations))]
        body: list[nn.Module] = [nn.Unflatten(1, shape)] if len(given) == 1 else []
        channels = shape[0]
        for i in range(hp.int("conv_layers", 1, self.max_conv_layers)):
            c = hp.scale(hp.choice(f"filters_{i}", list(self.filters)))
            k = hp.choice(f"kernel_{i}", list(self.kernels))
            s = hp.choice(f"stride_{i}", list(self.strides))
            body.append(conv(channels, c, k, stride=s, padding=k // 2, bias=not self.batchnorm))
            if self.batchnorm:
                body.append(norm(c))
            body.append(act())
            channels = c
        body.append(nn.Flatten())
        features = flat_features(nn.Sequential(*body), given)
        head: list[nn.Module] = []
        low, high, step = self.units
        for i in range(hp.int("dense_layers", 0, self.max_dense_layers)):
            units = hp.scale(hp.int(f"units_{i}", low, high, step=step))
            head += [nn.Linear(features, units), act()]
            features = units
        if hp.bool("dropout"):
            head.append(nn.Dropout(self.dropout_rate))
        head.append(nn.Linear(features, head_size(self.num_classes, self.num_outputs)))
        if self.lr is not None:
            hp.float("lr", self.lr[0], self.lr[1], log=True)
        return nn.Sequential(*body, *head)
