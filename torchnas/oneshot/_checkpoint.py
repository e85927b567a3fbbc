"""Supernet checkpoints: a one-shot search that is stopped resumes from its last epoch.

After every epoch a method calls :meth:`SearchRun.save` (see ``_base.py``), which writes one
file (atomically: a temporary file, then a rename) with everything the rest of the search
depends on: the supernet's state (weights, architecture logits, batch-norm statistics), the
optimizers' and schedulers' states, the method's own parts (ENAS' controller, the position in
the architecture batches), the history, the elapsed time and every random stream (Python's, the
data order's, the Gumbel noise's, torch's). A search started again with the same file, method
settings, seed and space loads it and goes on from the next epoch: the final state is the one an
uninterrupted run reaches. A file written by other settings or another space is not used (a
warning says so) and is overwritten by the new search.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = ["Cycle", "load_checkpoint", "save_checkpoint"]

log = logging.getLogger("torchnas")

Batches = Callable[[torch.Generator], Iterator[tuple[torch.Tensor, torch.Tensor]]]


class Cycle:
    """Endless shuffled batches whose position can be saved and restored.

    Args:
        batches: ``batches(generator)`` gives one shuffled pass.
        seed: seed of this cycle's own generator (the order of every pass).
    """

    def __init__(self, batches: Batches, seed: int) -> None:
        self.batches = batches
        self.generator = torch.Generator().manual_seed(seed)
        self.start = self.generator.get_state()  # the generator when the current pass began
        self.pos = 0
        self.it: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    def __iter__(self) -> Cycle:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(2):  # a new pass at most once: an empty pass ends the cycle
            if self.it is None:
                self.start, self.pos = self.generator.get_state(), 0
                self.it = self.batches(self.generator)
            try:
                batch = next(self.it)
            except StopIteration:
                self.it = None
                continue
            self.pos += 1
            return batch
        raise ValueError("a pass over the data gave no batch of two samples or more")

    def state_dict(self) -> dict[str, Any]:
        return {"start": self.start, "pos": self.pos, "active": self.it is not None,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.it = None
        if not state["active"]:
            self.generator.set_state(state["generator"])
            return
        self.generator.set_state(state["start"])
        self.start, self.it = state["start"], self.batches(self.generator)
        for _ in range(state["pos"]):  # replay the pass's order up to where it stopped
            next(self.it)
        self.pos = state["pos"]


def save_checkpoint(path: Path, identity: dict[str, Any], epoch: int,
                    parts: dict[str, Any], values: dict[str, Any]) -> None:
    """Writes the checkpoint of ``epoch`` (atomically).

    Args:
        path: the file.
        identity: what must match for the file to be resumed (method, settings, seed, labels).
        epoch: the last finished epoch.
        parts: objects with ``state_dict()``: saved by their state.
        values: plain values (tensors, numbers, lists, dicts).
    """
    payload = {"identity": identity, "epoch": epoch, "values": values,
               "parts": {name: part.state_dict() for name, part in parts.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, identity: dict[str, Any], parts: dict[str, Any]
                    ) -> tuple[int, dict[str, Any]] | None:
    """Restores ``parts`` from ``path``; ``(epoch, values)``, or ``None`` when there is no
    usable checkpoint (no file, or one written by other settings: a warning says which)."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: start over, say so
        log.warning("supernet checkpoint %s unreadable (%s: %s); starting over", path,
                    type(exc).__name__, exc)
        return None
    saved = payload.get("identity", {})
    if saved != identity:
        differ = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        log.warning("supernet checkpoint %s was written by another search (differs in %s); "
                    "starting over", path, ", ".join(differ))
        return None
    missing = sorted(set(parts) - set(payload["parts"]))
    if missing:
        log.warning("supernet checkpoint %s lacks %s; starting over", path, missing)
        return None
    for name, part in parts.items():
        part.load_state_dict(payload["parts"][name])
    return int(payload["epoch"]), payload["values"]
