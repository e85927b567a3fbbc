"""Moves in architecture space shared by the search strategies: mutation and crossover.

Architectures are define-by-run dicts, so a move only needs the domains of the labels it
touches (recorded with every trial). A mutated architecture is handed to the study as the
trial's *fixed* decisions: labels the run no longer meets are dropped, and labels a change
newly activates (a deeper network's extra layers) are asked of the strategy. Conditional spaces
need nothing more. :class:`ArchIndex` tells whether a proposal would run an architecture that
was already evaluated (or is running), accounting for the labels the run would drop or add.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torchnas.space import Domain, Float, Inputs, Int, arch_key
from torchnas.study._trial import FrozenTrial

__all__ = [
    "ArchIndex",
    "Fill",
    "crossover",
    "fresh_random",
    "known_domains",
    "mutate",
    "neighbours",
    "perturb",
    "unseen",
]


def known_domains(trials: Iterable[FrozenTrial]) -> dict[str, Domain]:
    """Every label's domain seen in ``trials`` (first seen wins)."""
    out: dict[str, Domain] = {}
    for t in trials:
        for label, dom in t.domains.items():
            out.setdefault(label, dom)
    return out


def perturb(value: Any, domain: Domain, rng: random.Random, scale: float = 0.2) -> Any:
    """A different value of ``domain`` near ``value`` (numbers) or another choice.

    Numbers move by a Gaussian step of ``scale`` times the range (in log space for log
    domains); finite domains with few values jump to another value uniformly.
    """
    n = domain.size
    if n is not None and n <= 1:
        return value
    if isinstance(domain, (Int, Float)) and (n is None or n > 8):
        lo, hi = float(domain.low), float(domain.high)
        if domain.log:
            lo, hi, x = math.log(lo), math.log(hi), math.log(max(float(value), 1e-300))
        else:
            x = float(value)
        for _ in range(16):
            y = min(hi, max(lo, x + rng.gauss(0.0, scale * (hi - lo))))
            y = math.exp(y) if domain.log else y
            if isinstance(domain, Int):
                y = domain.low + domain.step * round((y - domain.low) / domain.step)
                y = min(domain.high, max(domain.low, int(y)))
            elif domain.step is not None:
                y = min(domain.high, max(domain.low, domain.low + domain.step * round(
                    (y - domain.low) / domain.step)))
            if y != value and domain.contains(y):
                return domain.normalize(y)
        return domain.sample(rng)
    if isinstance(domain, Inputs) and n is not None and n > _ENUMERABLE:
        return _swap(value, domain, rng)
    others = [v for v in domain.values() if v != value]
    return others[rng.randrange(len(others))]


_ENUMERABLE = 1000
"""A finite domain with more values than this is never enumerated by a move."""


def _swap(value: Any, domain: Inputs, rng: random.Random) -> list[int]:
    """``value`` with one chosen input replaced by one that was not chosen."""
    chosen = list(value)
    free = [i for i in range(domain.n) if i not in chosen]
    chosen[rng.randrange(len(chosen))] = free[rng.randrange(len(free))]
    return sorted(chosen)


def _spread(values: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` of ``values``, evenly spaced (the first and the last included)."""
    if len(values) <= limit:
        return values
    if limit <= 1:
        return values[:limit]
    return [values[round(i * (len(values) - 1) / (limit - 1))] for i in range(limit)]


def _moves(value: Any, domain: Domain, limit: int) -> list[Any]:
    """The values a neighbour may take for one decision (``value`` itself may be among them)."""
    n = domain.size
    if n is not None and n <= limit:
        return domain.values()
    if isinstance(domain, (Int, Float)):  # a spread of values, and the ones next to it
        spread = _spread(domain.grid(limit), limit)
        if domain.step is None or n is None:
            return spread
        k = round((value - domain.low) / domain.step)
        near = [domain.normalize(min(domain.high, domain.low + j * domain.step))
                for j in (k - 1, k + 1) if 0 <= j < n]
        return list(dict.fromkeys([*near, *spread]))
    if isinstance(domain, Inputs):  # one input swapped for another
        chosen = list(value)
        swaps = [sorted([*chosen[:i], j, *chosen[i + 1:]])
                 for i in range(len(chosen)) for j in range(domain.n) if j not in chosen]
        return _spread(swaps, limit)
    return _spread(domain.values(), limit)


def mutate(arch: Mapping[str, Any], domains: Mapping[str, Domain], rng: random.Random,
           *, k: int = 1, scale: float = 0.2) -> dict[str, Any]:
    """``arch`` with ``k`` decisions (distinct labels, uniformly chosen) changed."""
    out = dict(arch)
    labels = [lb for lb in arch if lb in domains and (domains[lb].size or 2) > 1]
    for label in rng.sample(labels, min(k, len(labels))):
        out[label] = perturb(arch[label], domains[label], rng, scale)
    return out


def neighbours(arch: Mapping[str, Any], domains: Mapping[str, Domain],
               limit: int = 8) -> list[dict[str, Any]]:
    """Architectures one decision away: every other value of each finite label (up to
    ``limit`` values per label, spread over the domain), in label order."""
    out: list[dict[str, Any]] = []
    for label, value in arch.items():
        dom = domains.get(label)
        if dom is None:
            continue
        for v in _moves(value, dom, limit):
            if v != value:
                out.append({**arch, label: v})
    return out


def crossover(a: Mapping[str, Any], b: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """Uniform crossover: each label from either parent (labels only one has are kept)."""
    out: dict[str, Any] = {}
    for label in dict.fromkeys([*a, *b]):
        if label in a and label in b:
            out[label] = a[label] if rng.random() < 0.5 else b[label]
        else:
            out[label] = a[label] if label in a else b[label]
    return out


def unseen(candidates: Iterable[dict[str, Any]], seen: set[str]) -> list[dict[str, Any]]:
    """The candidates whose architecture key is not in ``seen`` (de-duplication)."""
    return [c for c in candidates if arch_key(c) not in seen]


def _vkey(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class _Node:
    """A point of the trie: the decisions met next (label: its domain and a branch per value),
    and whether a recorded architecture ends here."""

    __slots__ = ("end", "next")

    def __init__(self) -> None:
        self.end = False
        self.next: dict[str, tuple[Domain | None, dict[str, _Node]]] = {}


Fill = Callable[[str, Domain], Any]
"""The value a strategy will suggest for a label its proposal does not fix."""


class ArchIndex:
    """Architectures as a trie of decisions in the order met, for de-duplication.

    A proposal fixes some decisions; the run drops those it never meets and asks the strategy
    for those it meets but the proposal lacks. :meth:`covers` walks the trie the way such a run
    would, so a proposal is recognised as a repeat even when its stale labels differ, and
    :meth:`sample_unseen` draws a random prefix that leaves every recorded path.

    Example:
        >>> index = ArchIndex()
        >>> index.add({"depth": 1, "w0": 8})
        >>> index.covers({"depth": 1, "w0": 8, "w1": 16})  # w1 is never met at depth 1
        True
        >>> index.covers({"depth": 2, "w0": 8})
        False
    """

    def __init__(self, archs: Iterable[Mapping[str, Any]] = (),
                 domains: Mapping[str, Domain] | None = None) -> None:
        self._root = _Node()
        self._count = 0
        for arch in archs:
            self.add(arch, domains)

    def __len__(self) -> int:
        """How many architectures were added (repeats included)."""
        return self._count

    def add(self, arch: Mapping[str, Any], domains: Mapping[str, Domain] | None = None) -> None:
        """Records ``arch`` (decisions in the order met) and, when known, the domains met."""
        node = self._root
        for label, value in arch.items():
            dom, branches = node.next.get(label, (None, {}))
            dom = dom if dom is not None or domains is None else domains.get(label)
            node.next[label] = (dom, branches)
            node = branches.setdefault(_vkey(value), _Node())
        node.end = True
        self._count += 1

    def covers(self, fixed: Mapping[str, Any], fill: Fill | None = None) -> bool:
        """Whether a run given the decisions ``fixed`` may repeat a recorded architecture.

        A label the run would meet that ``fixed`` lacks takes the value ``fill(label, domain)``
        (what the strategy will suggest); without ``fill``, or where the domain is unknown, any
        recorded value matches (the proposal counts as tried whatever the new labels get).
        """
        return self._covers(self._root, fixed, fill)

    def _covers(self, node: _Node, fixed: Mapping[str, Any], fill: Fill | None) -> bool:
        while True:
            if node.end:
                return True
            if len(node.next) != 1:  # several labels met next: a space that is not
                return any(self._covers(_single(node, lb), fixed, fill) for lb in node.next)
            label, (dom, branches) = next(iter(node.next.items()))
            if label in fixed:
                value = fixed[label]
            elif fill is not None and dom is not None:
                value = fill(label, dom)
            else:
                return any(self._covers(child, fixed, fill) for child in branches.values())
            child = branches.get(_vkey(value))
            if child is None:
                return False
            node = child

    def sample_unseen(self, rng: random.Random,
                      others: Sequence[ArchIndex] = ()) -> dict[str, Any] | None:
        """Decisions drawn at random along the trie (and those of ``others``, walked together)
        until they leave every recorded path.

        A value whose branch ends at a recorded architecture is drawn again (a few times, then
        picked among the values left where the domain can be listed). Returns the drawn prefix
        (the run decides the rest, so it is new), or ``None`` when the draw ended on a recorded
        architecture or at a label of unknown domain.
        """
        nodes, out = [self._root, *(o._root for o in others)], dict[str, Any]()
        while not any(node.end for node in nodes):
            ahead = [node for node in nodes if node.next]
            if not ahead:
                return out
            label = next(iter(ahead[0].next))
            met = [node.next[label] for node in ahead if label in node.next]
            dom = next((d for d, _ in met if d is not None), None)
            if dom is None:
                return None
            branches = [b for _, b in met]
            value = _draw_open(dom, branches, rng)
            if value is _NOTHING:
                return None
            out[label] = value
            key = _vkey(value)
            nodes = [b[key] for b in branches if key in b]
            if not nodes:
                return out
        return None


_NOTHING = object()


def _draw_open(dom: Domain, branches: Sequence[Mapping[str, _Node]],
               rng: random.Random) -> Any:
    """A value of ``dom`` whose branch does not end at a recorded architecture (drawn as the
    domain samples, a few times; then uniformly among the open values of a listable domain);
    ``_NOTHING`` when none is open."""

    def open_(value: Any) -> bool:
        key = _vkey(value)
        return not any(key in b and b[key].end for b in branches)

    for _ in range(4):
        value = dom.sample(rng)
        if open_(value):
            return value
    if dom.size is not None and dom.size <= _ENUMERABLE:
        values = [v for v in dom.values() if open_(v)]
        return values[rng.randrange(len(values))] if values else _NOTHING
    return value


def _single(node: _Node, label: str) -> _Node:
    """A node like ``node`` that meets only ``label`` next (and ends where ``node`` ends)."""
    out = _Node()
    out.end = node.end
    out.next = {label: node.next[label]}
    return out


def fresh_random(seen: ArchIndex, pending: ArchIndex, fill: Fill, rng: random.Random,
                 tries: int = 20) -> dict[str, Any]:
    """Decisions that make a random trial new where possible.

    None at all (every decision left to the strategy's random ``fill``) when that run would
    be new; else a random prefix leading off every path recorded in ``seen`` or ``pending``
    (up to ``tries`` draws); else none (the space may be exhausted).
    """
    if not (seen.covers({}, fill) or pending.covers({}, fill)):
        return {}
    for _ in range(tries):
        drawn = seen.sample_unseen(rng, [pending])
        if drawn is not None and not pending.covers(drawn, fill):
            return drawn
    return {}
