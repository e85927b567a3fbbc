"""Callbacks: what a search tells your code and the experiment trackers while it runs.

A :class:`Callback` has one method per event, each a no-op by default; a search calls them in
the driver (the process that runs ``optimize``), whatever the executor: reports of trials that
run in worker processes or Ray tasks reach the driver before any callback sees them.

- ``on_search_start(study)``: once, before the first trial of ``optimize`` (or
  ``ModelSearch.run``);
- ``on_trial_start(study, number)``: a trial was numbered (its decisions come as it runs);
- ``on_report(study, number, step, metrics)``: the trial reported (after the report is stored,
  before the scheduler decides);
- ``on_trial_end(study, trial)``: the trial finished; ``trial`` is its stored
  :class:`~torchnas.FrozenTrial` (architecture, metrics, state, every report);
- ``on_artifact(study, path)``: the search wrote a file that belongs with its results (the
  best model ``ModelSearch(export_to=...)`` exported);
- ``on_search_end(study)``: once, at the end, also when the search stops on an error or
  Ctrl-C.

A plain function ``fn(study, trial)`` is an ``on_trial_end`` callback. A callback that raises
loses nothing: the trial was stored before any callback ran. The search logs a warning naming
the callback and the error, and calls that callback no more in this search (a tracker whose
disk or server broke would fail again at every report), except ``on_search_end``, so that it
can close what it opened. ``KeyboardInterrupt`` and ``SystemExit`` propagate: they stop the
search as Ctrl-C does.

Trackers register by name (``@register("tensorboard")``), like strategies:
:func:`available`, :func:`create` and :func:`resolve` (a name, ``{"name": ..., **settings}``, a
:class:`Callback` or a function), so a YAML config says ``callbacks: [tensorboard, {name:
mlflow, tracking_uri: ...}]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Registry
from torchnas.study._trial import FrozenTrial

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = [
    "REGISTRY", "Callback", "Callbacks", "FunctionCallback", "available", "create", "register",
    "resolve",
]

log = logging.getLogger("torchnas")


class Callback:
    """Hooks a search calls in the driver; override the ones you need (see the module)."""

    name: ClassVar[str] = ""

    def on_search_start(self, study: Study) -> None:
        """Before the first trial."""

    def on_trial_start(self, study: Study, number: int) -> None:
        """Trial ``number`` was started (its decisions are made as it runs)."""

    def on_report(self, study: Study, number: int, step: int | float,
                  metrics: Mapping[str, float]) -> None:
        """Trial ``number`` reported ``metrics`` at ``step`` (an epoch, a percentage: an int
        when whole)."""

    def on_trial_end(self, study: Study, trial: FrozenTrial) -> None:
        """``trial`` finished (complete, pruned, failed or rejected) and is stored."""

    def on_artifact(self, study: Study, path: Path) -> None:
        """The search wrote ``path`` (the exported best model)."""

    def on_search_end(self, study: Study) -> None:
        """The search ended (also on an error or Ctrl-C)."""


class FunctionCallback(Callback):
    """A function ``fn(study, trial)`` called at each trial's end."""

    def __init__(self, fn: Callable[[Study, FrozenTrial], Any]) -> None:
        self.fn = fn

    def on_trial_end(self, study: Study, trial: FrozenTrial) -> None:
        self.fn(study, trial)

    def __repr__(self) -> str:
        return getattr(self.fn, "__qualname__", None) or repr(self.fn)


REGISTRY: Registry[Callback] = Registry("callback", Callback)
"""The named callbacks (``tn.callbacks.available()``)."""

register = REGISTRY.register
"""``@register("name")`` above a callback class: a callback of that name."""


def available() -> list[str]:
    """Names accepted by :func:`create`."""
    return REGISTRY.available()


def create(name: str, **settings: Any) -> Callback:
    """Builds the callback registered as ``name`` (:class:`ConfigError` naming a bad setting,
    or the package a tracker needs when it is not installed)."""
    return REGISTRY.create(name, **settings)


def resolve(spec: Any) -> Callback:
    """A callback from a name, ``{"name": ..., **settings}``, a :class:`Callback` or a function
    ``fn(study, trial)`` (called at each trial's end)."""
    if isinstance(spec, (str, Mapping, Callback)):
        return REGISTRY.resolve(spec)
    if callable(spec):
        return FunctionCallback(spec)
    raise ConfigError(f"a callback must be a name ({', '.join(available())}), "
                      f"{{'name': ..., ...}}, a tn.callbacks.Callback or a function "
                      f"fn(study, trial), got {spec!r}")


def _label(cb: Callback) -> str:
    """How messages name a callback: its registered name, its function, or its class."""
    if cb.name:
        return cb.name
    return repr(cb) if isinstance(cb, FunctionCallback) else type(cb).__name__


class Callbacks:
    """The callbacks of one search, called in order; one that raises is disabled (see the
    module). Built from anything :func:`resolve` takes (checked here, before the search).

    ``Study.optimize`` starts and ends the ones it builds from its ``callbacks``; given a
    ``Callbacks`` already started (``ModelSearch.run`` does so, to report its export before
    the end), it neither starts nor ends it.
    """

    def __init__(self, specs: Iterable[Any] = ()) -> None:
        if isinstance(specs, (str, Mapping, Callback)) or not isinstance(specs, Iterable):
            raise ConfigError(f"callbacks must be a list of callbacks, got {specs!r}")
        self.items: list[Callback] = [resolve(s) for s in specs]
        self.disabled: set[int] = set()
        self.running = False

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _call(self, hook: str, *args: Any, always: bool = False) -> None:
        for i, cb in enumerate(self.items):
            if i in self.disabled and not always:
                continue
            try:
                getattr(cb, hook)(*args)
            except Exception as exc:
                first = i not in self.disabled
                self.disabled.add(i)
                log.warning("callback %s raised in %s: %s: %s%s", _label(cb), hook,
                            type(exc).__name__, exc,
                            "; it is disabled for the rest of this search" if first else "",
                            exc_info=first)

    def search_start(self, study: Study) -> None:
        """Calls ``on_search_start``; the callbacks are running from now on."""
        self.running = True
        self._call("on_search_start", study)

    def trial_start(self, study: Study, number: int) -> None:
        self._call("on_trial_start", study, number)

    def report(self, study: Study, number: int, step: int | float,
               metrics: Mapping[str, float]) -> None:
        self._call("on_report", study, number, step, metrics)

    def trial_end(self, study: Study, trial: FrozenTrial) -> None:
        self._call("on_trial_end", study, trial)

    def artifact(self, study: Study, path: Path) -> None:
        self._call("on_artifact", study, Path(path))

    def search_end(self, study: Study) -> None:
        """Calls ``on_search_end`` of every callback, disabled ones too (to close files)."""
        self.running = False
        self._call("on_search_end", study, always=True)

    def __repr__(self) -> str:
        return f"Callbacks([{', '.join(_label(cb) for cb in self.items)}])"
