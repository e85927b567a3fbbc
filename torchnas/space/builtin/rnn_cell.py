"""``rnn_cell``: a searched recurrent cell (DARTS, ENAS), unrolled over time.

The recurrent analogue of ``cell``. At step ``t`` the cell reads the input ``x_t`` and the last
state ``h_{t-1}``; node 0 blends them as DARTS does, ``c_0 = h + sigmoid(a) * (tanh(b) - h)``
with ``(a, b) = W_x x_t + W_h h``, and each node ``i = 1..nodes`` takes one earlier node ``c_j``
(``j < i``, the ``hp.inputs`` decision ``input_i``; node 1 always reads node 0) and applies a
highway layer, ``c_i = c_j + sigmoid(a) * (act(b) - c_j)`` with ``(a, b) = W_i c_j``, whose
activation is the ``hp.op`` decision ``act_i`` among ``tanh``, ``relu``, ``sigmoid`` and
``identity``. The new state ``h_t`` is the mean of nodes ``1..nodes``. 4 nodes give
``4^4 * 4! = 6,144`` cells (DARTS searches 8: ``nodes=8``).

Inputs are read as in ``rnn`` (token ids with ``vocab_size``, ``(C, L)`` as ``L`` steps of ``C``
features, ``(C, H, W)`` as ``H`` rows; see :mod:`torchnas.space.builtin.rnn`), and so are
``per_token``, ``causal`` (a single forward recurrence is causal already), ``pad_id`` (padding
steps keep the last state and are skipped by the readouts) and the readouts. The other decisions
are the hidden size (``hp.scale`` aware), the dropout on the states, the readout and a
log-uniform learning rate.

The space works as a weight-sharing supernet (``torchnas.oneshot``: DARTS, GDAS, ENAS, SPOS):
``input_i`` becomes a mix of the earlier nodes and ``act_i`` a mix of the activations, both
shared by every time step (one architecture per forward pass, one Gumbel draw per pass in GDAS);
the value decisions (hidden size, dropout, readout, learning rate) are fixed, by default to the
first choice and the middle of the learning rate's range (``fixed={"lr": 0.01}`` learns faster
in a few epochs). The input part of ``W_x x_t`` is computed for every step at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from torchnas._util.errors import SpaceError
from torchnas.space._hp import HP
from torchnas.space.builtin._common import check_causal, check_count, check_options, head_size
from torchnas.space.builtin._registry import register
from torchnas.space.builtin.rnn import READOUTS, SequenceInput, SequencePool, sequence_shape

__all__ = ["ACTIVATIONS", "RNNCellSpace", "RecurrentCell"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "identity": nn.Identity,
}


def _highway(prev: torch.Tensor, gates: torch.Tensor, act: nn.Module) -> torch.Tensor:
    a, b = gates.chunk(2, dim=-1)
    return prev + torch.sigmoid(a) * (act(b) - prev)


class RecurrentCell(nn.Module):
    """One step of the searched cell: ``(W_x x_t, h_{t-1}) -> h_t``.

    Args:
        hidden: the state size.
        choosers: the input choices of nodes ``2..nodes`` (modules whose forward takes the list
            of earlier nodes: ``hp.inputs`` with a count).
        acts: the activation of each node ``1..nodes`` (``hp.op`` modules).
    """

    def __init__(self, hidden: int, choosers: Sequence[nn.Module],
                 acts: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(choosers) != len(acts) - 1:
            raise ValueError("one input choice per node after the first")
        self.hidden = hidden
        self.w_h = nn.Linear(hidden, 2 * hidden, bias=False)
        self.nodes = nn.ModuleList([nn.Linear(hidden, 2 * hidden) for _ in acts])
        self.choosers = nn.ModuleList(choosers)
        self.acts = nn.ModuleList(acts)
        self.tanh = nn.Tanh()

    def forward(self, xw: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        states = [_highway(h, xw + self.w_h(h), self.tanh)]
        for i, (w, act) in enumerate(zip(self.nodes, self.acts, strict=True)):
            prev = states[0] if i == 0 else self.choosers[i - 1](states)
            states.append(_highway(prev, w(prev), act))
        return torch.stack(states[1:]).mean(0)


class RecurrentCellModel(nn.Module):
    """Input layer (to ``W_x x_t`` for every step), the cell unrolled over the steps, dropout,
    then a readout and classifier (or, per token, a classifier at every step)."""

    def __init__(self, inputs: SequenceInput, cell: RecurrentCell, dropout: float,
                 pool: SequencePool | None, head: nn.Module) -> None:
        super().__init__()
        self.inputs = inputs
        self.cell = cell
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.pool = pool
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xw, mask = self.inputs(x)  # (N, T, 2 * hidden)
        h = xw.new_zeros(xw.shape[0], self.cell.hidden)
        outs = []
        for t in range(xw.shape[1]):
            new = self.cell(xw[:, t], h)
            h = new if mask is None else torch.where(mask[:, t, None], new, h)
            outs.append(h)
        out = self.drop(torch.stack(outs, 1))
        if self.pool is not None:
            out = self.pool(out, mask)
        result: torch.Tensor = self.head(out)
        return result


@register("rnn_cell")
class RNNCellSpace:
    """A searched recurrent cell (DARTS, ENAS) unrolled over sequences of token ids or of float
    features (see the module).

    Args:
        input_shape: ``(T,)`` token ids (with ``vocab_size``) or float steps; ``(C, L)``: ``L``
            steps of ``C`` features; ``(C, H, W)``: ``H`` rows of ``C * W`` features.
        num_classes: outputs per sequence (per token with ``per_token``).
        vocab_size: token ids are in ``[0, vocab_size)`` (``None``: float inputs). A search
            passes it for integer inputs.
        per_token: logits at every step, ``(N, T, num_classes)``; else ``(N, num_classes)``
            from the readout.
        causal: a language model (needs ``per_token``); the cell reads forward only anyway.
        pad_id: the padding token of right-padded token inputs (``None``: no padding).
        nodes: searched nodes of the cell (each with an activation; each after the first with
            an input choice).
        activations: the candidate activations, a subset of :data:`ACTIVATIONS`.
        hidden: the state sizes (``hp.scale`` narrows them); the first is the supernet's.
        dropouts: the dropout rates on the states.
        readouts: the per-sequence readouts (``attention``, ``mean``, ``last``); the first is
            the supernet's (``last`` learns slowest: chance on MNIST-1D
            after 2 epochs, where ``attention`` reaches 25 %).
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
        nodes: int = 4,
        activations: Sequence[str] = tuple(ACTIVATIONS),
        hidden: Sequence[int] = (64, 32, 128),
        dropouts: Sequence[float] = (0.0, 0.1, 0.3),
        readouts: Sequence[str] = ("attention", "mean", "last"),
        lr: tuple[float, float] | None = (5e-4, 1e-2),
        num_outputs: int | None = None,
    ) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.vocab_size = vocab_size
        self.per_token = per_token
        self.causal = causal
        self.pad_id = pad_id
        self.nodes = nodes
        self.activations = activations
        self.hidden = hidden
        self.dropouts = dropouts
        self.readouts = readouts
        self.lr = lr
        self.num_outputs = num_outputs

    def _check(self) -> int | None:
        _, _, features = sequence_shape(self.name, self.input_shape, self.num_classes,
                                        self.num_outputs, self.vocab_size)
        check_options(self.name, "activations", self.activations, tuple(ACTIVATIONS))
        check_options(self.name, "readouts", self.readouts, READOUTS)
        check_count(self.name, "nodes", self.nodes)
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                                  for h in self.hidden):
            raise SpaceError(f"space {self.name!r}: hidden must be a non-empty list of "
                             f"integers >= 1, got {self.hidden!r}")
        check_causal(self.name, self.causal, self.per_token)
        return features

    def __call__(self, hp: HP) -> nn.Module:
        features = self._check()
        hidden = hp.scale(hp.choice("hidden", list(self.hidden)))
        inputs = SequenceInput(self.name, features, 2 * hidden, self.vocab_size, self.pad_id)
        acts: list[nn.Module] = []
        choosers: list[nn.Module] = []
        for i in range(1, self.nodes + 1):
            if i > 1:
                choosers.append(hp.inputs(f"input_{i}", i))
            acts.append(hp.op(f"act_{i}", {a: ACTIVATIONS[a] for a in self.activations}))
        cell = RecurrentCell(hidden, choosers, acts)
        dropout = float(hp.choice("dropout", list(self.dropouts)))
        pool = None
        if not self.per_token:
            pool = SequencePool(hp.choice("readout", list(self.readouts)), hidden)
        head = nn.Linear(hidden, head_size(self.num_classes, self.num_outputs))
        if self.lr is not None:
            hp.float("lr", self.lr[0], self.lr[1], log=True)
        return RecurrentCellModel(inputs, cell, dropout, pool, head)
