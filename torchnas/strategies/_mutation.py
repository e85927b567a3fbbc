"""Moves in architecture space shared by the search strategies: mutation and crossover.

Architectures are define-by-run dicts, so a move only needs the domains of the labels it
touches (recorded with every trial). A mutated architecture is handed to the study as the
trial's *fixed* decisions: labels the run no longer meets are dropped, and labels a change
newly activates (a deeper network's extra layers) are asked of the strategy. Conditional spaces
need nothing more.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

from torchnas._trial import FrozenTrial
from torchnas.space import Domain, Float, Int, arch_key

__all__ = ["crossover", "known_domains", "mutate", "neighbours", "perturb", "unseen"]


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
    others = [v for v in domain.values() if v != value]
    return others[rng.randrange(len(others))]


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
        values = dom.grid(limit) if dom.size is None or dom.size > limit else dom.values()
        for v in values:
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
