"""Why a search went as it did: importance, parallel coordinates, slices, the timeline, the
hypervolume over time, and chosen trials side by side.

Each plot draws on ``ax`` (a new figure's axes when ``None``) and returns it, like
:mod:`._plots`; :func:`compare_trials` is text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from torchnas.report._console import format_arch
from torchnas.report._importance import importance, trial_table
from torchnas.report._plots import _axes, _direction, _metric, _whole_ticks
from torchnas.study._hypervolume import default_reference, hypervolume
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["compare_trials", "hypervolume_history", "plot_comparison", "plot_hypervolume",
           "plot_importance", "plot_parallel", "plot_slice", "plot_timeline"]

#: Colours of trial states on the timeline.
STATE_COLOURS = {TrialState.COMPLETE: "tab:blue", TrialState.PRUNED: "tab:orange",
                 TrialState.FAILED: "tab:red", TrialState.INTERRUPTED: "tab:purple",
                 TrialState.RUNNING: "tab:green"}


def plot_importance(study: Study, metric: str | None = None, ax: Any = None,
                    seed: int = 0) -> Any:
    """Each decision's share of ``metric``'s variation (see :func:`importance`), as bars."""
    ax = _axes(ax)
    metric = _metric(study, metric)
    shares = importance(study, metric, seed=seed)
    names = list(shares)[::-1]
    ax.barh(names, [shares[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance for {metric} (share of its variation)")
    ax.set_title(f"{study.name}: decision importance")
    return ax


def _columns(study: Study, metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    labels, x, y = trial_table(study.trials, metric)
    if not len(y):
        raise ValueError(f"study {study.name!r} has no complete trial with a finite {metric!r}")
    return labels, x, y


def plot_parallel(study: Study, metric: str | None = None, ax: Any = None) -> Any:
    """Parallel coordinates: one axis per decision (scaled to [0, 1]; "absent" below 0 for a
    label a trial did not meet) and the metric last; a line per complete trial, coloured by
    ``metric`` (the best drawn on top)."""
    ax = _axes(ax)
    metric = _metric(study, metric)
    labels, x, y = _columns(study, metric)
    cols = np.column_stack([x, y[:, None]]) if len(labels) else y[:, None]
    scaled = np.empty_like(cols)
    for j in range(cols.shape[1]):
        c = cols[:, j]
        lo, hi = np.nanmin(c) if np.isfinite(c).any() else 0, np.nanmax(c) if np.isfinite(
            c).any() else 1
        scaled[:, j] = np.where(np.isnan(c), -0.15, (c - lo) / (hi - lo) if hi > lo else 0.5)
    better = y if _direction(study, metric) == "max" else -y
    norm = (better - better.min()) / (np.ptp(better) or 1.0)
    import matplotlib as mpl

    cmap = mpl.colormaps["viridis"]
    for i in np.argsort(norm):
        ax.plot(range(cols.shape[1]), scaled[i], color=cmap(norm[i]), alpha=0.6, lw=1)
    ax.set_xticks(range(cols.shape[1]), [*labels, metric], rotation=30, ha="right")
    ax.set_yticks([-0.15, 0, 1], ["absent", "low", "high"])
    ax.set_title(f"{study.name}: parallel coordinates (colour: {metric}, brighter is better)")
    return ax


def plot_slice(study: Study, label: str, metric: str | None = None, ax: Any = None) -> Any:
    """``metric`` of each complete trial against its value of decision ``label`` (trials that
    did not meet the label at "absent")."""
    ax = _axes(ax)
    metric = _metric(study, metric)
    labels, _, y = _columns(study, metric)
    if label not in labels:
        raise ValueError(f"study {study.name!r} has no decision {label!r} (decisions: {labels})")
    trials = [t for t in study.trials if t.state is TrialState.COMPLETE
              and math.isfinite(t.metrics.get(metric, math.nan))]
    values = [t.arch.get(label, "absent") for t in trials]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        ax.scatter(values, y, c=[t.number for t in trials], cmap="Blues", edgecolors="0.3")
        domain = next((t.domains.get(label) for t in trials if label in t.domains), None)
        if getattr(domain, "log", False):
            ax.set_xscale("log")
    else:
        keys = sorted({str(v) for v in values}, key=lambda k: (k == "absent", k))
        pos = [keys.index(str(v)) for v in values]
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(pos))
        ax.scatter(np.array(pos) + jitter, y, c=[t.number for t in trials], cmap="Blues",
                   edgecolors="0.3")
        ax.set_xticks(range(len(keys)), keys)
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.set_title(f"{study.name}: {metric} by {label} (darker: later trials)")
    return ax


def _lanes(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """A row per process, split where its trials overlap (a driver running several workers)."""
    rows: dict[int, int] = {}
    ends: list[tuple[str, float]] = []  # (owner, end) per row
    for t in sorted(trials, key=lambda t: (t.start or 0.0)):
        start = t.start or 0.0
        free = [r for r, (owner, end) in enumerate(ends) if owner == t.owner and end <= start]
        row = free[0] if free else len(ends)
        if not free:
            ends.append((t.owner, 0.0))
        ends[row] = (t.owner, t.end if t.end is not None else math.inf)
        rows[t.number] = row
    return rows


def plot_timeline(study: Study, ax: Any = None) -> Any:
    """Each trial as a bar from its start to its end, a row per worker, coloured by state."""
    ax = _axes(ax)
    trials = [t for t in study.trials if t.start is not None]
    if not trials:
        raise ValueError(f"study {study.name!r} has no started trial")
    t0 = min(t.start for t in trials if t.start is not None)
    last = max((t.end or t.start or t0) for t in trials)
    rows = _lanes(trials)
    for t in trials:
        start = (t.start or t0) - t0
        end = (t.end if t.end is not None else last) - t0
        ax.barh(rows[t.number], max(end - start, 1e-3), left=start, height=0.8,
                color=STATE_COLOURS.get(t.state, "0.5"), edgecolor="white")
    _whole_ticks(ax.yaxis)
    ax.set_xlabel("seconds since the first trial started")
    ax.set_ylabel("worker")
    from matplotlib.patches import Patch

    seen = {t.state for t in trials}
    ax.legend(handles=[Patch(color=c, label=s.value) for s, c in STATE_COLOURS.items()
                       if s in seen], loc="best", fontsize="small")
    ax.set_title(f"{study.name}: timeline")
    return ax


def hypervolume_history(study: Study, reference: Sequence[float] | None = None
                        ) -> tuple[list[int], list[float]]:
    """The hypervolume of the objectives' front after each finished trial (in order of their
    end), with ``reference`` (default: just past the worst of all the complete trials)."""
    names = list(study.objectives)
    directions = [study.objectives[n] for n in names]
    done = sorted((t for t in study.trials if t.state is TrialState.COMPLETE
                   and t.feasible is not False
                   and all(math.isfinite(t.metrics.get(n, math.nan)) for n in names)),
                  key=lambda t: (t.end or 0.0, t.number))
    if not done:
        raise ValueError(f"study {study.name!r} has no complete feasible trial")
    points = [[t.metrics[n] for n in names] for t in done]
    ref = list(reference) if reference is not None else default_reference(points, directions)
    return ([t.number for t in done],
            [hypervolume(points[:i + 1], ref, directions) for i in range(len(points))])


def plot_hypervolume(study: Study, ax: Any = None,
                     reference: Sequence[float] | None = None) -> Any:
    """The hypervolume of the front over the finished trials (see
    :func:`hypervolume_history`): how fast the search found good trade-offs."""
    ax = _axes(ax)
    _, volumes = hypervolume_history(study, reference)
    ax.step(range(1, len(volumes) + 1), volumes, where="post", color="tab:blue")
    _whole_ticks(ax.xaxis)
    ax.set_xlabel("complete trials")
    ax.set_ylabel(f"hypervolume ({', '.join(f'{k} {v}' for k, v in study.objectives.items())})")
    ax.set_title(f"{study.name}: hypervolume history")
    return ax


def _chosen(study: Study, numbers: Sequence[int]) -> list[FrozenTrial]:
    by_number = {t.number: t for t in study.trials}
    missing = [n for n in numbers if n not in by_number]
    if missing or len(numbers) < 2:
        raise ValueError(f"compare needs two or more trials of study {study.name!r} "
                         f"(it has 0..{len(by_number) - 1}); got {list(numbers)}")
    return [by_number[n] for n in numbers]


def compare_trials(study: Study, numbers: Sequence[int]) -> str:
    """Chosen trials side by side, as text: their decisions (``*`` marks a label on which they
    differ; ``-`` absent), then state, every metric and the epochs reported."""
    trials = _chosen(study, numbers)
    labels: list[str] = []
    for t in trials:
        labels += [k for k in t.arch if k not in labels]
    metrics = sorted({k for t in trials for k in t.metrics})
    rows = [["", *[f"trial {t.number}" for t in trials]]]
    for label in labels:
        values = [format_arch({label: t.arch[label]}, None).split("=", 1)[1]
                  if label in t.arch else "-" for t in trials]
        rows.append([("* " if len(set(values)) > 1 else "  ") + label, *values])
    rows.append(["  state", *[t.state.value for t in trials]])
    for name in metrics:
        rows.append(["  " + name, *[f"{t.metrics[name]:.4g}" if name in t.metrics else "-"
                                    for t in trials]])
    rows.append(["  epochs reported", *[str(len(t.intermediate)) for t in trials]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


def plot_comparison(study: Study, numbers: Sequence[int], metric: str | None = None,
                    fig: Any = None) -> Any:
    """Chosen trials side by side: their learning curves of ``metric`` (left) and their
    metrics, each scaled to the best of them (right). Returns the figure."""
    trials = _chosen(study, numbers)
    metric = _metric(study, metric)
    if fig is None:
        _axes(None)
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(10, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    for t in trials:
        steps = [s for s, m in t.intermediate if metric in m]
        if steps:
            left.plot(steps, [m[metric] for _, m in t.intermediate if metric in m],
                      marker=".", label=f"trial {t.number}")
        elif metric in t.metrics:
            left.axhline(t.metrics[metric], ls=":", label=f"trial {t.number} (final)")
    left.set_xlabel("step")
    left.set_ylabel(metric)
    left.legend(fontsize="small")
    left.set_title("curves")
    names = sorted({k for t in trials for k in t.metrics})
    width = 0.8 / len(trials)
    for i, t in enumerate(trials):
        scaled = []
        for name in names:
            top = max(abs(u.metrics.get(name, 0.0)) for u in trials) or 1.0
            scaled.append(t.metrics.get(name, 0.0) / top)
        right.bar(np.arange(len(names)) + i * width, scaled, width, label=f"trial {t.number}")
    right.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=30, ha="right")
    right.set_ylabel("value / largest of the trials")
    right.set_title("metrics and costs")
    right.legend(fontsize="small")
    fig.suptitle(f"{study.name}: trials {', '.join(str(t.number) for t in trials)}")
    return fig
