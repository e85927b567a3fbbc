"""Pieces shared by the built-in spaces."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from torchnas._errors import SpaceError

__all__ = ["ACTIVATIONS", "check_shape", "flat_features"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def check_shape(space: str, input_shape: Sequence[int], num_classes: int) -> tuple[int, ...]:
    """Validates the shapes a built-in space is created for."""
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise SpaceError(
            f"space {space!r}: input_shape must be positive sizes, got {input_shape!r}"
        )
    if int(num_classes) < 2:
        raise SpaceError(f"space {space!r}: num_classes must be >= 2, got {num_classes!r}")
    return shape


def flat_features(body: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of features ``body`` outputs per sample, found with one zero batch."""
    was_training = body.training
    body.eval()
    with torch.no_grad():
        out = body(torch.zeros(1, *input_shape))
    body.train(was_training)
    return math.prod(out.shape[1:])


def signal_shape(space: str, input_shape: Sequence[int],
                 num_classes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The checked input shape as given, and as ``(C, L)`` or ``(C, H, W)`` (a flat ``(L,)``
    is one channel): what convolutional spaces build on."""
    given = check_shape(space, input_shape, num_classes)
    shape = (1, given[0]) if len(given) == 1 else given
    if len(shape) not in (2, 3):
        raise SpaceError(
            f"space {space!r}: input_shape must be (C, L) or (C, H, W), got {given}"
        )
    return given, shape


def conv_kinds(dims: int) -> tuple[type[nn.Module], type[nn.Module]]:
    """The convolution and batch-norm classes for 1-D or 2-D signals."""
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d
    return nn.Conv2d, nn.BatchNorm2d
