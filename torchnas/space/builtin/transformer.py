"""``transformer``: a Transformer encoder over sequences of token ids or of float features.

``input_shape`` is read as in :mod:`torchnas.space.builtin.rnn` (token ids ``(T,)`` with
``vocab_size``; floats ``(T,)``, ``(C, L)`` as ``L`` steps of ``C`` features, ``(C, H, W)`` as
``H`` rows of ``C * W`` features). Decisions: the number of encoder layers, the model width
(``hp.scale`` aware), the attention heads (every width is a multiple of every head count; a
narrowed width stays one), the feed-forward ratio, pre- or post-norm, the positional encoding
(``learned``, ``sinusoidal`` or ``none``), the activation, the dropout, the per-sequence readout
(``mean``, ``attention``) and a log-uniform learning rate. ``per_token`` gives logits at every
step; ``causal`` (a language model) masks attention to later steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from torchnas._util.errors import SpaceError
from torchnas.space._hp import HP
from torchnas.space.builtin._common import check_causal, check_count, check_options, head_size
from torchnas.space.builtin._registry import register
from torchnas.space.builtin.rnn import SequenceInput, SequencePool, sequence_shape

__all__ = ["TransformerSpace"]

POSITIONS = ("learned", "sinusoidal", "none")


class Positions(nn.Module):
    """Adds a position's vector to each step: ``learned`` (a table of ``length`` vectors),
    ``sinusoidal`` (fixed, "Attention is all you need") or ``none``."""

    def __init__(self, kind: str, length: int, dim: int) -> None:
        super().__init__()
        self.kind = kind
        self.table = nn.Parameter(torch.zeros(length, dim)) if kind == "learned" else None
        if kind == "learned":
            nn.init.normal_(self.table, std=0.02)  # type: ignore[arg-type]
        if kind == "sinusoidal":
            pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
            freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32)
                             * (-math.log(10000.0) / dim))
            table = torch.zeros(length, dim)
            table[:, 0::2] = torch.sin(pos * freq)
            table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
            self.register_buffer("fixed", table, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return h
        table = self.table if self.table is not None else self.get_buffer("fixed")
        if h.shape[1] > len(table):
            raise SpaceError(f"space 'transformer': a sequence of {h.shape[1]} steps is longer "
                             f"than the {len(table)} of input_shape")
        return h + table[: h.shape[1]]

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


class TransformerModel(nn.Module):
    """Input layer and positions, encoder layers, then a readout and classifier (or, per
    token, a classifier at every step)."""

    def __init__(self, inputs: SequenceInput, positions: Positions,
                 layers: Sequence[nn.TransformerEncoderLayer], norm: nn.Module,
                 pool: SequencePool | None, head: nn.Module, causal: bool) -> None:
        super().__init__()
        self.inputs = inputs
        self.positions = positions
        self.layers = nn.ModuleList(layers)
        self.norm = norm
        self.pool = pool
        self.head = head
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mask = self.inputs(x)
        h = self.positions(h)
        attn_mask = None
        padding = None if mask is None else ~mask
        if self.causal:  # right padding: a real step never attends to a later (padding) one
            steps = h.shape[1]
            attn_mask = torch.triu(torch.full((steps, steps), float("-inf"), device=h.device),
                                   diagonal=1)
            padding = None
        for layer in self.layers:
            h = layer(h, src_mask=attn_mask, src_key_padding_mask=padding,
                      is_causal=self.causal)
        h = self.norm(h)
        if self.pool is not None:
            h = self.pool(h, mask)
        out: torch.Tensor = self.head(h)
        return out


@register("transformer")
class TransformerSpace:
    """A Transformer encoder (``nn.TransformerEncoderLayer``, batch first) for sequence
    classification, labels per token and (``causal``) language models.

    Args:
        input_shape: as for ``rnn``: ``(T,)`` token ids (with ``vocab_size``) or float steps;
            ``(C, L)``: ``L`` steps of ``C`` features; ``(C, H, W)``: ``H`` rows.
        num_classes: outputs per sequence (per token with ``per_token``).
        vocab_size: token ids are in ``[0, vocab_size)`` (``None``: float inputs).
        per_token: logits at every step, ``(N, T, num_classes)``.
        causal: a language model: each step attends to itself and earlier steps only (needs
            ``per_token``).
        pad_id: the padding token of right-padded token inputs (attention and the readout skip
            it; ``None``: no padding).
        max_layers: the encoder layers range over ``1..max_layers``.
        widths: the model widths (each a multiple of every head count).
        heads: the attention head counts.
        ff_ratios: the feed-forward width as a multiple of the model width.
        positions: the positional encodings to choose from.
        activations: of the feed-forward layers (``relu``, ``gelu``).
        dropouts: the dropout rates of the encoder layers.
        readouts: the per-sequence readouts (``mean``, ``attention``, ``last``).
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
        max_layers: int = 4,
        widths: Sequence[int] = (32, 64, 128),
        heads: Sequence[int] = (1, 2, 4),
        ff_ratios: Sequence[int] = (1, 2, 4),
        positions: Sequence[str] = POSITIONS,
        activations: Sequence[str] = ("gelu", "relu"),
        dropouts: Sequence[float] = (0.0, 0.1),
        readouts: Sequence[str] = ("mean", "attention"),
        lr: tuple[float, float] | None = (2e-4, 5e-3),
        num_outputs: int | None = None,
    ) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.vocab_size = vocab_size
        self.per_token = per_token
        self.causal = causal
        self.pad_id = pad_id
        self.max_layers = max_layers
        self.widths = widths
        self.heads = heads
        self.ff_ratios = ff_ratios
        self.positions = positions
        self.activations = activations
        self.dropouts = dropouts
        self.readouts = readouts
        self.lr = lr
        self.num_outputs = num_outputs

    def _check(self) -> None:
        odd = [(w, h) for w in self.widths for h in self.heads if w % h]
        if odd or not self.widths or not self.heads:
            raise SpaceError(
                f"space {self.name!r}: every width must be a multiple of every head count; "
                f"widths {list(self.widths)} and heads {list(self.heads)}"
                + (f" (width {odd[0][0]} with {odd[0][1]} heads)" if odd else ""))
        check_options(self.name, "positions", self.positions, POSITIONS)
        check_options(self.name, "activations", self.activations, ("relu", "gelu"))
        check_options(self.name, "readouts", self.readouts, ("mean", "attention", "last"))
        check_count(self.name, "max_layers", self.max_layers)
        check_causal(self.name, self.causal, self.per_token)

    def __call__(self, hp: HP) -> nn.Module:
        self._check()
        _, steps, features = sequence_shape(self.name, self.input_shape, self.num_classes,
                                            self.num_outputs, self.vocab_size)
        width = hp.choice("width", list(self.widths))
        heads = hp.choice("heads", list(self.heads))
        dim = heads * hp.scale(width // heads)  # narrowed, still a multiple of the heads
        ratio = hp.choice("ff_ratio", list(self.ff_ratios))
        norm_first = hp.choice("norm", ["pre", "post"]) == "pre"
        position = hp.choice("positions", list(self.positions))
        activation = hp.choice("activation", list(self.activations))
        dropout = float(hp.choice("dropout", list(self.dropouts)))
        layers = [
            nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim * ratio, dropout=dropout,
                                       activation=activation, batch_first=True,
                                       norm_first=norm_first)
            for _ in range(hp.int("num_layers", 1, self.max_layers))
        ]
        pool = None
        if not self.per_token:
            pool = SequencePool(hp.choice("readout", list(self.readouts)), dim)
        head = nn.Linear(dim, head_size(self.num_classes, self.num_outputs))
        if self.lr is not None:
            hp.float("lr", self.lr[0], self.lr[1], log=True)
        inputs = SequenceInput(self.name, features, dim, self.vocab_size, self.pad_id)
        return TransformerModel(inputs, Positions(position, steps, dim), layers,
                                nn.LayerNorm(dim) if norm_first else nn.Identity(), pool, head,
                                self.causal)
