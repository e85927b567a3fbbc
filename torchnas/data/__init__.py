"""Datasets for architecture search: the :class:`Data` bundle and built-in offline datasets.

Example:
    >>> import torch
    >>> from torchnas import data
    >>> x, y = torch.randn(40, 1, 8), torch.arange(40) % 4
    >>> bundle = data.from_tensors((x[:30], y[:30]), (x[30:], y[30:]))
    >>> bundle.input_shape, bundle.num_classes
    ((1, 8), 4)
"""

from __future__ import annotations

from torchnas.data._builtin import available, cache_dir, load, register, stratified_split
from torchnas.data._bundle import Data, from_datasets, from_tensors, validate

__all__ = [
    "Data",
    "available",
    "cache_dir",
    "from_datasets",
    "from_tensors",
    "load",
    "register",
    "stratified_split",
    "validate",
]
