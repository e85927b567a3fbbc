"""``mlp``: the Keras Tuner tutorial's space, in torchnas.

1-3 dense layers of 32-512 units (step 32), one activation for all (relu/tanh), optional
dropout, and a log-uniform learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from torch import nn

from torchnas.space._hp import HP
from torchnas.space.builtin._common import ACTIVATIONS, check_shape, head_size
from torchnas.space.builtin._registry import register

__all__ = ["MLPSpace"]


@register("mlp")
class MLPSpace:
    """A multi-layer perceptron over flattened inputs.

    Args:
        input_shape: one sample's shape (flattened by the model).
        num_classes: outputs of the last layer.
        max_layers: the most hidden layers (at least one).
        units: ``(low, high, step)`` of each layer's width.
        activations: names from which the one activation is chosen.
        dropout_rate: the rate used when the ``dropout`` decision is true.
        lr: ``(low, high)`` of the log-uniform learning rate (``None``: no ``lr`` decision).
        num_outputs: outputs of the last layer instead of ``num_classes`` (a regression
            of ``num_outputs`` targets; ``None``: ``num_classes``).
    """

    name: ClassVar[str]  # set by @register above

    def __init__(
        self,
        input_shape: Sequence[int] = (784,),
        num_classes: int = 10,
        max_layers: int = 3,
        units: tuple[int, int, int] = (32, 512, 32),
        activations: Sequence[str] = ("relu", "tanh"),
        dropout_rate: float = 0.25,
        lr: tuple[float, float] | None = (1e-4, 1e-2),
        num_outputs: int | None = None,
    ) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.max_layers = max_layers
        self.units = units
        self.activations = activations
        self.dropout_rate = dropout_rate
        self.lr = lr
        self.num_outputs = num_outputs

    def __call__(self, hp: HP) -> nn.Module:
        shape = check_shape(self.name, self.input_shape, self.num_classes, self.num_outputs)
        width = math.prod(shape)
        layers: list[nn.Module] = [nn.Flatten()]
        low, high, step = self.units
        for i in range(hp.int("num_layers", 1, self.max_layers)):
            units = hp.scale(hp.int(f"units_{i}", low, high, step=step))
            act = hp.choice("activation", list(self.activations))
            layers += [nn.Linear(width, units), ACTIVATIONS[act]()]
            width = units
        if hp.bool("dropout"):
            layers.append(nn.Dropout(self.dropout_rate))
        layers.append(nn.Linear(width, head_size(self.num_classes, self.num_outputs)))
        if self.lr is not None:
            hp.float("lr", self.lr[0], self.lr[1], log=True)
        return nn.Sequential(*layers)
