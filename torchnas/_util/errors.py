"""Exceptions shared by every room of torchnas."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "did_you_mean",
    "ConfigError",
    "DataError",
    "SpaceError",
    "StorageError",
    "TooManyFailures",
    "TorchnasError",
    "TrainFnError",
    "TrialPruned",
]


class TorchnasError(Exception):
    """Base class of the errors torchnas raises on purpose."""


class SpaceError(TorchnasError, ValueError):
    """A search space is malformed; the message names the label at fault."""


class DataError(TorchnasError, ValueError):
    """A dataset is malformed; the message names the split and the problem."""


class ConfigError(TorchnasError, ValueError):
    """A configuration (YAML or keyword arguments) is malformed; the message names the key."""


class StorageError(TorchnasError):
    """The storage failed (a full disk, a folder made read-only, a damaged file); the message
    names the file and the cause. What was recorded before it stays recorded."""


class TrainFnError(ConfigError):
    """A ``train_fn`` of :class:`~torchnas.ModelSearch` broke its contract (it returned no
    mapping of numbers, or one without an objective or constraint metric). No trial can do
    better, so the first trial that meets it stops the search with this error."""


class TooManyFailures(TorchnasError, RuntimeError):
    """A search stopped because too many trials in a row failed (the message has the last error)."""


class TrialPruned(TorchnasError):
    """Raised inside an objective to stop a trial early; it is recorded as PRUNED."""


def did_you_mean(word: object, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """``"; did you mean 'a' or 'b'?"`` naming the choices closest to ``word`` (``""``: none
    is close), for messages about an unknown name."""
    near = difflib.get_close_matches(str(word), list(choices), n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
