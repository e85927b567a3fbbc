"""Writing a found model to disk and reading it back.

``.pt`` files hold the weights, the architecture JSON and the space's name and arguments; they
are read with ``torch.load(weights_only=True)`` (nothing is unpickled), and the model is rebuilt
from the space: ``load_model(path)`` for built-in spaces, ``load_model(path, space=build)`` for
a space function of your own. The other formats load without torchnas and keep a dynamic batch
dimension: ``.onnx`` (ONNX through ``torch.onnx.export``'s exporter; ``pip install
torchnas[onnx]``; run it with onnxruntime), ``.pt2`` (a ``torch.export`` program:
``torch.export.load(path).module()``) and ``.ts`` / ``.torchscript`` (a TorchScript trace,
``torch.jit.load``; deprecated by torch 2.13 in favour of ``torch.export``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchnas._util.errors import ConfigError
from torchnas.space import HP, build
from torchnas.space import builtin as spaces

__all__ = ["FORMAT", "FORMATS", "check_path", "load_model", "read_export", "save_model"]

FORMAT = "torchnas-model/1"
#: File suffixes :func:`save_model` writes.
FORMATS = (".pt", ".pt2", ".onnx", ".ts", ".torchscript")


def check_path(path: str | Path) -> Path:
    """Checks, before any work, that :func:`save_model` can write ``path``: a known suffix
    (:data:`FORMATS`) and a place to write it (every existing parent a folder). Nothing is
    created.

    Raises:
        ConfigError: naming the path and the problem.
    """
    if not isinstance(path, (str, Path)) or not str(path):
        raise ConfigError(f"export: the path must be a non-empty string, got {path!r}")
    out = Path(path)
    if out.suffix not in FORMATS:
        hint = (f"; did you mean {out.suffix.lower()!r}?" if out.suffix.lower() in FORMATS
                else "")
        raise ConfigError(f"export {out}: unknown format {out.suffix!r}; use "
                          f"{', '.join(FORMATS)}{hint}")
    if out.is_dir():
        raise ConfigError(f"export {out}: is a folder; name the file to write")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"export {out}: {parent} is a file, not a folder")
            break
    return out


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
        path: ``*.pt`` (weights + architecture), or one of ``*.onnx``, ``*.pt2``, ``*.ts`` /
            ``*.torchscript`` (these need ``example_input``).
        model: the trained model.
        arch: its architecture dict.
        space: the built-in space's name, when it comes from one.
        space_kwargs: the space's arguments (input shape, classes, ...).
        meta: anything JSON-able to keep beside it (metrics, test accuracy).
        example_input: one batch, for the traced formats (its first dimension is the batch,
            exported as dynamic).

    Raises:
        ConfigError: for an unknown suffix or a path that cannot be a file (see
            :func:`check_path`), a model that is not a module, an ``arch`` (or ``meta``) that
            is not JSON-able, a traced format without ``example_input``, or ``.onnx``
            without the ``onnx`` and ``onnxscript`` packages.
    """
    out = check_path(path)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"export {out}: model must be a torch.nn.Module, "
                          f"got {type(model).__name__}")
    if out.suffix != ".pt":
        if example_input is None:
            raise ConfigError(f"export {out}: the {out.suffix} format needs example_input")
        out.parent.mkdir(parents=True, exist_ok=True)
        _save_traced(out, model.cpu().eval(), example_input.cpu())
        return out
    texts = {}
    for what, value in (("arch", arch), ("space_kwargs", space_kwargs), ("meta", meta)):
        try:
            texts[what] = json.dumps(dict(value or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"export {out}: {what} must be a JSON-able dict ({exc})") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "arch": texts["arch"],
        "space": space or "",
        "space_kwargs": texts["space_kwargs"],
        "meta": texts["meta"],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    torch.save(payload, out)
    return out


def _save_traced(out: Path, model: nn.Module, example: torch.Tensor) -> None:
    """Writes a program traced from ``model`` on ``example`` (batch dimension dynamic)."""
    if out.suffix in (".ts", ".torchscript"):
        with torch.no_grad():
            torch.jit.trace(model, example).save(str(out))
        return
    if len(example) < 2:  # a batch of one would be specialised to a constant
        example = torch.cat([example, example])
    dynamic = ({0: torch.export.Dim("batch", min=1)},)
    if out.suffix == ".pt2":
        torch.export.save(torch.export.export(model, (example,), dynamic_shapes=dynamic), out)
        return
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"export {out}: ONNX export needs the {module!r} package "
                              "(pip install 'torchnas[onnx]')") from None
    partial = out.with_name(out.name + ".partial")
    torch.onnx.export(model, (example,), str(partial), dynamo=True, dynamic_shapes=dynamic,
                      input_names=["input"], output_names=["logits"], external_data=False,
                      verbose=False)
    partial.replace(out)


def read_export(path: str | Path) -> dict[str, Any]:
    """The contents of a ``.pt`` export, decoded (``arch``, ``space``, ``state_dict``, ...)."""
    loaders = {".ts": "torch.jit.load", ".torchscript": "torch.jit.load",
               ".pt2": "torch.export.load", ".onnx": "onnxruntime.InferenceSession"}
    if Path(path).suffix in loaders:
        raise ConfigError(f"{path}: not a torchnas .pt export; load it with "
                          f"{loaders[Path(path).suffix]}")
    try:
        raw = torch.load(Path(path), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    except Exception as exc:  # not a torch file at all: torch raises many kinds
        raise ConfigError(f"{path}: not a torchnas model export ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
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
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{path}: the space rebuilt a {type(model).__name__}, not an nn.Module")
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(f"{path}: the saved weights do not fit the model this space builds "
                          f"for architecture {saved['arch']} (another space, or other "
                          f"space arguments?): {exc}") from None
    return model.eval()
