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
from collections.abc import Mapping, Sequence
from typing import Any

from torchnas._util.errors import SpaceError
from torchnas.space import Domain
from torchnas.strategies._base import (
    AskContext,
    Strategy,
    check_bool,
    check_int,
    derive_seed,
    register,
)
from torchnas.study._trial import FrozenTrial

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


@register("grid")
class GridStrategy(Strategy):
    """Enumerates a finite (conditional) space exactly once per architecture.

    Args:
        float_points: grid points for a continuous float (log-spaced on log domains).
        shuffle: visit each decision's values in a seeded random order instead of in order.
    """

    _root: _Node | None = None  # the trie of decisions met so far (none before setup)

    def __init__(self, float_points: int = 5, shuffle: bool = False) -> None:
        self.float_points = float_points
        self.shuffle = shuffle

    def check(self) -> None:
        check_int("strategy 'grid'", "float_points", self.float_points, 1)
        check_bool("strategy 'grid'", "shuffle", self.shuffle)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        self._root = None

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
        busy = self._busy(ctx.pending)
        free = [v for v in node.values if _key(v) not in node.done]
        for value in free:  # a branch that running trials do not already cover
            if not self._covered(node, _key(value), busy):
                return value
        # all taken by running trials (they may fail), or done: only past exhaustion
        return free[0] if free else node.values[0]

    def _busy(self, pending: Sequence[Mapping[str, Any]]) -> set[tuple[int, str]]:
        """``(node, value)`` branches where running trials are: the deepest each has reached.

        A running trial claims the branch of its last decision (as far as the trie knows it);
        ``id(node)`` names nodes, which live as long as the grid.
        """
        busy: set[tuple[int, str]] = set()
        for arch in pending:
            slot, claim = self._root, None
            for label, value in arch.items():
                if slot is None or slot.label != label:
                    break
                claim = (id(slot), _key(value))
                slot = slot.children.get(claim[1])
            if claim is not None:
                busy.add(claim)
        return busy

    def _covered(self, node: _Node, key: str, busy: set[tuple[int, str]]) -> bool:
        """Whether everything below branch ``key`` of ``node`` is done or being evaluated."""
        if (id(node), key) in busy:
            return True
        child = node.children.get(key)
        if child is None:  # a leaf not done, or a branch no trial went down yet
            return False
        return all(_key(v) in child.done or self._covered(child, _key(v), busy)
                   for v in child.values)

    def saturated(self, pending: Sequence[Mapping[str, Any]]) -> bool:
        """Whether every point left is taken by a running trial; a running trial that has not
        decided anything yet may take any point, so the grid waits until it has."""
        root = self._root
        if not pending:
            return False
        if root is None or any(not arch for arch in pending):
            return True
        busy = self._busy(pending)
        return all(_key(v) in root.done or self._covered(root, _key(v), busy)
                   for v in root.values)

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
