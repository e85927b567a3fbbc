"""Plain-text tables for summaries and leaderboards, and the one way a metric is written."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["COUNT_METRICS", "format_metric", "format_table"]

#: Metrics that count things (parameters, operations, epochs, bytes): written as integers.
COUNT_METRICS = frozenset({"params", "flops", "macs", "epochs", "peak_memory"})


def format_metric(value: float, name: str = "") -> str:
    """A metric's value as tables show it.

    Counts (a whole value of a metric in :data:`COUNT_METRICS`, or any whole value of
    magnitude 1000 or more) are integers with thousands separators; other values of magnitude
    1000 or more keep one decimal; smaller ones four decimals (four significant digits below
    0.001). A missing value (NaN) is ``-``.

    Args:
        value: the metric's value.
        name: the metric's name (tells a count such as ``epochs=5`` from a fraction).

    Returns:
        The text, e.g. ``123,456`` for ``params=123456.0``, ``0.9125`` for
        ``val_accuracy=0.91254``, ``5`` for ``epochs=5.0``.
    """
    v = float(value)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v.is_integer() and (name in COUNT_METRICS or abs(v) >= 1000):
        return f"{int(v):,}"
    if abs(v) >= 1e15:  # past what separators keep readable
        return f"{v:.4g}"
    if abs(v) >= 1000:
        return f"{v:,.1f}"
    return f"{v:.4g}" if 0 < abs(v) < 1e-3 else f"{v:.4f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header.

    A cell holding several lines makes its row that tall: the later lines are written under
    the first, in the cell's column, the other columns left blank.

    Args:
        header: the columns' names.
        rows: the cells, one sequence of strings per row, as many as ``header``.

    Returns:
        The table, lines joined by ``\\n``, trailing spaces stripped.
    """
    table = [[c.split("\n") for c in r] for r in [header, *rows]]
    widths = [max(len(line) for r in table for line in r[c]) for c in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        for i in range(max((len(cell) for cell in row), default=1)):
            cells = [cell[i] if i < len(cell) else "" for cell in row]
            lines.append("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True))
                         .rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
