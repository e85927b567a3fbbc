"""Token sequences for the ``sequence`` and ``language_model`` tasks: padding sequences of
different lengths into one tensor, and next-token targets from a tensor of tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from torchnas._util.errors import DataError

__all__ = ["pad_sequences", "shift_tokens"]


def pad_sequences(sequences: Sequence[Sequence[int]], *, length: int | None = None,
                  pad_id: int = 0) -> torch.Tensor:
    """Right-pads (or cuts) token sequences into one ``(N, length)`` int64 tensor.

    Args:
        sequences: token ids, one sequence each (lists, arrays or 1-D tensors).
        length: the length of every row (default: the longest sequence's); longer sequences
            are cut at the end.
        pad_id: the padding token (``Trainer(task={"name": "sequence", "pad_id": ...})``
            reads lengths from it).

    Example:
        >>> pad_sequences([[5, 6, 7], [8]])
        tensor([[5, 6, 7],
                [8, 0, 0]])
    """
    rows = [torch.as_tensor(s, dtype=torch.long).reshape(-1) for s in sequences]
    size = max((len(r) for r in rows), default=0) if length is None else length
    out = torch.full((len(rows), size), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : min(len(row), size)] = row[:size]
    return out


def shift_tokens(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of a language model from ``(N, T + 1)`` tokens:
    ``(tokens[:, :-1], tokens[:, 1:])``, each ``(N, T)``.

    The bundle of the ``language_model`` task holds both (its items are ``(input, target)``
    pairs like every other task's), so a corpus is cut into windows of ``T + 1`` tokens and
    shifted once, here.

    Example:
        >>> x, y = shift_tokens(torch.tensor([[1, 2, 3, 4]]))
        >>> x.tolist(), y.tolist()
        ([[1, 2, 3]], [[2, 3, 4]])
    """
    tokens = torch.as_tensor(tokens)
    if tokens.dim() != 2 or tokens.shape[1] < 2:
        raise DataError(f"shift_tokens needs tokens shaped (N, T + 1) with T >= 1, got "
                        f"{tuple(tokens.shape)}")
    return tokens[:, :-1], tokens[:, 1:]
