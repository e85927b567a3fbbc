"""``tn.summary``: a model's layers, output shapes, parameters and FLOPs, Keras style.

The layer table comes from `torchinfo <https://github.com/TylerYep/torchinfo>`_ (a hooked forward
pass); the FLOPs total from :func:`torchnas.metrics.flops` (PyTorch's own counter, the number
searches constrain on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchnas._util.errors import ConfigError
from torchnas.data import Data
from torchnas.evaluation._cost import flops, params

__all__ = ["ModelSummary", "summary"]


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summary` measured; ``str()`` of it is the printed table.

    Attributes:
        table: the layer table (layer, output shape, parameters, multiply-adds).
        params: trainable parameters.
        total_params: all parameters (frozen ones too).
        flops: FLOPs of one forward pass per sample (a multiply-add counts 2).
        input_shape: the batch the model ran on.
        output_shape: what it returned.
    """

    table: str
    params: int
    total_params: int
    flops: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def __str__(self) -> str:
        return (f"{self.table}\nInput {list(self.input_shape)} -> output "
                f"{list(self.output_shape)}; trainable params: {self.params:,}; "
                f"FLOPs per sample: {self.flops:,.0f}")


def summary(model: nn.Module, data: Data | torch.Tensor | tuple[int, ...] | list[int], *,
            depth: int = 4) -> ModelSummary:
    """Summarises ``model`` on an input: every layer's output shape and parameters, the
    totals and the FLOPs of one sample (Keras's ``model.summary()``).

    Args:
        model: the model (left in the mode and on the device it was in).
        data: a :class:`~torchnas.data.Data` bundle (two training samples are used), a batch
            tensor, or the shape of one sample (a batch of one of zeros is used).
        depth: how many levels of nested modules the table shows.

    Example:
        >>> import torch, torchnas as tn
        >>> s = tn.summary(torch.nn.Linear(10, 3), (10,))
        >>> s.params, s.flops, s.output_shape
        (33, 60.0, (1, 3))
    """
    from torchinfo import summary as torchinfo_summary

    if not isinstance(model, nn.Module):
        raise ConfigError(f"summary: model must be a torch.nn.Module, got {type(model).__name__}")
    batch = _batch(data)
    first = next(model.parameters(), None)
    if first is not None:
        batch = batch.to(first.device)
    was_training = model.training
    try:
        stats = torchinfo_summary(
            model, input_data=[batch], depth=depth, verbose=0, mode="eval", device=None,
            col_names=("output_size", "num_params", "mult_adds"), row_settings=("var_names",))
        with torch.no_grad():
            out = model.eval()(batch)
    finally:
        model.train(was_training)
    table = re.sub(r"\(Units\.(\w)\w*\)", r"(\1)", str(stats))  # torchinfo's enum repr
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
    return ModelSummary(table=table, params=params(model),
                        total_params=sum(p.numel() for p in model.parameters()),
                        flops=flops(model, batch), input_shape=tuple(batch.shape),
                        output_shape=shape)


def _batch(data: Any) -> torch.Tensor:
    if isinstance(data, Data):
        n = min(2, len(data.train))  # type: ignore[arg-type]
        return torch.stack([torch.as_tensor(data.train[i][0]) for i in range(n)])
    if isinstance(data, torch.Tensor):
        if data.ndim == 0:
            raise ConfigError("summary: data must be a batch, not a scalar tensor")
        return data
    if isinstance(data, (tuple, list)) and all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in data):
        return torch.zeros(1, *data)
    raise ConfigError(f"summary: data must be a torchnas Data, a batch tensor or a sample "
                      f"shape such as (1, 28, 28), got {type(data).__name__}")
