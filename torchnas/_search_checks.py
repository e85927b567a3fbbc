"""What :class:`~torchnas.ModelSearch` checks before (and as) a search starts: that a model of
the space runs on the data, that objectives and constraints name metrics the trials report,
and that a reopened study was searched with this same space."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from torchnas import data as tn_data
from torchnas._errors import ConfigError, SpaceError
from torchnas.space import SpaceInfo, build
from torchnas.study import Study

__all__ = ["check_metric_names", "first_arch", "probe_model", "warn_if_another_space"]


def first_arch(info: SpaceInfo) -> dict[str, Any]:
    """Defaults for every label (the model :func:`probe_model` runs)."""
    return {label: i.domain.default for label, i in info.labels.items()}


def probe_model(space_fn: Callable[..., Any], info: SpaceInfo, bundle: tn_data.Data) -> None:
    """Builds the space's first architecture and runs it on two training samples.

    Raises:
        SpaceError: when the space returns no module, the model fails on the batch (its shape
            and type named), or its output is not ``(batch, num_classes)`` logits.
    """
    model = build(space_fn, first_arch(info), strict=False)
    if not isinstance(model, nn.Module):
        raise SpaceError(f"the space function returned {type(model).__name__}, not an "
                         f"nn.Module (decisions {first_arch(info)})")
    x = torch.stack([torch.as_tensor(bundle.train[i][0])
                     for i in range(min(2, len(bundle.train)))])  # type: ignore[arg-type]
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:
        raise SpaceError(
            f"a model of the space fails on a batch of {bundle.name!r} shaped "
            f"{tuple(x.shape)} ({x.dtype}): {type(exc).__name__}: {exc}"
            + ("" if x.is_floating_point() else
               "; the inputs are not floats: convert them, e.g. x.float() / 255")
        ) from exc
    if out.ndim != 2 or out.shape[1] != bundle.num_classes:
        raise SpaceError(
            f"the space's models output {tuple(out.shape)}; {bundle.name!r} needs "
            f"(batch, {bundle.num_classes}) logits"
        )


def check_metric_names(names: Sequence[str], known: Sequence[str]) -> None:
    """Raises :class:`ConfigError` for an objective or constraint no trial reports, with the
    closest names."""
    for name in names:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=2)
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise ConfigError(f"{name!r} is not a metric of the trials{hint} "
                              f"(they report: {', '.join(known)})")


def warn_if_another_space(study: Study, info: SpaceInfo) -> None:
    """Warns when a reopened study's trials were recorded from another space: a label with
    another domain, or one this space never meets (e.g. the build function was edited and
    the study's name, which defaults to space and data, stayed the same)."""
    changed: dict[str, tuple[str, str]] = {}
    unknown: set[str] = set()
    for trial in study.trials:
        for label, domain in trial.domains.items():
            now = info.labels.get(label)
            if now is None:
                unknown.add(label)
            elif now.domain != domain:
                changed.setdefault(label, (domain.describe(), now.domain.describe()))
    if not (changed or unknown):
        return
    parts = [f"{lb!r} was {old}, is {new}" for lb, (old, new) in sorted(changed.items())]
    if unknown:
        parts.append("labels this space never meets: " + ", ".join(map(repr, sorted(unknown))))
    message = (f"study {study.name!r} holds trials of another space ({'; '.join(parts)}); they "
               f"still count for the ranking and the strategy. Give a new name (or storage) "
               f"for a fresh study.")
    warnings.warn(message, UserWarning, stacklevel=3)
