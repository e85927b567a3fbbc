"""What a built-in space is created with for a dataset: its shape and outputs, and for the
sequence spaces the vocabulary and whether outputs are per token and causal."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import TensorDataset

from torchnas import data as tn_data
from torchnas.evaluation._tasks import input_dtype
from torchnas.evaluation._tokens import split_inputs
from torchnas.space import builtin as spaces

__all__ = ["builtin_space_kwargs"]

#: Items of a split that is not a tensor dataset scanned for the largest token id.
SCAN = 10_000


def builtin_space_kwargs(space: str, space_kwargs: Mapping[str, Any] | None,
                         dataset: tn_data.Data) -> dict[str, Any]:
    """``space_kwargs`` with what built-in space ``space`` needs of ``dataset`` filled in:
    ``input_shape``, ``num_classes`` (``num_outputs`` for float targets) and, for a space that
    takes ``vocab_size`` (the sequence spaces) on integer inputs (token ids): ``vocab_size``,
    the largest id of the inputs + 1 (of tensor splits; of the first :data:`SCAN` items of
    each other split), at least ``num_classes`` for a language model; ``per_token`` when the
    targets are per token (``target_shape`` ``(T,)``) and ``causal`` when they are the inputs
    shifted by one (a language model, ``tn.data.shift_tokens``)."""
    kwargs = dict(space_kwargs or {})
    kwargs.setdefault("input_shape", dataset.input_shape)
    kwargs.setdefault("num_classes", dataset.num_classes)
    if dataset.num_classes is None:  # regression
        kwargs.setdefault("num_outputs", dataset.num_outputs)
    takes = inspect.signature(spaces.get(space)).parameters
    dtype = input_dtype(dataset)
    if "vocab_size" not in takes or dtype.is_floating_point or dtype.is_complex or (
            dtype == torch.bool):
        return kwargs
    per_token = bool(dataset.target_shape) and dataset.num_classes is not None
    causal = per_token and _shifted(dataset.train)
    vocab = max(_largest_id(dataset) + 1, 2,
                dataset.num_classes if causal and dataset.num_classes else 0)
    kwargs.setdefault("vocab_size", vocab)
    if "per_token" in takes:
        kwargs.setdefault("per_token", per_token)
    if "causal" in takes:
        kwargs.setdefault("causal", causal)
    return kwargs


def _shifted(train: Any) -> bool:
    """Whether the first rows' targets are their inputs shifted by one token."""
    if not (isinstance(train, TensorDataset) and train.tensors[0].ndim == 2):
        return False
    x, y = train.tensors[0][:256], train.tensors[1][:256]
    return x.shape == y.shape and x.shape[1] > 1 and bool((y[:, :-1] == x[:, 1:]).all())


def _largest_id(dataset: tn_data.Data) -> int:
    high = 0
    for split in (dataset.train, dataset.val, dataset.test):
        if split is None:
            continue
        inputs = split_inputs(split)
        if inputs is None:  # a bounded scan of other datasets
            inputs = torch.stack([torch.as_tensor(split[i][0])
                                  for i in range(min(len(split), SCAN))])  # type: ignore[arg-type]
        if inputs.numel():
            high = max(high, int(inputs.max()))
    return high
