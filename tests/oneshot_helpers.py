"""Pieces the one-shot tests share: a zero op and a small signal dataset."""

from __future__ import annotations

import torch
from torch import nn

import torchnas as tn


class Zero(nn.Module):
    """The ``none`` candidate: zeros shaped like its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def signals(n: int = 1024, seed: int = 0) -> tn.data.Data:
    """Class 1 when the first half of the signal outweighs the second."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, generator=gen)
    y = (x[:, 0, :8].sum(1) > x[:, 0, 8:].sum(1)).long()
    cut = n * 3 // 4
    return tn.data.from_tensors((x[:cut], y[:cut]), (x[cut:], y[cut:]))
