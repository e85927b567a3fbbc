"""Token ids against the model's embedding: a clear :class:`DataError` naming the split, the
sample and the embedding's size, before an id past the table reaches ``nn.Embedding`` (where it
is an ``IndexError`` on the CPU and a device-side assert, fatal to the process, on CUDA)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from torchnas._util.errors import DataError

__all__ = ["check_data_tokens", "check_token_ids", "input_embedding", "split_inputs"]


def input_embedding(model: nn.Module) -> tuple[str, int] | None:
    """``(name, num_embeddings)`` of the model's first ``nn.Embedding`` or ``nn.EmbeddingBag``
    in module order (the one that reads the token ids), or ``None``."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            return name or type(module).__name__, int(module.num_embeddings)
    return None


def check_token_ids(x: torch.Tensor, embedding: tuple[str, int] | None, split: str, *,
                    batch: bool = False) -> None:
    """Raises :class:`DataError` when integer inputs ``x`` hold an id outside the embedding.

    Args:
        x: inputs of a split (or, with ``batch``, of one batch read from a dataset).
        embedding: what :func:`input_embedding` found (``None``: nothing is checked).
        split: the split's name.
        batch: ``x`` is a batch: its positions are not the split's sample indices.
    """
    if embedding is None or x.is_floating_point() or x.is_complex() or x.numel() == 0:
        return
    name, size = embedding
    low, high = (int(v) for v in torch.aminmax(x))
    if low >= 0 and high < size:
        return
    bad = int(high if high >= size else low)
    where = (x == bad).reshape(len(x), -1).any(1).nonzero()
    index = int(where[0]) if len(where) else 0
    sample = "in a batch read from the dataset" if batch else f"at sample {index}"
    raise DataError(
        f"{split} split: token id {bad} {sample} is outside the model's embedding "
        f"({name!r}: nn.Embedding of {size} entries, ids 0 to {size - 1}); give the embedding "
        f"more entries (the vocabulary size) or map the ids into [0, {size - 1}]")


def split_inputs(ds: Dataset[Any]) -> torch.Tensor | None:
    """All inputs of a ``TensorDataset`` (or a Subset of one), else ``None``."""
    if isinstance(ds, TensorDataset):
        return ds.tensors[0]
    if isinstance(ds, Subset):
        inner = split_inputs(ds.dataset)
        return None if inner is None else inner[torch.as_tensor(list(ds.indices),
                                                                dtype=torch.long)]
    return None


def check_data_tokens(model: nn.Module, data: Any) -> None:
    """:func:`check_token_ids` on every tensor split of ``data`` (a
    :class:`~torchnas.data.Data`) against ``model``'s input embedding (other splits are
    checked batch by batch as the Trainer reads them)."""
    embedding = input_embedding(model)
    if embedding is None:
        return
    for split in ("train", "val", "test"):
        ds = getattr(data, split)
        x = None if ds is None else split_inputs(ds)
        if x is not None:
            check_token_ids(x, embedding, split)
