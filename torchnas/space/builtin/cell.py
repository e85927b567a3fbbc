"""``cell``: a NAS-Bench-201-like cell space, for 1-D signals and 2-D images.

One cell is a small graph of ``nodes`` nodes (4 by default): node 0 is the cell's input, node
``j`` sums an operation on every earlier node, and the last node is the output. Each edge
``j <- i`` is one ``hp.op`` decision (``edge_{j}_{i}``) among ``none`` (zeros: no edge),
``skip`` (identity), ``conv_1x1`` and ``conv_3x3`` (ReLU, convolution, batch norm) and
``avg_pool_3x3``; 4 nodes give 6 edges and 5^6 = 15,625 cells. The network is a stem
convolution, then ``stages`` stages of ``cells_per_stage`` cells with a residual reduction block
(stride 2, channels doubled) between stages, then batch norm, ReLU, global average pooling and a
linear classifier. By default every cell shares one set of labels (``cell/edge_j_i``), as in
NAS-Bench-201; ``share_cells=False`` gives each cell its own.

The space works as a weight-sharing supernet (``torchnas.oneshot``): every edge keeps its
input's shape, and with partial channels (``hp.partial_channels`` > 1, PC-DARTS) the
convolution candidates are built for ``channels // hp.partial_channels`` channels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn

from torchnas._util.errors import SpaceError
from torchnas.space._hp import HP
from torchnas.space.builtin._common import head_size, signal_shape
from torchnas.space.builtin._registry import register

__all__ = ["OPS", "CellSpace"]

OPS = ("none", "skip", "conv_1x1", "conv_3x3", "avg_pool_3x3")


class Zero(nn.Module):
    """The ``none`` operation: zeros shaped like the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _relu_conv_bn(dim: int, c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Module:
    conv = nn.Conv1d if dim == 1 else nn.Conv2d
    norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
    return nn.Sequential(nn.ReLU(), conv(c_in, c_out, kernel, stride=stride, padding=kernel // 2,
                                         bias=False), norm(c_out))


class Reduction(nn.Module):
    """NAS-Bench-201's residual block between stages: stride 2, channels doubled."""

    def __init__(self, dim: int, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = _relu_conv_bn(dim, c_in, c_out, 3, stride=2)
        self.b = _relu_conv_bn(dim, c_out, c_out, 3)
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        self.shortcut = conv(c_in, c_out, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class Cell(nn.Module):
    """``nodes`` nodes; node ``j`` is the sum of its edges' operations on nodes ``0..j-1``."""

    def __init__(self, edges: Sequence[tuple[int, int, nn.Module]], nodes: int) -> None:
        super().__init__()
        self.nodes = nodes
        self.pairs = [(j, i) for j, i, _ in edges]
        self.edges = nn.ModuleList([op for _, _, op in edges])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for j in range(1, self.nodes):
            states.append(sum(op(states[i]) for (to, i), op in zip(self.pairs, self.edges,
                                                                   strict=True) if to == j))
        return states[-1]


@register("cell")
class CellSpace:
    """Stacked cells of a searched small graph (NAS-Bench-201 style).

    Args:
        input_shape: ``(C, L)`` or ``(C, H, W)``; a flat ``(L,)`` is read as one channel.
        num_classes: classifier outputs.
        channels: channels of the first stage (doubled at each reduction).
        stages: stages of cells, with a reduction block between two stages.
        cells_per_stage: cells in each stage.
        nodes: nodes per cell (``nodes * (nodes - 1) / 2`` edges).
        ops: the candidate operations of every edge, a subset of :data:`OPS`.
        share_cells: one set of edge labels for every cell (else one per cell).
        lr: ``(low, high)`` of a log-uniform learning rate decision (``None``: none).
        num_outputs: outputs of the last layer instead of ``num_classes`` (a regression
            of ``num_outputs`` targets; ``None``: ``num_classes``).
    """

    name: ClassVar[str]  # set by @register above

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 40),
        num_classes: int = 10,
        channels: int = 16,
        stages: int = 3,
        cells_per_stage: int = 1,
        nodes: int = 4,
        ops: Sequence[str] = OPS,
        share_cells: bool = True,
        lr: tuple[float, float] | None = None,
        num_outputs: int | None = None,
    ) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.channels = channels
        self.stages = stages
        self.cells_per_stage = cells_per_stage
        self.nodes = nodes
        self.ops = ops
        self.share_cells = share_cells
        self.lr = lr
        self.num_outputs = num_outputs

    def _check(self) -> tuple[int, ...]:
        _, shape = signal_shape(self.name, self.input_shape, self.num_classes,
                                self.num_outputs)
        for name in ("channels", "stages", "cells_per_stage"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpaceError(f"space 'cell': {name} must be an integer >= 1, got {value!r}")
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 2:
            raise SpaceError(f"space 'cell': nodes must be an integer >= 2, got {self.nodes!r}")
        unknown = [op for op in self.ops if op not in OPS]
        if unknown or not self.ops:
            raise SpaceError(f"space 'cell': ops must be a non-empty subset of {OPS}, "
                             f"got {list(self.ops)!r}")
        return shape

    def candidates(self, dim: int, channels: int) -> dict[str, Callable[[], nn.Module]]:
        """The edge operations for ``channels`` channels."""
        pool = nn.AvgPool1d if dim == 1 else nn.AvgPool2d
        table: dict[str, Callable[[], nn.Module]] = {
            "none": Zero,
            "skip": nn.Identity,
            "conv_1x1": lambda: _relu_conv_bn(dim, channels, channels, 1),
            "conv_3x3": lambda: _relu_conv_bn(dim, channels, channels, 3),
            "avg_pool_3x3": lambda: pool(3, stride=1, padding=1, count_include_pad=False),
        }
        return {op: table[op] for op in self.ops}

    def cell(self, hp: HP, dim: int, channels: int) -> Cell:
        split = getattr(hp, "partial_channels", 1)  # PC-DARTS, in supernet mode only
        ops = self.candidates(dim, max(1, channels // split))
        edges = [(j, i, hp.op(f"edge_{j}_{i}", ops))
                 for j in range(1, self.nodes) for i in range(j)]
        return Cell(edges, self.nodes)

    def __call__(self, hp: HP) -> nn.Module:
        shape = self._check()
        given, _ = signal_shape(self.name, self.input_shape, self.num_classes,
                                self.num_outputs)
        dim = len(shape) - 1
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        c = hp.scale(self.channels)
        body: list[nn.Module] = [nn.Unflatten(1, shape)] if len(given) == 1 else []
        body += [conv(shape[0], c, 3, padding=1, bias=False), norm(c)]
        for s in range(self.stages):
            if s:
                body.append(Reduction(dim, c, 2 * c))
                c *= 2
            for i in range(self.cells_per_stage):
                with hp.scope("cell" if self.share_cells else f"stage{s}_cell{i}"):
                    body.append(self.cell(hp, dim, c))
        pool = nn.AdaptiveAvgPool1d if dim == 1 else nn.AdaptiveAvgPool2d
        outputs = head_size(self.num_classes, self.num_outputs)
        head = [norm(c), nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(c, outputs)]
        if self.lr is not None:
            hp.float("lr", self.lr[0], self.lr[1], log=True)
        return nn.Sequential(*body, *head)
