"""The collapse guard: parameter-free operations taking over a differentiable search.

DARTS is known to drift towards skip connections and other parameter-free operations (they
help the supernet train fast, not the derived model). :func:`collapse_counts` looks at the
operation each ``hp.op`` label would derive and counts the winners that have no parameters
(measured on the built candidates) and are not "zero" operations (a candidate whose output was
all zeros when the supernet was probed, e.g. ``none``), in labels that offer a candidate with
parameters (a label of parameter-free candidates only, such as the activations of ``rnn_cell``,
has nothing to collapse away from). A search is *collapsed* when more than
``threshold`` of its op labels are won by such operations. Two guards prevent it:

* ``"early_stop"`` (DARTS+): the search stops at the first epoch that would be collapsed and
  derives from the logits of the epoch before;
* ``"aux_skip"`` (DARTS-): every op whose output has its input's shape gets an auxiliary skip
  connection, weighted by ``beta`` decaying linearly from 1 to 0 over the search, which takes
  away the advantage of skip candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torchnas.oneshot._mixed import MixedOp
from torchnas.oneshot._supernet import Supernet

__all__ = ["GUARDS", "CollapseReport", "collapse_counts"]

GUARDS = (None, "early_stop", "aux_skip")
_ZERO_NAMES = ("none", "zero")


def collapse_counts(net: Supernet, path: Mapping[str, Sequence[int]]
                    ) -> tuple[dict[str, str], dict[str, str], int]:
    """``(param_free, zero, op_labels)``: labels won by parameter-free non-zero candidates and
    by zero candidates (label -> candidate name), and the number of op labels."""
    first: dict[str, MixedOp] = {}
    for op in net.mixed_ops():
        if net.choices[op.label].kind == "op":
            first.setdefault(op.label, op)
    free, zero = {}, {}
    for label, op in first.items():
        i = path[label][0]
        name = op.names[i]
        if op.zero[i] or name.lower() in _ZERO_NAMES:
            zero[label] = name
        elif op.param_counts[i] == 0 and any(op.param_counts):
            free[label] = name
    return free, zero, len(first)


@dataclass(frozen=True)
class CollapseReport:
    """Whether parameter-free operations took over the derived architecture.

    Attributes:
        collapsed: more than ``threshold`` of the op labels are won by parameter-free,
            non-zero candidates (skip, pooling).
        param_free: ``{label: candidate}`` of those labels.
        zero: ``{label: candidate}`` of labels won by a zero candidate (``none``).
        op_labels: how many ``hp.op`` labels were searched.
        fraction: ``len(param_free) / op_labels``.
        threshold: the fraction above which the search counts as collapsed.
        guard: the guard used (``None``, ``"early_stop"``, ``"aux_skip"``).
        stopped_at: the epoch at which ``early_stop`` ended the search, else ``None``.
        counts: the number of parameter-free winners after each epoch.
    """

    collapsed: bool
    param_free: dict[str, str]
    zero: dict[str, str]
    op_labels: int
    fraction: float
    threshold: float
    guard: str | None = None
    stopped_at: int | None = None
    counts: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, net: Supernet, path: Mapping[str, Sequence[int]], threshold: float,
           guard: str | None = None, stopped_at: int | None = None,
           counts: Sequence[int] = ()) -> CollapseReport:
        """The report for the architecture ``path`` chooses."""
        free, zero, n = collapse_counts(net, path)
        fraction = len(free) / n if n else 0.0
        return cls(fraction > threshold, free, zero, n, fraction, threshold, guard, stopped_at,
                   list(counts))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        state = "collapsed" if self.collapsed else "no collapse"
        stop = f", stopped at epoch {self.stopped_at}" if self.stopped_at is not None else ""
        return (f"{state}: {len(self.param_free)}/{self.op_labels} op labels won by "
                f"parameter-free operations {sorted(set(self.param_free.values()))} "
                f"(threshold {self.threshold:.0%}){stop}")
