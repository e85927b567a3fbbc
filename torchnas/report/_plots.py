"""Plots of a study: the history of a metric, the Pareto front, the learning curves.

matplotlib is optional (``pip install 'torchnas[plot]'``): it is imported when a plot is drawn.
Each function draws on ``ax`` (a new figure's axes when ``None``) and returns the axes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from torchnas._util.errors import ConfigError
from torchnas.study._objectives import pareto_front, parse_objectives
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["plot_history", "plot_intermediate", "plot_pareto"]

#: The message of the ImportError raised when matplotlib is missing.
NEED_MATPLOTLIB = "plots need matplotlib: pip install 'torchnas[plot]'"
_GREY = "0.7"


def _axes(ax: Any) -> Any:
    """``ax``, or the axes of a new pyplot figure."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(NEED_MATPLOTLIB) from exc
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


def _whole_ticks(axis: Any) -> None:
    """Ticks at whole numbers only on ``axis`` (trial numbers, epochs)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _metric(study: Study, metric: str | None) -> str:
    """``metric`` (default: the first objective), checked against what the trials recorded."""
    if metric is None:
        return next(iter(study.objectives))
    if metric in study.objectives or metric in study.constraints:
        return metric
    seen = sorted({k for t in study.trials for k in t.metrics}
                  | {k for t in study.trials for _, m in t.intermediate for k in m})
    if metric not in seen:
        raise ValueError(f"study {study.name!r} has no metric {metric!r} (recorded: {seen})")
    return metric


def _direction(study: Study, name: str) -> str:
    """``max`` or ``min``: the objective's, else inferred from the metric's name."""
    if name in study.objectives:
        return study.objectives[name]
    try:
        return parse_objectives(name)[name]
    except ConfigError:
        raise ValueError(f"{name!r} is not an objective of study {study.name!r} and its name "
                         "does not tell whether larger or smaller is better") from None


def _finite(t: FrozenTrial, name: str) -> bool:
    return math.isfinite(t.value(name))


def plot_history(study: Study, metric: str | None = None, ax: Any = None) -> Any:
    """Each finished trial's ``metric`` against its number, and the best so far.

    Complete trials are dots (infeasible ones grey), pruned trials crosses at their last
    reported value, failed and rejected trials are left out. The best-so-far line follows the
    complete, feasible trials in the metric's direction.

    Args:
        study: the study to draw (read only).
        metric: the metric (default: the first objective).
        ax: matplotlib axes to draw on (default: a new figure).

    Returns:
        The matplotlib axes.
    """
    ax = _axes(ax)
    name = _metric(study, metric)
    trials = study.trials
    done = [t for t in trials if t.state is TrialState.COMPLETE and _finite(t, name)]
    pruned = [t for t in trials if t.state is TrialState.PRUNED and _finite(t, name)]
    colors = ["C0" if t.feasible else _GREY for t in done]
    ax.scatter([t.number for t in done], [t.value(name) for t in done], c=colors, s=20,
               label="complete", zorder=3)
    if pruned:
        ax.scatter([t.number for t in pruned], [t.value(name) for t in pruned], marker="x",
                   color="C1", s=20, label="pruned (last report)", zorder=3)
    better = max if _direction(study, name) == "max" else min
    xs: list[int] = []
    best: list[float] = []
    for t in done:
        if t.feasible:
            xs.append(t.number)
            best.append(t.value(name) if not best else better(best[-1], t.value(name)))
    if xs:
        last = max(t.number for t in trials)
        ax.plot([*xs, last], [*best, best[-1]], drawstyle="steps-post", color="C3",
                label="best so far (feasible)" if study.constraints else "best so far")
    ax.set_xlabel("trial")
    _whole_ticks(ax.xaxis)
    ax.set_ylabel(name)
    ax.set_title(f"{study.name}: {name} by trial")
    if done or pruned:
        ax.legend()
    return ax


def plot_pareto(study: Study, x: str | None = None, y: str | None = None, ax: Any = None
                ) -> Any:
    """Complete trials in the plane of two objectives, the non-dominated front highlighted.

    Feasible trials are dots, infeasible ones grey; the front (of the complete, feasible
    trials, in these two metrics) is drawn larger and joined by the step line bounding what it
    dominates.

    Args:
        study: the study to draw (read only).
        x, y: the two metrics (default: the first two objectives).
        ax: matplotlib axes to draw on (default: a new figure).

    Raises:
        ValueError: the study has fewer than two objectives and ``x`` or ``y`` is not given.
    """
    names = list(study.objectives)
    if (x is None or y is None) and len(names) < 2:
        raise ValueError(f"plot_pareto needs two objectives: study {study.name!r} has "
                         f"{names}; pass x= and y= (two recorded metrics)")
    ax = _axes(ax)
    x = _metric(study, x if x is not None else names[0])
    y = _metric(study, y if y is not None else next(n for n in names if n != x))
    directions = {x: _direction(study, x), y: _direction(study, y)}
    done = [t for t in study.trials
            if t.state is TrialState.COMPLETE and _finite(t, x) and _finite(t, y)]
    front = pareto_front([t for t in done if t.feasible], directions)
    on_front = {t.number for t in front}
    groups = (("trials", "C0", [t for t in done if t.feasible and t.number not in on_front]),
              ("infeasible", _GREY, [t for t in done if not t.feasible]))
    for label, color, group in groups:
        if group:
            ax.scatter([t.value(x) for t in group], [t.value(y) for t in group], color=color,
                       s=20, label=label, zorder=2)
    if front:
        front.sort(key=lambda t: t.value(x))
        fx, fy = [t.value(x) for t in front], [t.value(y) for t in front]
        step = "steps-post" if directions[x] == "min" else "steps-pre"
        ax.plot(fx, fy, drawstyle=step, color="C3", zorder=3)
        ax.scatter(fx, fy, color="C3", s=45, edgecolors="black", label="Pareto front",
                   zorder=4)
    ax.set_xlabel(f"{x} ({directions[x]})")
    ax.set_ylabel(f"{y} ({directions[y]})")
    ax.set_title(f"{study.name}: {len(front)} non-dominated of {len(done)} complete trials")
    if done:
        ax.legend()
    return ax


def plot_intermediate(study: Study, metric: str | None = None, ax: Any = None) -> Any:
    """The learning curve of every trial: its reported ``metric`` by step.

    This is what a scheduler saw. Complete trials are drawn solid, pruned ones faded with a
    cross where they were stopped, others (failed, running) faded and dotted. When every step
    is a whole number (epochs), the step axis is ticked at whole steps only.

    Args:
        study: the study to draw (read only).
        metric: the reported metric (default: the first objective).
        ax: matplotlib axes to draw on (default: a new figure).

    Returns:
        The matplotlib axes; each curve's ``gid`` is ``"trial N"``.
    """
    ax = _axes(ax)
    name = _metric(study, metric)
    labelled: set[TrialState] = set()
    whole = True  # every step drawn is a whole number: ticks at whole steps only
    for t in study.trials:
        points = [(s, m[name]) for s, m in t.intermediate
                  if name in m and math.isfinite(m[name])]
        if not points:
            continue
        if t.state is TrialState.COMPLETE:
            style: dict[str, Any] = {"color": "C0", "alpha": 0.9}
        elif t.state is TrialState.PRUNED:
            style = {"color": "C1", "alpha": 0.35, "marker": "x",
                     "markevery": [len(points) - 1]}
        else:
            style = {"color": _GREY, "alpha": 0.35, "linestyle": ":"}
        label = t.state.value if t.state not in labelled else "_nolegend_"
        labelled.add(t.state)
        steps, values = zip(*points, strict=True)
        whole = whole and all(float(s).is_integer() for s in steps)
        ax.plot(steps, values, label=label, gid=f"trial {t.number}", linewidth=1.2, **style)
    ax.set_xlabel("step")
    if whole:
        _whole_ticks(ax.xaxis)
    ax.set_ylabel(name)
    ax.set_title(f"{study.name}: {name} reported by step")
    if labelled:
        ax.legend()
    return ax
