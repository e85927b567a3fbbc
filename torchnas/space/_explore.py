"""Exploring a space function: its labels, their domains, conditions and the space's size.

The space is a define-by-run function, so its structure is found by running it: the explorer
cycles every finite label through all of its values (offset per run so that combinations mix)
and samples continuous ones. From the runs it infers, for each conditional label, the decision it
depends on and the values of that decision under which it exists, then counts the architectures.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torchnas._util.errors import ConfigError, DataError, SpaceError
from torchnas._util.table import format_table
from torchnas.space._domains import Domain, Int
from torchnas.space._hp import HP

if TYPE_CHECKING:
    from torchnas.space._cover import Coverage

__all__ = ["LabelInfo", "SpaceInfo", "explore", "infer"]


@dataclass(frozen=True)
class LabelInfo:
    """What exploration learned of one label."""

    label: str
    domain: Domain
    parent: str | None = None
    when: tuple[Any, ...] | None = None  # values of ``parent`` under which the label exists
    conditional: bool = False  # met in some runs only
    domain_of_parent: Domain | None = None

    @property
    def condition(self) -> str:
        """Human-readable condition, e.g. ``conv_layers >= 3``; empty when unconditional."""
        if not self.conditional:
            return ""
        if self.parent is None or self.when is None:
            return "(conditional)"
        return describe_condition(self.parent, self.when, self.domain_of_parent)


@dataclass
class SpaceInfo:
    """The structure of a space as found by :func:`explore`.

    Attributes:
        labels: what was learned of each label, in met order.
        runs: the exploration's runs.
        errors: problems found.
        coverage: which values of which labels the models that
            :meth:`ModelSearch.check <torchnas.ModelSearch.check>` built and ran met
            (:class:`~torchnas.space.Coverage`; ``None`` before a check).
    """

    labels: dict[str, LabelInfo] = field(default_factory=dict)
    runs: int = 0
    errors: list[str] = field(default_factory=list)
    coverage: Coverage | None = None

    @property
    def size(self) -> int | None:
        """Number of distinct architectures; ``None`` when a continuous label makes it infinite."""
        return _count(self.labels, continuous_ok=False)

    @property
    def discrete_size(self) -> int | None:
        """Number of architectures counting each continuous label once (``None``: unknown)."""
        return _count(self.labels, continuous_ok=True)

    def summary(self) -> str:
        """A table of every label, its domain and its condition, then the space's size."""
        rows = [
            [i.label, i.domain.describe(), i.condition or "always"] for i in self.labels.values()
        ]
        lines = [f"Search space: {len(self.labels)} labels (seen in {self.runs} runs)"]
        lines.append(format_table(["label", "domain", "exists when"], rows))
        size, discrete = self.size, self.discrete_size
        continuous = [i.label for i in self.labels.values() if i.domain.size is None]
        if size is not None:
            lines.append(f"Size: {size:,} architectures")
        elif continuous and discrete is not None:
            lines.append(
                f"Size: infinite (continuous: {', '.join(continuous)}); "
                f"{discrete:,} discrete combinations"
            )
        else:
            lines.append("Size: unknown (a label depends on several decisions at once)")
        if self.coverage is not None:
            met, total = self.coverage.counts
            lines.append(f"Checked: {self.coverage.runs} models ran, meeting {met} of the "
                         f"{total} values to cover")
        return "\n".join(lines)


class _Cycler:
    """Source for exploration runs.

    Even runs walk every finite domain through all its values (offset per label), so each value
    shows up; odd runs sample at random, which breaks the correlations cycling creates between
    labels of equal domain sizes (they would fake dependencies).
    """

    def __init__(self, run: int, seed: int) -> None:
        self.run = run // 2
        self.cycle = run % 2 == 0
        self.rng = random.Random(seed * 1_000_003 + run)

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        n = domain.size
        if not self.cycle or n is None or n > 4096:
            return domain.sample(self.rng)
        offset = zlib.crc32(label.encode()) % n
        return domain.values()[(self.run + offset) % n]


def explore(fn: Callable[[HP], Any], *, runs: int | None = None, seed: int = 0) -> SpaceInfo:
    """Runs ``fn`` on many assignments and infers its labels, conditions and size.

    A malformed space fails here, before any trial: a :class:`SpaceError` of the recorder
    (an empty choice, a label reused with another domain), or a :class:`DataError` or
    :class:`ConfigError` of a built-in space (input shapes it cannot read), as it is; any
    other error of ``fn``
    as a :class:`SpaceError` naming the decisions that led to it (the original is its
    ``__cause__``): a space must build every architecture it can draw.

    Args:
        fn: the space function ``fn(hp)``.
        runs: number of runs; default enough to show every value of the largest finite domain
            twice in the cycling half of the runs (at least 32, at most 256).
        seed: seed of the samples drawn for continuous domains.
    """
    samples: list[dict[str, Any]] = []
    domains: dict[str, Domain] = {}
    ordered: list[str] = []
    target = runs if runs is not None else 24
    i = 0
    while i < target:
        hp = HP(_Cycler(i, seed))
        try:
            fn(hp)
        except (SpaceError, DataError, ConfigError):
            raise
        except Exception as exc:
            raise SpaceError(f"the space function raised {type(exc).__name__}: {exc} with the "
                             f"decisions {hp.arch} (exploring the space before any trial: it "
                             f"must build every architecture it can draw)") from exc
        samples.append(hp.arch)
        _merge_order(ordered, list(hp.domains))
        for label, dom in hp.domains.items():
            domains.setdefault(label, dom)
        if runs is None:
            largest = max([d.size or 1 for d in domains.values() if (d.size or 0) <= 4096] or [1])
            target = min(256, max(32, 4 * largest))
        i += 1
    return infer(samples, domains, ordered)


def infer(
    samples: list[dict[str, Any]], domains: Mapping[str, Domain], ordered: list[str] | None = None
) -> SpaceInfo:
    """Infers labels, conditions and size from architectures (e.g. a study's trials).

    Args:
        samples: architectures, each with its labels in the order they were met.
        domains: the domain of every label.
        ordered: labels in a consistent met order (merged from ``samples`` when omitted).
    """
    if ordered is None:
        ordered = []
        for s in samples:
            _merge_order(ordered, list(s))
    info = SpaceInfo(runs=len(samples))
    order = {label: pos for pos, label in enumerate(ordered)}
    for label in ordered:
        present = [s for s in samples if label in s]
        if len(present) == len(samples):
            info.labels[label] = LabelInfo(label, domains[label])
            continue
        parent, when = _find_parent(label, samples, order, domains)
        info.labels[label] = LabelInfo(
            label, domains[label], parent, when, conditional=True,
            domain_of_parent=domains.get(parent) if parent else None,
        )
    return info


def _merge_order(ordered: list[str], run: list[str]) -> None:
    """Inserts the labels of one run into the merged order, each after its predecessor."""
    prev = -1
    for label in run:
        if label in ordered:
            prev = ordered.index(label)
        else:
            prev += 1
            ordered.insert(prev, label)


def _find_parent(
    label: str, samples: list[dict[str, Any]], order: dict[str, int], domains: Mapping[str, Domain]
) -> tuple[str | None, tuple[Any, ...] | None]:
    """The latest finite decision whose value alone tells whether ``label`` exists."""
    best: tuple[str | None, tuple[Any, ...] | None] = (None, None)
    best_pos = -1
    for cand in order:
        if cand == label or order[cand] > order[label] or domains[cand].size is None:
            continue
        on: set[Any] = set()
        off: set[Any] = set()
        ok = True
        for s in samples:
            if cand not in s:
                if label in s:
                    ok = False
                    break
                continue
            key = _hashable(s[cand])
            (on if label in s else off).add(key)
        if not ok or not on or not off or on & off:
            continue
        if order[cand] > best_pos:
            best = (cand, tuple(sorted(on, key=repr)))
            best_pos = order[cand]
    return best


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def describe_condition(parent: str, when: tuple[Any, ...], domain: Domain | None) -> str:
    """``parent >= 3`` for the top of an int range, ``parent == x`` or ``parent in {...}``."""
    if isinstance(domain, Int):
        vals = domain.values()
        k = vals.index(min(when)) if min(when) in vals else -1
        if k >= 0 and sorted(when) == vals[k:]:
            return f"{parent} >= {min(when)}"
        if k >= 0 and sorted(when) == vals[: len(when)] and vals[0] == min(when):
            return f"{parent} <= {max(when)}"
    if len(when) == 1:
        return f"{parent} == {when[0]!r}"
    return f"{parent} in {{{', '.join(repr(w) for w in when)}}}"


def _count(labels: Mapping[str, LabelInfo], *, continuous_ok: bool) -> int | None:
    if any(i.conditional and i.parent is None for i in labels.values()):
        return None
    children: dict[str, list[LabelInfo]] = {}
    for i in labels.values():
        if i.parent is not None:
            children.setdefault(i.parent, []).append(i)

    def count(info: LabelInfo) -> int | None:
        size = info.domain.size
        if size is None:
            if not continuous_ok:
                return None
            size = 1
        kids = children.get(info.label, [])
        if not kids:
            return size
        values = info.domain.values() if info.domain.size is not None else [None]
        total = 0
        for v in values:
            prod = 1
            for kid in kids:
                if kid.when is not None and _hashable(v) in kid.when:
                    c = count(kid)
                    if c is None:
                        return None
                    prod *= c
            total += prod
        return total

    result = 1
    for info in labels.values():
        if info.parent is None:
            c = count(info)
            if c is None:
                return None
            result *= c
    return result if not math.isinf(result) else None
