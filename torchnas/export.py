"""Writing a found model to disk and reading it back.

``.pt`` files hold the weights, the architecture JSON and the space's name and arguments; they
are read with ``torch.load(weights_only=True)`` (nothing is unpickled), and the model is rebuilt
from the space: ``load_model(path)`` for built-in spaces, ``load_model(path, space=build)`` for
a space function of your own. ``.ts`` / ``.torchscript`` files are TorchScript traces that load
without torchnas (``torch.jit.load``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchnas._errors import ConfigError
from torchnas.space import HP, build
from torchnas.space import builtin as spaces

__all__ = ["FORMAT", "load_model", "read_export", "save_model"]

FORMAT = "torchnas-model/1"


def save_model(
    path: str | Path,
    model: nn.Module,
    arch: Mapping[str, Any],
    *,
    space: str | None = None,
    space_kwargs: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    example_input: torch.Tensor | None = None,
) -> Path:
    """Writes ``model`` and what rebuilds it.

    Args:
        path: ``*.pt`` (weights + architecture) or ``*.ts`` / ``*.torchscript`` (a trace; needs
            ``example_input``).
        model: the trained model.
        arch: its architecture dict.
        space: the built-in space's name, when it comes from one.
        space_kwargs: the space's arguments (input shape, classes, ...).
        meta: anything JSON-able to keep beside it (metrics, test accuracy).
        example_input: one batch, for TorchScript tracing.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix in (".ts", ".torchscript"):
        if example_input is None:
            raise ValueError("TorchScript export needs example_input")
        model = model.cpu().eval()
        with torch.no_grad():
            traced = torch.jit.trace(model, example_input.cpu())
        traced.save(str(out))
        return out
    if out.suffix != ".pt":
        raise ValueError(f"export {out}: unknown format {out.suffix!r}; use .pt, .ts, .torchscript")
    payload = {
        "format": FORMAT,
        "arch": json.dumps(dict(arch)),
        "space": space or "",
        "space_kwargs": json.dumps(dict(space_kwargs or {})),
        "meta": json.dumps(dict(meta or {})),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    torch.save(payload, out)
    return out


def read_export(path: str | Path) -> dict[str, Any]:
    """The contents of a ``.pt`` export, decoded (``arch``, ``space``, ``state_dict``, ...)."""
    if Path(path).suffix in (".ts", ".torchscript"):
        raise ConfigError(f"{path}: a TorchScript trace; load it with torch.jit.load")
    raw = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a torchnas model export (format {FORMAT})")
    return {
        "arch": json.loads(raw["arch"]),
        "space": raw["space"] or None,
        "space_kwargs": json.loads(raw["space_kwargs"]),
        "meta": json.loads(raw["meta"]),
        "state_dict": raw["state_dict"],
    }


def load_model(path: str | Path, space: Callable[[HP], nn.Module] | None = None,
               **space_kwargs: Any) -> nn.Module:
    """Rebuilds and loads a model written by :func:`save_model` (``.pt``).

    Args:
        path: the file.
        space: the space function, for models of a space of your own (built-in spaces are
            found by the name stored in the file).
        space_kwargs: arguments of the space; they override the stored ones.
    """
    saved = read_export(path)
    kwargs = {**saved["space_kwargs"], **space_kwargs}
    if space is None:
        if saved["space"] is None:
            raise ConfigError(f"{path}: the model comes from a space function of your own; "
                              "pass it: load_model(path, space=build)")
        space = spaces.create(saved["space"], **kwargs)
        model = build(space, saved["arch"])
    else:
        model = build(space, saved["arch"], **kwargs)
    model.load_state_dict(saved["state_dict"])
    return model.eval()
