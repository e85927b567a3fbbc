"""Grid search over conditional, define-by-run spaces: every architecture exactly once.

The grid is a trie of decisions discovered as trials run: a node is the decision met after a
given prefix of values, its branches are the domain's values (a grid of ``float_points`` for
continuous domains). A trial walks the trie, taking at each node the first branch not yet
exhausted; a finished trial marks its leaf exhausted, and exhaustion propagates up. The space
never has to be enumerated up front, so conditional labels need no special handling.
"""

from __future__ import annotations

import json
import random
from typing import Any

from torchnas._errors import SpaceError
from torchnas._trial import FrozenTrial
from torchnas.space import Domain
from torchnas.strategies._base import AskContext, Strategy, derive_seed

__all__ = ["GridStrategy"]


class _Node:
    __slots__ = ("children", "domain", "done", "keys", "label", "values")

    def __init__(self, label: str, domain: Domain, values: list[Any]) -> None:
        self.label = label
        self.domain = domain
        self.values = values
        self.keys = {_key(v) for v in values}
        self.children: dict[str, _Node] = {}
        self.done: set[str] = set()

    @property
    def exhausted(self) -> bool:
        return len(self.done) == len(self.values)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class GridStrategy(Strategy):
    """Enumerates a finite (conditional) space exactly once per architecture.

    Args:
        float_points: grid points for a continuous float (log-spaced on log domains).
        shuffle: visit each decision's values in a seeded random order instead of in order.
    """

    name = "grid"

    def __init__(self, float_points: int = 5, shuffle: bool = False) -> None:
        self.float_points = float_points
        self.shuffle = shuffle
        self._root: _Node | None = None

    def _values(self, path: list[tuple[str, Any]], label: str, domain: Domain) -> list[Any]:
        """The branches of a node, in the order they are visited."""
        values = domain.grid(self.float_points)
        if self.shuffle:
            random.Random(derive_seed(self.seed, [p[1] for p in path], label)).shuffle(values)
        return values

    def _node(self, path: list[tuple[str, Any]], label: str, domain: Domain) -> _Node | None:
        """The node reached by ``path`` (created for ``label`` when new).

        ``None`` when ``path`` leaves the trie before its end: a value fixed from outside the grid
        (an enqueued architecture, an interrupted trial taken up again) whose branch no trial has
        walked yet.
        """
        slot: _Node | None = self._root
        parent: _Node | None = None
        for lbl, value in path:
            if slot is None:
                return None
            if slot.label != lbl:
                raise SpaceError(
                    f"grid: the space is not deterministic; after the same decisions it met "
                    f"{lbl!r} where earlier runs met {slot.label!r}"
                )
            parent = slot
            slot = slot.children.get(_key(value))
        if slot is None:
            slot = _Node(label, domain, self._values(path, label, domain))
            if parent is None:
                self._root = slot
            else:
                parent.children[_key(path[-1][1])] = slot
        elif slot.label != label:
            raise SpaceError(
                f"grid: the space is not deterministic; after the same decisions it met "
                f"{label!r} where earlier runs met {slot.label!r}"
            )
        return slot

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        path = list(ctx.params.items())
        node = self._node(path, label, domain)
        if node is None:  # below a fixed value no trial has reached: nothing there is done
            return self._values(path, label, domain)[0]
        for value in node.values:
            if _key(value) not in node.done:
                return value
        return node.values[0]  # everything below is done: only reached past exhaustion

    def tell(self, trial: FrozenTrial) -> None:
        path = list(trial.arch.items())
        nodes: list[_Node] = []
        for i, (label, _) in enumerate(path):
            domain = trial.domains.get(label)
            if domain is None:
                return
            try:
                node = self._node(path[:i], label, domain)
            except SpaceError:
                return  # a trial from outside this grid (enqueued by hand, another space)
            if node is None:
                return
            nodes.append(node)
        for i in range(len(path) - 1, -1, -1):
            key = _key(path[i][1])
            if key not in nodes[i].keys:
                return
            nodes[i].done.add(key)
            if not nodes[i].exhausted:
                break

    def exhausted(self) -> bool:
        return self._root is not None and self._root.exhausted
