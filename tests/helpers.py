"""Pieces several test files share: a zero op, a small signal dataset, a plain Dataset, the
output types of a model's layers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

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


class Items(Dataset[Any]):
    """A plain Dataset over another (a TensorDataset), forcing the DataLoader path."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> Any:
        return self.inner[i]


def output_dtypes(model: nn.Module, layer: type[nn.Module]) -> list[torch.dtype]:
    """Records the output type of every ``layer`` of ``model`` in each training forward pass
    (training mode, gradients on): what mixed precision computes in."""
    seen: list[torch.dtype] = []

    def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        if module.training and torch.is_grad_enabled():
            seen.append(out.dtype)

    for m in model.modules():
        if isinstance(m, layer):
            m.register_forward_hook(hook)
    return seen


def quick_search(data: Any, **kw: Any) -> tn.ModelSearch:
    """A small random search of the ``mlp`` space (2 epochs, 3 trials, no progress bar)."""
    kw.setdefault("space", "mlp")
    kw.setdefault("trainer", tn.Trainer(epochs=2))
    kw.setdefault("trials", 3)
    kw.setdefault("strategy", "random")
    kw.setdefault("progress", False)
    return tn.ModelSearch(data=data, **kw)
