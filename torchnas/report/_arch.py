"""A trial's network drawn as a graph: its layers, output shapes and parameters, and for cell and
multi-branch spaces the DAG of chosen operations and the inputs they join.

The graph was captured when the trial ran (:func:`torchnas.evaluation._graph.model_graph`) and
stored beside the study (``runs/x.artifacts/<study>/trial-<n>.graph.json``): drawing it runs
no code of the space. :func:`arch_graph` reads it, :func:`plot_arch` draws it with matplotlib
(optional: ``pip install 'torchnas[plot]'``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torchnas.storage._artifacts import ArtifactStore, artifacts_dir

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["arch_figsize", "arch_graph", "arch_layout", "plot_arch"]

NEED_MATPLOTLIB = "plots need matplotlib: pip install 'torchnas[plot]'"

#: Nodes beyond which the labels get smaller.
READABLE_NODES = 60

_COLORS = {"input": "#e8e8e8", "conv": "#cfe3f7", "linear": "#d9ecd0", "norm": "#f3e6c6",
           "pool": "#e6dcf2", "join": "#f7d4d4", "other": "#f5f5f5"}


def arch_graph(source: Study | ArtifactStore | Any, number: int) -> dict[str, Any]:
    """Trial ``number``'s model graph, as recorded when it ran.

    Args:
        source: a study stored in an SQLite file (``tn.load_study(db)``), the
            :class:`~torchnas.storage._artifacts.ArtifactStore` of its artifacts, or anything
            with such a store as its ``artifacts`` (a :class:`~torchnas.ModelSearch`).
        number: the trial's number.

    Raises:
        ValueError: when the study has no such trial, keeps no artifacts (a study in memory),
            or the trial has no recorded graph.
    """
    store, name = _store(source)
    trials = getattr(source, "trials", None)
    if trials is not None and number not in {t.number for t in trials}:
        raise ValueError(f"study {name!r} has no trial {number} (trials: "
                         f"{_span([t.number for t in trials])})")
    graph = store.load_graph(number)
    if graph is None:
        raise ValueError(
            f"trial {number}{f' of study {name!r}' if name else ''} has no recorded graph (it "
            f"ran with a torchnas that recorded none; or a model search did not build "
            f"its model (a plain Study objective, a one-shot method); or its model could not "
            f"be run on one training sample)")
    return graph


def arch_layout(graph: Mapping[str, Any]) -> dict[int, tuple[int, float]]:
    """``{node id: (row, position in row)}``: a node's row is its longest path from the
    inputs (inputs and other sourceless nodes on row 0); within a row, nodes are ordered by
    the mean position of their inputs (fewer crossing edges) and spread around the middle."""
    ids = [int(n["id"]) for n in graph["nodes"]]
    known = set(ids)
    parents: dict[int, list[int]] = {i: [] for i in ids}
    children: dict[int, list[int]] = {i: [] for i in ids}
    for src, dst in graph["edges"]:
        if src in known and dst in known and src != dst:
            parents[dst].append(src)
            children[src].append(dst)
    # longest path, in topological order (Kahn); nodes of a cycle (never from a capture) last
    waiting = {i: len(parents[i]) for i in ids}
    order = [i for i in ids if not waiting[i]]
    row = {i: 0 for i in ids}
    k = 0
    while k < len(order):
        node = order[k]
        k += 1
        for child in children[node]:
            row[child] = max(row[child], row[node] + 1)
            waiting[child] -= 1
            if not waiting[child]:
                order.append(child)
    done = set(order)
    for i in ids:
        if i not in done:
            row[i] = max([row[p] + 1 for p in parents[i] if p in done] or [0])
    rows: dict[int, list[int]] = {}
    for i in ids:
        rows.setdefault(row[i], []).append(i)
    width = max((len(r) for r in rows.values()), default=1)
    pos: dict[int, tuple[int, float]] = {}
    for r in sorted(rows):
        members = rows[r]
        if r:
            def barycenter(i: int) -> float:
                placed = [pos[p][1] for p in parents[i] if p in pos]
                return sum(placed) / len(placed) if placed else (width - 1) / 2
            members = sorted(members, key=lambda i: (barycenter(i), i))
        start = (width - len(members)) / 2
        for j, i in enumerate(members):
            pos[i] = (r, start + j)
    return pos


def arch_figsize(graph: Mapping[str, Any]) -> tuple[float, float]:
    """A figure size (inches) at which :func:`plot_arch` draws ``graph`` legibly."""
    pos = arch_layout(graph)
    rows = 1 + max((r for r, _ in pos.values()), default=0)
    width = 1 + max((x for _, x in pos.values()), default=0)
    return (min(40.0, max(4.0, 2.1 * width + 0.6)), min(120.0, max(2.0, 0.72 * rows + 0.8)))


def plot_arch(source: Mapping[str, Any] | Study | ArtifactStore | Any, number: int | None = None,
              *, ax: Any = None, title: str | None = None) -> Any:
    """Draws a trial's network: one box per node (its label, output shape without the batch
    dimension, and parameters), rows top to bottom by depth from the inputs, an arrow per
    edge.

    Args:
        source: a graph (a dict from :func:`arch_graph` or the dashboard's
            ``/api/trials/<n>/graph``), or a study / store to read trial ``number``'s from.
        number: the trial, when ``source`` is not a graph.
        ax: the axes to draw on; ``None``: a new bare :class:`matplotlib.figure.Figure` sized
            by :func:`arch_figsize` (no pyplot state: ``ax.figure.savefig(path)``).
        title: the axes' title (default: ``trial N`` when read from a study; a graph's
            ``note`` is added below it).

    Returns:
        The axes; the node boxes are its patches with a ``gid`` of ``node-<id>``, the arrows
        those with ``edge-<src>-<dst>``.
    """
    if isinstance(source, Mapping):
        graph: Mapping[str, Any] = source
    else:
        if number is None:
            raise ValueError("plot_arch: pass the trial's number with a study")
        graph = arch_graph(source, number)
        if title is None:
            title = f"trial {number}"
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    except ImportError as exc:
        raise ImportError(NEED_MATPLOTLIB) from exc
    if ax is None:
        ax = Figure(figsize=arch_figsize(graph), layout="constrained").subplots()
    pos = arch_layout(graph)
    nodes = {int(n["id"]): n for n in graph["nodes"]}
    rows = 1 + max((r for r, _ in pos.values()), default=0)
    width = 1 + max((x for _, x in pos.values()), default=0)
    box_w, box_h = 0.9, 0.62  # in slots (x) and rows (y)

    # a font that fits a box at this axes' size
    bbox = ax.get_position()
    fig_w, fig_h = ax.figure.get_size_inches()
    slot_in = max(0.05, bbox.width * fig_w / width)
    row_in = max(0.05, bbox.height * fig_h / rows)
    size = max(2.5, min(8.0, slot_in * 72 * box_w / (0.62 * 24), row_in * 72 * box_h / 3.4))
    if len(nodes) > READABLE_NODES:
        size = max(2.5, size * 0.8)

    def xy(i: int) -> tuple[float, float]:
        r, x = pos[i]
        return x, -float(r)

    for src, dst in graph["edges"]:
        if src not in pos or dst not in pos or src == dst:
            continue
        (x0, y0), (x1, y1) = xy(src), xy(dst)
        span = pos[dst][0] - pos[src][0]
        bend = 0.0 if span <= 1 or x0 != x1 else 0.35  # a skip over boxes in its column
        arrow = FancyArrowPatch((x0, y0 - box_h / 2), (x1, y1 + box_h / 2), arrowstyle="-|>",
                                mutation_scale=max(5.0, size * 1.2), linewidth=0.8,
                                color="0.45", connectionstyle=f"arc3,rad={bend}",
                                shrinkA=0, shrinkB=0, zorder=1)
        arrow.set_gid(f"edge-{src}-{dst}")
        ax.add_patch(arrow)
    for i, node in nodes.items():
        x, y = xy(i)
        box = FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                             boxstyle="round,pad=0,rounding_size=0.08", linewidth=0.8,
                             edgecolor="0.35", facecolor=_COLORS[_family(node)], zorder=2)
        box.set_gid(f"node-{i}")
        ax.add_patch(box)
        ax.text(x, y + box_h * 0.14, _clip(str(node.get("label") or node.get("kind")), 26),
                ha="center", va="center", fontsize=size, fontweight="bold", zorder=3)
        detail = " · ".join(p for p in (_shape_text(node.get("shape")),
                                        _params_text(node.get("params"))) if p)
        if detail:
            ax.text(x, y - box_h * 0.2, _clip(detail, 30), ha="center", va="center",
                    fontsize=size * 0.85, color="0.25", zorder=3)
    ax.set_xlim(-0.55, width - 0.45)
    ax.set_ylim(-(rows - 1) - 0.5, 0.5)
    ax.set_axis_off()
    heading = [t for t in (title, _summary(graph)) if t]
    if heading:
        ax.set_title("\n".join(heading), fontsize=max(6.0, min(10.0, size + 2)))
    return ax


# -- helpers --------------------------------------------------------------------------------------
def _store(source: Any) -> tuple[ArtifactStore, str]:
    if isinstance(source, ArtifactStore):
        return source, ""
    own = getattr(source, "artifacts", None)
    if isinstance(own, ArtifactStore):
        study = getattr(source, "study", None)
        return own, str(getattr(study, "name", "") or "")
    name = getattr(source, "name", None)
    path = getattr(getattr(source, "journal", None), "path", None)
    if name is None:
        raise ValueError(f"arch_graph: expected a study, a ModelSearch or an ArtifactStore, got "
                         f"{type(source).__name__}")
    root = artifacts_dir(path, name) if path is not None else None
    if root is None:
        raise ValueError(f"study {name!r} is not stored in an SQLite file: its trials' graphs "
                         f"are in its search's temporary artifacts (ModelSearch.artifacts)")
    return ArtifactStore(root), str(name)


def _span(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    return f"{min(numbers)}..{max(numbers)}" if len(numbers) > 1 else str(numbers[0])


def _family(node: Mapping[str, Any]) -> str:
    kind = str(node.get("kind", "")).lower()
    if kind == "input":
        return "input"
    if "conv" in kind:
        return "conv"
    if kind in ("linear", "bilinear", "lazylinear", "embedding", "lstm", "gru", "rnn"):
        return "linear"
    if "norm" in kind:
        return "norm"
    if "pool" in kind:
        return "pool"
    if kind in ("add", "cat", "concat", "stack", "mul", "sum", "iadd"):
        return "join"
    return "other"


def _shape_text(shape: Any) -> str:
    if not isinstance(shape, list) or not shape:
        return ""
    dims = shape[1:] if len(shape) > 1 else shape  # the batch dimension (of the example) off
    return "\u00d7".join(str(d) for d in dims)  # a multiplication sign


def _params_text(params: Any) -> str:
    if not isinstance(params, (int, float)) or not params:
        return ""
    value = float(params)
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit} params"
    return f"{int(value)} params"


def _summary(graph: Mapping[str, Any]) -> str:
    parts = []
    total = graph.get("total_params")
    if isinstance(total, (int, float)) and math.isfinite(total):
        parts.append(f"{int(total):,} trainable parameters")
    parts.append(f"{len(graph['nodes'])} nodes")
    if graph.get("note"):
        parts.append(str(graph["note"]))
    return "; ".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
