"""Every trial of a study, as a table to read or as JSON for other programs."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from torchnas._util.table import format_metric, format_table
from torchnas.report._console import format_arch
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["format_trials"]

#: Characters of the architecture or error the narrow table shows.
NARROW = 50


def format_trials(study: Study, *, state: TrialState | str | None = None, wide: bool = False,
                  as_json: bool = False) -> str:
    """The study's trials, by number: a table, or a JSON list.

    The table has the trial's number, state, the objectives and constrained metrics, its
    seconds, and its architecture (its error instead, when it has one), both cut to 50
    characters. ``wide`` writes them in full: the whole architecture on the row and, under it,
    the whole error of a trial that has one.

    The JSON list holds one object per trial: ``number``, ``state``, ``metrics``, ``arch``,
    ``key``, ``feasible``, ``error``, ``budget``, ``attempts``, ``start``, ``end`` (seconds
    since the epoch), ``duration`` (seconds) and ``intermediate`` (``{"step", "metrics"}``
    reports in order). Values that are not finite numbers (NaN, infinities) are ``null``, so
    that any JSON reader takes it.

    Args:
        study: the study to read.
        state: only the trials in this state (a :class:`TrialState` or its value).
        wide: the table with architectures and errors in full.
        as_json: JSON instead of a table (``wide`` is then irrelevant).

    Returns:
        The text, without a final newline.

    Raises:
        ValueError: ``state`` is not a trial state.
    """
    wanted = None if state is None else TrialState(state)
    trials = [t for t in study.trials if wanted is None or t.state is wanted]
    if as_json:
        return json.dumps([_record(t) for t in trials], indent=2, allow_nan=False, default=str)
    cols = [*study.objectives, *(c for c in study.constraints if c not in study.objectives)]
    rows = []
    for t in trials:
        values = [format_metric(t.value(c), c) for c in cols]
        seconds = "-" if t.duration is None else f"{t.duration:.1f}"
        if wide:
            note = format_arch(t.arch, None) + (f"\nerror: {t.error}" if t.error else "")
        else:
            note = _cut(t.error.replace("\n", " ")) if t.error else format_arch(t.arch, NARROW)
        rows.append([str(t.number), t.state.value, *values, seconds, note])
    last = "architecture" if wide else "architecture / error"
    return format_table(["trial", "state", *cols, "seconds", last], rows)


def _cut(text: str) -> str:
    return text if len(text) <= NARROW else text[: NARROW - 3] + "..."


def _finite(v: Any) -> Any:
    """``v``, with ``None`` for a float that is not finite (JSON has no NaN)."""
    return v if not isinstance(v, float) or math.isfinite(v) else None


def _metrics(metrics: dict[str, float]) -> dict[str, Any]:
    return {k: _finite(v) for k, v in metrics.items()}


def _record(t: FrozenTrial) -> dict[str, Any]:
    """One trial as a JSON-able dict."""
    return {
        "number": t.number, "state": t.state.value, "metrics": _metrics(t.metrics),
        "arch": t.arch, "key": t.key, "feasible": t.feasible, "error": t.error,
        "budget": _finite(t.budget), "attempts": t.attempts, "start": t.start, "end": t.end,
        "duration": t.duration,
        "intermediate": [{"step": s, "metrics": _metrics(m)} for s, m in t.intermediate],
    }
