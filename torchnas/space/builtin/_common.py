"""Pieces shared by the built-in spaces."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from torchnas._util.errors import DataError, SpaceError

__all__ = ["ACTIVATIONS", "check_layout", "check_shape", "flat_features", "head_size",
           "signal_shape"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def check_shape(space: str, input_shape: Sequence[int], num_classes: int | None,
                num_outputs: int | None = None) -> tuple[int, ...]:
    """Validates the shapes a built-in space is created for (``num_outputs``, when given,
    instead of ``num_classes``: the outputs of a regression)."""
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise SpaceError(
            f"space {space!r}: input_shape must be positive sizes, got {input_shape!r}"
        )
    if num_outputs is not None:
        if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
            raise SpaceError(f"space {space!r}: num_outputs must be an integer >= 1, got "
                             f"{num_outputs!r}")
    elif num_classes is None or int(num_classes) < 2:
        raise SpaceError(f"space {space!r}: num_classes must be >= 2, got {num_classes!r}")
    return shape


def head_size(num_classes: int | None, num_outputs: int | None) -> int:
    """Outputs of a space's last layer: ``num_outputs`` when given (regression: one per
    target), else ``num_classes`` (checked by :func:`check_shape`)."""
    return int(num_outputs if num_outputs is not None else num_classes)  # type: ignore[arg-type]


def flat_features(body: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of features ``body`` outputs per sample, found with one zero batch."""
    was_training = body.training
    body.eval()
    with torch.no_grad():
        out = body(torch.zeros(1, *input_shape))
    body.train(was_training)
    return math.prod(out.shape[1:])


def check_layout(space: str, shape: tuple[int, ...]) -> None:
    """How a convolutional space reads ``shape``, when that is likely not what was meant.

    Channels last, ``(H, W, C)`` or ``(L, C)`` with ``C`` of 1 or 3 and the other sizes 8 or
    more (``(28, 28, 1)``: NumPy and Keras images), would be read as ``H`` channels: refused. A
    square ``(H, W)`` of 8 or more (images without their channel axis) is read as a 1-D signal
    of ``H`` channels and length ``W``: a warning.

    Raises:
        DataError: for a channels-last shape, naming the permutation that fixes it.
    """
    if len(shape) == 3 and shape[2] in (1, 3) and min(shape[:2]) >= 8:
        h, w, c = shape
        raise DataError(
            f"space {space!r}: input_shape {shape} looks channels-last (height, width, "
            f"channels): it would be read as {h} channels of {w}x{c} images. Built-in spaces "
            f"take channels first: give the images as x.permute(0, 3, 1, 2), shaped "
            f"{(c, h, w)}")
    if len(shape) == 2 and shape[1] in (1, 3) and shape[0] >= 8:
        n, c = shape
        raise DataError(
            f"space {space!r}: input_shape {shape} looks channels-last (length, channels): it "
            f"would be read as {n} channels of length {c}. Built-in spaces take channels "
            f"first: give the signals as x.transpose(1, 2), shaped {(c, n)}")
    if len(shape) == 2 and shape[0] == shape[1] >= 8:
        h, w = shape
        warnings.warn(
            f"space {space!r}: input_shape {shape} is read as a 1-D signal of {h} channels and "
            f"length {w}; if these are {h}x{w} images, add their channel axis: "
            f"x.unsqueeze(1), shaped {(1, h, w)}", UserWarning, stacklevel=3)


def signal_shape(space: str, input_shape: Sequence[int], num_classes: int | None,
                 num_outputs: int | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The checked input shape as given, and as ``(C, L)`` or ``(C, H, W)`` (a flat ``(L,)``
    is one channel): what convolutional spaces build on (see :func:`check_layout`)."""
    given = check_shape(space, input_shape, num_classes, num_outputs)
    check_layout(space, given)
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


def check_options(space: str, arg: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    """Raises :class:`SpaceError` unless ``values`` is a non-empty list of names in
    ``allowed`` (a space's ``cells=``, ``readouts=``, ...)."""
    if isinstance(values, str) or not values or any(v not in allowed for v in values):
        shown = [values] if isinstance(values, str) else list(values)
        raise SpaceError(f"space {space!r}: {arg} must be a non-empty list of "
                         f"{', '.join(map(repr, allowed))}, got {shown!r}")


def check_count(space: str, arg: str, value: object) -> None:
    """Raises :class:`SpaceError` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpaceError(f"space {space!r}: {arg} must be an integer >= 1, got {value!r}")


def check_causal(space: str, causal: bool, per_token: bool) -> None:
    """A causal model (a language model) predicts every token: ``per_token`` too."""
    if causal and not per_token:
        raise SpaceError(f"space {space!r}: causal (a language model) needs per_token=True")
