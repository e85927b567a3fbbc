"""Datasets for architecture search: the :class:`Data` bundle, built-in datasets, and data
read from array, CSV and image files.

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
from torchnas.data._files import from_files
from torchnas.data._folder import from_folder
from torchnas.data._sequences import Vocabulary, as_sequence, tokenize
from torchnas.data._tokens import pad_sequences, shift_tokens

__all__ = [
    "Data",
    "Vocabulary",
    "as_sequence",
    "available",
    "cache_dir",
    "from_datasets",
    "from_files",
    "from_folder",
    "from_tensors",
    "load",
    "pad_sequences",
    "register",
    "shift_tokens",
    "stratified_split",
    "tokenize",
    "validate",
]
