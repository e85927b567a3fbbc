"""Batch norm in a weight-sharing supernet: recalibration (SPOS) and batch statistics (ENAS).

Running statistics gathered while random paths trained fit no single path; a path is scored
either after re-estimating them on a few batches along that path, or with each batch's own
statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["batch_stats", "recalibrate_bn"]


def recalibrate_bn(net: nn.Module, batches: Iterable[tuple[torch.Tensor, Any]],
                   steps: int) -> None:
    """Resets every batch norm's running statistics and re-estimates them (exact average) on
    ``steps`` batches of the current path (SPOS: inherited weights, fresh statistics)."""
    norms = [m for m in net.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was = net.training
    net.train()
    with torch.no_grad():
        for _, (x, _y) in zip(range(steps), batches, strict=False):
            net(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    net.train(was)


@contextlib.contextmanager
def batch_stats(net: nn.Module, batch: bool = True) -> Iterator[None]:
    """Eval mode without gradients; with ``batch``, batch norms use the batch's statistics
    (for paths whose running statistics were never estimated alone)."""
    was = net.training
    net.eval()
    for m in net.modules():
        if batch and isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    try:
        with torch.no_grad():
            yield
    finally:
        net.train(was)
