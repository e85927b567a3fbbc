"""``rnn``: stacked recurrent layers over sequences of token ids or of float features.

How ``input_shape`` is read (one sample, no batch axis), the convention of the sequence spaces
(``rnn`` and ``transformer``):

- with ``vocab_size`` (integer token ids): ``(T,)`` is ``T`` tokens, embedded by an
  ``nn.Embedding(vocab_size, dim)``;
- without it (floats), channels first like every built-in space: ``(T,)`` is ``T`` steps of
  one feature, ``(C, L)`` is ``L`` steps of ``C`` features (MNIST-1D's ``(1, 40)``: 40 steps),
  ``(C, H, W)`` is ``H`` steps of ``C * W`` features (an image read row by row: the MNIST
  family's ``(1, 28, 28)`` is 28 steps of 28 pixels); a ``nn.Linear`` projects the features.

Per layer: the cell (``rnn``, ``lstm``, ``gru``), its hidden size (``hp.scale`` aware), whether
it is bidirectional and the dropout after it; then the number of layers, the readout of one
output per sequence (``last`` state, ``mean`` over steps, ``attention`` pooling), and a
log-uniform learning rate. With ``per_token`` the model outputs logits at every step,
``(N, T, num_classes)`` (labels per token, language models) and has no readout; ``causal``
(a language model) rules out bidirectional layers, which would see the next token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn

from torchnas._util.errors import DataError, SpaceError
from torchnas.space._hp import HP
from torchnas.space.builtin._common import (
    check_causal,
    check_count,
    check_options,
    check_shape,
    head_size,
)
from torchnas.space.builtin._registry import register

__all__ = ["RNNSpace", "SequenceInput", "SequencePool", "sequence_shape"]

CELLS: dict[str, Callable[..., nn.Module]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
READOUTS = ("last", "mean", "attention")


def sequence_shape(space: str, input_shape: Sequence[int], num_classes: int | None,
                   num_outputs: int | None, vocab_size: int | None
                   ) -> tuple[tuple[int, ...], int, int | None]:
    """The checked ``input_shape``, its number of steps ``T`` and features per step (``None``:
    token ids), read as the module says.

    Raises:
        SpaceError: for shapes the sequence spaces cannot read, naming the space and argument.
        DataError: for a channels-last ``(L, C)`` signal.
    """
    given = check_shape(space, input_shape, num_classes, num_outputs)
    if vocab_size is not None:
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
            raise SpaceError(f"space {space!r}: vocab_size must be an integer >= 2 (the largest "
                             f"token id + 1), got {vocab_size!r}")
        if len(given) != 1:
            raise SpaceError(
                f"space {space!r}: token ids (vocab_size={vocab_size}) need input_shape (T,), "
                f"T tokens per sequence, got {given}; for float features leave vocab_size out")
        return given, given[0], None
    if len(given) == 1:
        return given, given[0], 1
    if len(given) == 2:
        c, length = given
        if c >= 8 and length in (1, 3):
            raise DataError(
                f"space {space!r}: input_shape {given} looks channels-last (steps, features): "
                f"it would be read as {length} steps of {c} features. Sequence spaces take "
                f"features first, (C, L): give the sequences as x.transpose(1, 2), shaped "
                f"{(length, c)}")
        return given, length, c
    if len(given) == 3:
        c, h, w = given
        return given, h, c * w
    raise SpaceError(
        f"space {space!r}: input_shape must be (T,), (C, L) or (C, H, W) (read as T steps, L "
        f"steps of C features, H rows of C*W features), got {given}")


class SequenceInput(nn.Module):
    """Inputs to ``(N, T, dim)`` step vectors, and the mask of real (not padding) steps.

    Token ids (``vocab_size``) are embedded (``pad_id``'s vector is zero); floats are read as
    :func:`sequence_shape` says and projected by a linear layer.
    """

    def __init__(self, space: str, features: int | None, dim: int, vocab_size: int | None,
                 pad_id: int | None) -> None:
        super().__init__()
        self.space = space
        self.tokens = features is None
        self.pad_id = pad_id if self.tokens else None
        if features is None:
            assert vocab_size is not None
            pad = pad_id if pad_id is not None and 0 <= pad_id < vocab_size else None
            self.embed: nn.Module = nn.Embedding(vocab_size, dim, padding_idx=pad)
        else:
            self.embed = nn.Linear(features, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        floating = x.is_floating_point()
        if self.tokens:
            if floating:
                raise DataError(
                    f"space {self.space!r} was built for token ids (vocab_size given) but got "
                    f"{x.dtype} inputs; for float features leave vocab_size out")
            mask = None
            if self.pad_id is not None:
                mask = x != self.pad_id
                mask[:, 0] = True  # an all-padding row still has one step to read
            return self.embed(x.long()), mask
        if not floating:
            raise DataError(
                f"space {self.space!r} was built for float features but got {x.dtype} inputs; "
                f"for token ids give the space vocab_size (a search does, for integer inputs)")
        if x.dim() == 2:
            steps = x.unsqueeze(-1)  # (N, T) -> T steps of 1 feature
        elif x.dim() == 3:
            steps = x.transpose(1, 2)  # (N, C, L) -> L steps of C features
        else:
            n, c, h, w = x.shape  # (N, C, H, W) -> H rows of C * W features
            steps = x.permute(0, 2, 1, 3).reshape(n, h, c * w)
        return self.embed(steps), None


class SequencePool(nn.Module):
    """One vector per sequence from ``(N, T, D)`` step outputs: the ``last`` real step (for a
    bidirectional layer, the forward half's last step and the backward half's first), the
    ``mean`` over real steps, or ``attention`` pooling (a learned score per step, softmax over
    the real steps)."""

    def __init__(self, kind: str, dim: int, backward: int = 0) -> None:
        super().__init__()
        self.kind = kind
        self.backward = backward  # features of a backward direction at the end of D
        self.score = nn.Linear(dim, 1) if kind == "attention" else None

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "last":
            if mask is None:
                last = h[:, -1]
            else:
                idx = (mask.sum(1) - 1).clamp_min(0)
                last = h[torch.arange(len(h), device=h.device), idx]
            if self.backward:
                b = self.backward
                return torch.cat([last[:, :-b], h[:, 0, -b:]], dim=1)
            return last
        if self.kind == "mean":
            if mask is None:
                return h.mean(1)
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        assert self.score is not None
        scores = self.score(h).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return (h * weights).sum(1)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


class _Recurrent(nn.Module):
    """One recurrent layer, then dropout; padding steps of its output are zeroed."""

    def __init__(self, cell: str, size: int, hidden: int, bidirectional: bool,
                 dropout: float) -> None:
        super().__init__()
        self.rnn = CELLS[cell](size, hidden, batch_first=True, bidirectional=bidirectional)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.drop(self.rnn(h)[0])
        if mask is not None:
            out = out * mask.unsqueeze(-1).to(out.dtype)
        return out


class RecurrentModel(nn.Module):
    """Input layer, recurrent layers, then a readout and classifier (or, per token, a
    classifier at every step)."""

    def __init__(self, inputs: SequenceInput, layers: Sequence[_Recurrent],
                 pool: SequencePool | None, head: nn.Module) -> None:
        super().__init__()
        self.inputs = inputs
        self.layers = nn.ModuleList(layers)
        self.pool = pool
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mask = self.inputs(x)
        for layer in self.layers:
            h = layer(h, mask)
        if self.pool is not None:
            h = self.pool(h, mask)
        out: torch.Tensor = self.head(h)
        return out


@register("rnn")
class RNNSpace:
    """Stacked recurrent layers (RNN, LSTM, GRU) for sequence classification, labels per
    token and language models (see the module for how ``input_shape`` is read).

    Args:
        input_shape: ``(T,)`` token ids (with ``vocab_size``) or float steps; ``(C, L)``: ``L``
            steps of ``C`` features; ``(C, H, W)``: ``H`` rows of ``C * W`` features.
        num_classes: outputs per sequence (per token with ``per_token``; a language model's
            vocabulary).
        vocab_size: token ids are in ``[0, vocab_size)`` (``None``: float inputs). A search
            passes it for integer inputs.
        per_token: logits at every step, ``(N, T, num_classes)`` (a search sets it for labels
            per token); else ``(N, num_classes)`` from the readout.
        causal: a language model: no bidirectional layers (a search sets it when the targets
            are the inputs shifted by one).
        pad_id: the padding token of right-padded token inputs (the ``sequence`` task's
            default, 0): the last step, mean and attention readouts skip it, and its embedding
            is zero. ``None``: no padding. Unused for float inputs.
        max_layers: the number of layers ranges over ``1..max_layers``.
        cells: the cell types to choose from per layer.
        hidden: the hidden sizes per layer (one direction; ``hp.scale`` narrows them).
        embed_dims: the widths of the input layer (embedding or projection).
        dropouts: the dropout rates after each layer.
        readouts: the per-sequence readouts (``last``, ``mean``, ``attention``).
        bidirectional: offer bidirectional layers (never with ``causal``).
        lr: ``(low, high)`` of the log-uniform learning rate (``None``: no ``lr`` decision).
        num_outputs: outputs instead of ``num_classes`` (a regression).
    """

    name: ClassVar[str]  # set by @register above

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 40),
        num_classes: int = 10,
        vocab_size: int | None = None,
        per_token: bool = False,
        causal: bool = False,
        pad_id: int | None = 0,
        max_layers: int = 2,
        cells: Sequence[str] = ("rnn", "lstm", "gru"),
        hidden: Sequence[int] = (32, 64, 128, 256),
        embed_dims: Sequence[int] = (16, 32, 64, 128),
        dropouts: Sequence[float] = (0.0, 0.1, 0.3),
        readouts: Sequence[str] = READOUTS,
        bidirectional: bool = True,
        lr: tuple[float, float] | None = (5e-4, 1e-2),
        num_outputs: int | None = None,
    ) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.vocab_size = vocab_size
        self.per_token = per_token
        self.causal = causal
        self.pad_id = pad_id
        self.max_layers = max_layers
        self.cells = cells
        self.hidden = hidden
        self.embed_dims = embed_dims
        self.dropouts = dropouts
        self.readouts = readouts
        self.bidirectional = bidirectional
        self.lr = lr
        self.num_outputs = num_outputs

    def _check(self) -> None:
        check_options(self.name, "cells", self.cells, tuple(CELLS))
        check_options(self.name, "readouts", self.readouts, READOUTS)
        check_count(self.name, "max_layers", self.max_layers)
        check_causal(self.name, self.causal, self.per_token)

    def __call__(self, hp: HP) -> nn.Module:
        self._check()
        _, _, features = sequence_shape(self.name, self.input_shape, self.num_classes,
                                        self.num_outputs, self.vocab_size)
        dim = hp.scale(hp.choice("embed_dim", list(self.embed_dims)))
        inputs = SequenceInput(self.name, features, dim, self.vocab_size, self.pad_id)
        layers, size, backward = [], dim, 0
        for i in range(hp.int("num_layers", 1, self.max_layers)):
            cell = hp.choice(f"cell_{i}", list(self.cells))
            hidden = hp.scale(hp.choice(f"hidden_{i}", list(self.hidden)))
            both = (self.bidirectional and not self.causal) and hp.bool(f"bidirectional_{i}")
            dropout = float(hp.choice(f"dropout_{i}", list(self.dropouts)))
            layers.append(_Recurrent(cell, size, hidden, both, dropout))
            size, backward = hidden * (2 if both else 1), (hidden if both else 0)
        pool = None
        if not self.per_token:
            pool = SequencePool(hp.choice("readout", list(self.readouts)), size, backward)
        head = nn.Linear(size, head_size(self.num_classes, self.num_outputs))
        if self.lr is not None:
            hp.float("lr", self.lr[0], self.lr[1], log=True)
        return RecurrentModel(inputs, layers, pool, head)
