"""One figure of a study by kind: what ``torchnas plot --kind ...`` draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torchnas.report import _analysis, _plots

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["KINDS", "draw"]

#: The kinds of plot, and what each shows (the CLI's help).
KINDS = {
    "history": "a metric by trial, and the best so far",
    "pareto": "the front of two metrics (--metric X,Y)",
    "curves": "the learning curves a scheduler saw",
    "importance": "each decision's share of a metric's variation",
    "parallel": "parallel coordinates of the decisions, coloured by a metric",
    "slice": "a metric against one decision (--label L; default: the most important one)",
    "timeline": "the trials over time, a row per worker, coloured by state",
    "hypervolume": "the hypervolume of the objectives' front over the trials",
    "compare": "chosen trials side by side: curves, metrics and costs (--trials 3,7)",
    "arch": "a trial's network as a graph (--trial N)",
}


def draw(study: Study, kind: str, *, metric: str | None = None, label: str | None = None,
         trials: Sequence[int] = (), trial: int | None = None) -> Any:
    """A new matplotlib figure (drawn with Agg when saved) of ``kind`` (see :data:`KINDS`).

    Raises:
        ValueError: naming what the study lacks for that kind (a metric, a label, trials).
    """
    from matplotlib.figure import Figure

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    if kind == "compare":
        if len(trials) < 2:
            raise ValueError("--kind compare takes --trials with two or more numbers, e.g. 3,7")
        return _analysis.plot_comparison(study, list(trials), metric,
                                         fig=Figure(figsize=(10, 4.5), layout="constrained"))
    if kind == "arch":
        if trial is None:
            raise ValueError("--kind arch takes --trial N (the trial whose network to draw)")
        from torchnas.report._arch import arch_figsize, arch_graph, plot_arch

        graph = arch_graph(study, trial)
        fig = Figure(figsize=arch_figsize(graph), layout="constrained")
        plot_arch(graph, ax=fig.subplots(), title=f"{study.name}: trial {trial}")
        return fig
    fig = Figure(figsize=(9, 5) if kind == "parallel" else (7, 4.5), layout="constrained")
    ax = fig.subplots()
    if kind == "pareto":
        xy = metric.split(",") if metric else [None, None]
        if len(xy) != 2:
            raise ValueError(f"--kind pareto takes --metric X,Y, got {metric!r}")
        if None in xy and len(study.objectives) < 2:
            raise ValueError(f"--kind pareto needs two metrics: study {study.name!r} has the "
                             f"objectives {list(study.objectives)}; pass --metric X,Y (two "
                             f"recorded metrics)")
        _plots.plot_pareto(study, xy[0], xy[1], ax=ax)
    elif kind in ("history", "curves"):
        (_plots.plot_history if kind == "history" else _plots.plot_intermediate)(
            study, metric, ax=ax)
    elif kind == "importance":
        _analysis.plot_importance(study, metric, ax=ax)
    elif kind == "parallel":
        _analysis.plot_parallel(study, metric, ax=ax)
    elif kind == "slice":
        from torchnas.report._importance import importance

        _analysis.plot_slice(study, label or next(iter(importance(study, metric))), metric,
                             ax=ax)
    elif kind == "timeline":
        _analysis.plot_timeline(study, ax=ax)
    else:  # hypervolume
        _analysis.plot_hypervolume(study, ax=ax)
    return fig
