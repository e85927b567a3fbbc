"""What a trial's outcome is, and how driver and workers talk: JSON messages, never pickles.

An objective runs in :func:`evaluate`, wherever it runs (inline or in a worker); the outcome is
a small JSON-able dict the driver turns into a trial record (:func:`torchnas.execution.conclude`).
Messages between a driver and its workers are JSON over a
:class:`multiprocessing.connection.Connection` (a pipe, or an authenticated socket for Ray), so
the driver never unpickles anything a worker sends.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from torchnas._util.errors import DataError, SpaceError, TorchnasError, TrainFnError, TrialPruned

__all__ = ["ExecutorError", "Outcome", "evaluate", "recv", "result_metrics", "send"]

#: Errors that no other architecture can avoid (the space, the data, the user's training
#: function is at fault): the first trial that raises one stops the search.
BAD_INPUT = (SpaceError, DataError, TrainFnError)
BAD_INPUT_NAMES = tuple(cls.__name__ for cls in BAD_INPUT)

Outcome = dict[str, Any]
"""What became of a trial, as JSON:

- ``{"kind": "result", "metrics": {...}}``, with ``"rejected": reason`` for a result mapping
  that carries a ``reason`` (refused before evaluation: ModelSearch's ``Rejected``);
- ``{"kind": "invalid", "error": ...}``: a result that is not a number;
- ``{"kind": "pruned", "error": ...}``;
- ``{"kind": "error", "type": ..., "message": ..., "bad_input": bool}``: the objective raised;
  ``bad_input`` for a :class:`SpaceError`, :class:`DataError` or :class:`TrainFnError` (the
  space, the data or the user's training function is at fault, not the architecture: the
  search stops);
- ``{"kind": "lost", "error": ...}``: the driver gave up on it (a timeout, a dead worker).
"""


class ExecutorError(TorchnasError, RuntimeError):
    """Workers cannot run: they die as they start, or the objective cannot reach them."""


class RemoteError(Exception):
    """An error raised in the driver on behalf of a worker's request (its type is named)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


def send(conn: Connection, message: Mapping[str, Any]) -> None:
    """Writes one JSON message."""
    conn.send_bytes(json.dumps(message).encode())


def recv(conn: Connection) -> dict[str, Any]:
    """Reads one JSON message (``EOFError`` when the other side is gone)."""
    message = json.loads(conn.recv_bytes())
    if not isinstance(message, dict):
        raise ValueError(f"malformed message: {message!r}")
    return message


def result_metrics(result: Any, first: str) -> dict[str, float]:
    """An objective's result as metrics: a number is the first objective ``first``.

    Raises:
        TypeError: naming the metric (or the result) that is not a number.
    """
    if result is None:
        return {}
    if isinstance(result, Mapping):
        out = {}
        for k, v in result.items():
            try:
                out[str(k)] = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"metric {k!r} is not a number: {v!r}") from None
        return out
    try:
        return {first: float(result)}
    except (TypeError, ValueError):
        raise TypeError(
            f"the objective returned {result!r}: expected a number or a dict of numbers"
        ) from None


def describe(exc: BaseException) -> tuple[str, str]:
    """An exception's type name and message (the type a worker's request failed with)."""
    if isinstance(exc, RemoteError):
        return exc.type_name, str(exc)
    return type(exc).__name__, str(exc)


def evaluate(objective: Callable[[Any], Any], hp: Any, first: str) -> Outcome:
    """Runs ``objective(hp)`` and returns its outcome; ``KeyboardInterrupt`` propagates.

    After a failure the memory it held (a model in the traceback's frames, CUDA blocks after an
    out-of-memory error) is released before the next trial.
    """
    outcome: Outcome | None = None
    try:
        result = objective(hp)
    except TrialPruned as exc:
        return {"kind": "pruned", "error": str(exc) or None}
    except Exception as exc:
        type_name, message = describe(exc)
        outcome = {"kind": "error", "type": type_name, "message": message,
                   "bad_input": isinstance(exc, BAD_INPUT) or type_name in BAD_INPUT_NAMES}
    if outcome is not None:
        release_memory()  # the exception (and the frames it held) is gone by now
        return outcome
    try:
        done: Outcome = {"kind": "result", "metrics": result_metrics(result, first)}
    except TypeError as exc:
        return {"kind": "invalid", "error": str(exc)}
    reason = getattr(result, "reason", None) if isinstance(result, Mapping) else None
    if isinstance(reason, str):  # refused before evaluation (ModelSearch's ``Rejected``)
        done["rejected"] = reason
    return done


def release_memory() -> None:
    """Collects garbage and hands cached CUDA blocks back (after a failed trial)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
