"""The study: one search's trials, recorded durably, and the loop that runs them.

:class:`Study` asks its strategy for architectures, runs the objective through an executor,
lets its scheduler stop trials early, and journals every event to storage; :func:`load_study`
reopens one (resume is replay). Beside it: the running :class:`Trial`, the frozen records
(:class:`FrozenTrial`, :class:`TrialState`), objectives and constraints, the hypervolume, and
which process owns a running trial.

The records (``_trial``, ``_objectives``, ``_hypervolume``, ``_process``) import nothing of the
study, so strategies, schedulers and storage use them; :class:`Study`, :class:`Trial` and
:func:`load_study` load on first use, so importing a record never imports the study loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torchnas.study._hypervolume import contributions, default_reference, hypervolume
from torchnas.study._objectives import (
    dominates,
    is_feasible,
    nondominated_fronts,
    pareto_front,
    parse_constraints,
    parse_objectives,
)
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study._live import Trial
    from torchnas.study._study import Study, load_study

__all__ = [
    "FrozenTrial",
    "Study",
    "Trial",
    "TrialState",
    "contributions",
    "default_reference",
    "dominates",
    "hypervolume",
    "is_feasible",
    "load_study",
    "nondominated_fronts",
    "pareto_front",
    "parse_constraints",
    "parse_objectives",
]

_LAZY = {"Study": "_study", "load_study": "_study", "Trial": "_live"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"torchnas.study.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'torchnas.study' has no attribute {name!r}")
