"""Files kept beside a study: the trained weights of its best trials.

A study stored in ``runs/mnist.db`` keeps them in ``runs/mnist.artifacts/<study>/``: per trial a
``trial-<n>.pt`` (a ``state_dict``, read back with ``torch.load(weights_only=True)``: nothing is
unpickled) and a ``trial-<n>.json`` (what rebuilds the model and its summary). Writes go to a
``.partial`` file first, then are renamed: a kill never leaves half a file. A study in memory
keeps them in a temporary folder removed when the process ends.

Every trial also gets a ``trial-<n>.graph.json``: its network's graph (layers, output shapes,
parameters and how they connect, see :func:`torchnas.evaluation._graph.model_graph`), captured
when it ran. It is small, plain JSON, and kept when the trial's weights are dropped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["ArtifactStore", "artifacts_dir"]

_NAME = re.compile(r"trial-(\d+)\.pt")


def artifacts_dir(storage: str | os.PathLike[str] | None, study: str) -> Path | None:
    """The folder of a study's artifacts when its storage is an SQLite file, else ``None``."""
    if storage is None:
        return None
    text = os.fspath(storage)
    if text == ":memory:" or (text.startswith("sqlite://") and text.endswith(":memory:")):
        return None
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite:///")
        text = "/" + text[1:] if text.startswith("/") else text
    db = Path(text)
    safe = re.sub(r"[^\w.-]", "_", study)  # a folder name, whatever the study's
    return db.with_name(f"{db.stem}.artifacts") / safe


class ArtifactStore:
    """The trained weights of a study's trials, one file each.

    Args:
        root: the folder (created when first written); ``None``: a temporary folder, removed
            when this object is garbage-collected or the process ends.
    """

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        if root is None:
            root = tempfile.mkdtemp(prefix="torchnas-artifacts-")
            weakref.finalize(self, shutil.rmtree, root, True)
        self.root = Path(root)

    def __getstate__(self) -> dict[str, Any]:  # workers write to the same folder
        return {"root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root = state["root"]

    def weights_path(self, number: int) -> Path:
        return self.root / f"trial-{number}.pt"

    def save(self, number: int, model: torch.nn.Module, meta: Mapping[str, Any]) -> Path:
        """Writes trial ``number``'s weights (on the CPU) and ``meta`` (JSON-able)."""
        self.root.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
        out = self.weights_path(number)
        _atomic(out, lambda p: torch.save(state, p))
        _atomic(out.with_suffix(".json"),
                lambda p: p.write_text(json.dumps(dict(meta), default=str), encoding="utf-8"))
        return out

    def graph_path(self, number: int) -> Path:
        return self.root / f"trial-{number}.graph.json"

    def save_graph(self, number: int, graph: Mapping[str, Any]) -> Path:
        """Writes trial ``number``'s model graph (JSON; kept when its weights are dropped)."""
        self.root.mkdir(parents=True, exist_ok=True)
        out = self.graph_path(number)
        text = json.dumps(dict(graph), default=str)
        _atomic(out, lambda p: p.write_text(text, encoding="utf-8"))
        return out

    def load_graph(self, number: int) -> dict[str, Any] | None:
        """Trial ``number``'s model graph, or ``None`` when none was recorded (or it is not
        a graph: a file that is not a JSON object with ``nodes`` and ``edges``)."""
        try:
            loaded = json.loads(self.graph_path(number).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("nodes"), list) \
                or not isinstance(loaded.get("edges"), list):
            return None
        return loaded

    def has(self, number: int) -> bool:
        return self.weights_path(number).is_file()

    def load_weights(self, number: int) -> dict[str, torch.Tensor]:
        """Trial ``number``'s ``state_dict`` (tensors only; a file holding anything else is
        refused by ``torch.load(weights_only=True)``)."""
        path = self.weights_path(number)
        if not path.is_file():
            raise FileNotFoundError(f"no kept weights for trial {number} ({path})")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not a state_dict")
        return state

    def meta(self, number: int) -> dict[str, Any]:
        """What :meth:`save` wrote beside trial ``number``'s weights (``{}`` when absent)."""
        path = self.weights_path(number).with_suffix(".json")
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def update_meta(self, number: int, extra: Mapping[str, Any]) -> None:
        """Adds ``extra`` to trial ``number``'s meta (when its weights are here)."""
        if self.has(number):
            meta = {**self.meta(number), **extra}
            _atomic(self.weights_path(number).with_suffix(".json"),
                    lambda p: p.write_text(json.dumps(meta, default=str), encoding="utf-8"))

    def kept(self) -> list[int]:
        """Trial numbers with weights here, ascending."""
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir()
                      if (m := _NAME.fullmatch(p.name)))

    def discard(self, numbers: Iterable[int]) -> None:
        """Removes the weights files of trials ``numbers`` (those absent are skipped; their
        graphs stay)."""
        for n in numbers:
            for path in (self.weights_path(n), self.weights_path(n).with_suffix(".json")):
                path.unlink(missing_ok=True)


def _atomic(path: Path, write: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)
