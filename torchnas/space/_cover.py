"""Covering a space: a few architectures that together meet every value of every decision.

A shape bug that hides in one branch of a space (``kernel_size=5``; a conditional ``filters_3``
that exists only with four layers, at its value 64) passes a check that builds one architecture
and then fails half the trials. :func:`sweep` runs the space function on architectures chosen so
that each label takes each of its *cover values* (:func:`cover_values`: every value of a small
domain, the ends and middle of a range) at least once, conditional labels included: a decision
with a label still waiting beneath it (the conditions found by :func:`~torchnas.space.explore`)
takes a value under which that label exists. It stops when every cover value of every label met
has been met, after ``patience`` runs that met nothing new, or after ``max_runs`` runs.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torchnas.space._domains import Domain, Float, Inputs, Int
from torchnas.space._explore import SpaceInfo, _hashable
from torchnas.space._hp import HP

__all__ = ["MAX_RUNS", "Coverage", "cover_values", "sweep"]

#: The most runs a sweep makes.
MAX_RUNS = 64
#: A range or ``hp.inputs`` with at most this many values is covered whole.
SMALL = 8


def _key(value: Any) -> str:
    """A canonical key of a (normalized) value: ``True`` and ``1``, ``1`` and ``1.0`` differ."""
    return json.dumps(value, sort_keys=True)


def cover_values(domain: Domain) -> list[Any]:
    """The values of ``domain`` a covering must meet.

    Every value of a choice, ``hp.op``, ``hp.bool``, and of a range or ``hp.inputs`` with at
    most :data:`SMALL` values; otherwise an integer range's low, middle and high values, a float
    range's two ends, and for ``k`` of ``n`` inputs enough picks that each input is in one.
    """
    size = domain.size
    if isinstance(domain, Inputs) and domain.size > SMALL:
        k, n = domain.k, domain.n
        return [sorted({(j * k + t) % n for t in range(k)}) for j in range(math.ceil(n / k))]
    if isinstance(domain, Int) and domain.size > SMALL:
        low, step, top = domain.low, domain.step, domain.size - 1
        return [low, low + step * (top // 2), low + step * top]
    if isinstance(domain, Float) and (size is None or size > SMALL):
        high = domain.high if size is None or domain.step is None else \
            min(domain.high, domain.low + (size - 1) * domain.step)
        return list(dict.fromkeys([float(domain.low), float(high)]))
    if size is None or size > 4096:
        return [domain.default]
    return domain.values()


@dataclass
class Coverage:
    """Which cover values of which labels a set of runs met.

    Attributes:
        targets: ``{label: cover values}`` of every label known (explored or met).
        met: ``{label: keys of the values met}`` (any value, cover value or not).
        runs: the runs counted.
    """

    targets: dict[str, list[Any]] = field(default_factory=dict)
    met: dict[str, set[str]] = field(default_factory=dict)
    runs: int = 0

    @classmethod
    def of(cls, info: SpaceInfo | None) -> Coverage:
        """An empty coverage whose targets are the explored labels' cover values."""
        coverage = cls()
        for label, i in (info.labels.items() if info is not None else ()):
            coverage.targets[label] = cover_values(i.domain)
            coverage.met[label] = set()
        return coverage

    def add(self, arch: Mapping[str, Any], domains: Mapping[str, Domain]) -> int:
        """Counts one run's decisions; returns how many cover values it met for the first time."""
        before = self.counts[0]
        for label, domain in domains.items():
            if label not in self.targets:
                self.targets[label] = cover_values(domain)
                self.met[label] = set()
            self.met[label].add(_key(arch[label]))
        self.runs += 1
        return self.counts[0] - before

    def missing(self) -> dict[str, list[Any]]:
        """``{label: cover values not met}`` of the labels with any."""
        out = {label: [v for v in values if _key(v) not in self.met[label]]
               for label, values in self.targets.items()}
        return {label: values for label, values in out.items() if values}

    @property
    def complete(self) -> bool:
        """Whether every cover value of every label was met."""
        return not self.missing()

    @property
    def counts(self) -> tuple[int, int]:
        """``(cover values met, cover values in all)``."""
        total = sum(len(v) for v in self.targets.values())
        unmet = sum(len(v) for v in self.missing().values())
        return total - unmet, total

    def describe_missing(self, limit: int = 8) -> str:
        """``filters_3 in [48, 64]; lr in [0.01]`` for the first ``limit`` labels with values
        not met."""
        parts = [f"{label} in {values!r}" for label, values in self.missing().items()]
        more = f"; and {len(parts) - limit} more labels" if len(parts) > limit else ""
        return "; ".join(parts[:limit]) + more


class _CoverSource:
    """The values of one sweep run: for each label, a cover value it has not met yet, else a
    value under which a label still waiting beneath it exists, else its cover values in turn.
    Among several, the one that opens the most waiting labels first."""

    def __init__(self, coverage: Coverage, info: SpaceInfo | None, run: int) -> None:
        self.coverage = coverage
        self.run = run
        self.children: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
        for i in (info.labels.values() if info is not None else ()):
            if i.parent is not None and i.when is not None:
                self.children.setdefault(i.parent, []).append((i.label, i.when))
        self.waiting = set(coverage.missing())
        for _ in range(len(self.children) + 1):  # a parent waits for what waits beneath it
            self.waiting |= {p for p, kids in self.children.items()
                             if any(k in self.waiting for k, _ in kids)}

    def _opens(self, label: str, value: Any) -> int:
        v = _hashable(value)
        return sum(k in self.waiting and v in when for k, when in self.children.get(label, ()))

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        targets = [v for v in self.coverage.targets.get(label, ()) if domain.contains(v)]
        targets = targets or cover_values(domain)  # (a label whose domain changed between runs)
        seen = self.coverage.met.get(label, set())
        pending = [v for v in targets if _key(v) not in seen]
        if pending:
            return max(pending, key=lambda v: self._opens(label, v))  # first among equals
        finite = domain.size is not None and domain.size <= 4096
        pool = domain.values() if finite else targets
        best = max(pool, key=lambda v: self._opens(label, v))
        if self._opens(label, best):
            return best
        return targets[(self.run + zlib.crc32(label.encode())) % len(targets)]


def sweep(run: Callable[[HP], Any], info: SpaceInfo | None = None, *,
          max_runs: int = MAX_RUNS, patience: int = 16) -> Coverage:
    """Calls ``run(hp)`` on the runs of a covering of the space and returns what they met.

    ``run`` calls the space function with ``hp`` (and checks what it built); whatever it
    raises ends the sweep. ``hp.arch`` holds the decisions of the run so far.

    Args:
        run: called once per architecture with a fresh :class:`HP`.
        info: the explored space (:func:`~torchnas.space.explore`): its labels are targets from
            the start and its conditions steer the runs to the branches they hide.
        max_runs: the most runs.
        patience: stop after this many runs in a row that met no cover value for the first time.

    Example:
        >>> from torchnas.space import explore
        >>> def space(hp):  # k1 exists only when n == 2
        ...     return [hp.choice(f"k{i}", [3, 5, 7]) for i in range(hp.int("n", 1, 2))]
        >>> coverage = sweep(space, explore(space))
        >>> coverage.complete, coverage.runs  # n=2 thrice (k0, k1 = 3, 5, 7) and n=1 once
        (True, 4)
    """
    coverage = Coverage.of(info)
    idle = 0
    for i in range(max_runs):
        hp = HP(_CoverSource(coverage, info, i))
        run(hp)
        idle = 0 if coverage.add(hp.arch, hp.domains) else idle + 1
        if coverage.complete or idle >= patience:
            break
    return coverage
