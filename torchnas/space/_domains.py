"""Domains: the set of values one labelled decision can take.

A domain is plain, immutable data. It validates itself (naming the label when it is malformed),
tests membership, samples, enumerates when finite, and maps values to ``[0, 1]`` for model-based
strategies. Values are JSON-able, so an architecture is a JSON dict.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torchnas._util.errors import SpaceError

__all__ = ["Bool", "Categorical", "Domain", "Float", "Inputs", "Int", "Op"]

_Scalar = (str, int, float, bool, type(None))
GRID_LIMIT = 1000
"""An integer domain with more values than this is gridded like a continuous one."""


class Domain(ABC):
    """Base class of every domain. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]

    @abstractmethod
    def check(self, label: str) -> None:
        """Raises :class:`SpaceError` naming ``label`` when the domain is malformed."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` (possibly JSON-decoded) belongs to the domain."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Any:
        """One value drawn uniformly (log-uniformly for log domains)."""

    @property
    def size(self) -> int | None:
        """Number of values, or ``None`` when the domain is continuous."""
        return None

    def values(self) -> list[Any]:
        """Every value, in a fixed order; only for finite domains."""
        raise TypeError(f"{self.describe()} is continuous and cannot be enumerated")

    def grid(self, points: int) -> list[Any]:
        """Every value when finite; else ``points`` values spread over the range."""
        return self.values()

    @property
    def default(self) -> Any:
        """The value used when an architecture does not name this label and defaults are asked."""
        return self.values()[0]

    def normalize(self, value: Any) -> Any:
        """The canonical form of a member value (as stored in an architecture)."""
        return value

    @abstractmethod
    def describe(self) -> str:
        """A short human-readable description, e.g. ``int[1, 4]``."""

    def to_json(self) -> dict[str, Any]:
        """The domain as a JSON-able dict (kind plus fields)."""
        out: dict[str, Any] = {"kind": self.kind}
        out.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()})
        return out


@dataclass(frozen=True)
class Categorical(Domain):
    """One of a fixed list of JSON scalars (strings, numbers, booleans, None)."""

    choices: tuple[Any, ...]
    kind: ClassVar[str] = "choice"

    def check(self, label: str) -> None:
        if not self.choices:
            raise SpaceError(f"label {label!r}: choice needs at least one value, got []")
        for c in self.choices:
            if not isinstance(c, _Scalar) or (isinstance(c, float) and not math.isfinite(c)):
                raise SpaceError(
                    f"label {label!r}: choice values must be JSON scalars (str, int, float, "
                    f"bool, None), got {c!r}; use hp.op for modules"
                )
        keys = [json.dumps(c) for c in self.choices]
        if len(set(keys)) != len(keys):
            raise SpaceError(f"label {label!r}: choice values repeat: {list(self.choices)!r}")

    def contains(self, value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in self.choices)

    def sample(self, rng: random.Random) -> Any:
        return self.choices[rng.randrange(len(self.choices))]

    @property
    def size(self) -> int:
        return len(self.choices)

    def values(self) -> list[Any]:
        return list(self.choices)

    def describe(self) -> str:
        return "choice" + json.dumps(list(self.choices))


@dataclass(frozen=True)
class Op(Categorical):
    """A choice among named candidate operations (``hp.op``); values are the names."""

    kind: ClassVar[str] = "op"

    def check(self, label: str) -> None:
        if not self.choices:
            raise SpaceError(f"label {label!r}: op needs at least one candidate, got none")
        for c in self.choices:
            if not isinstance(c, str) or not c:
                raise SpaceError(f"label {label!r}: op candidate names must be strings, got {c!r}")
        super().check(label)

    def describe(self) -> str:
        return "op[" + ", ".join(self.choices) + "]"


@dataclass(frozen=True)
class Bool(Categorical):
    """``False`` or ``True``."""

    choices: tuple[Any, ...] = (False, True)
    kind: ClassVar[str] = "bool"

    def describe(self) -> str:
        return "bool"


@dataclass(frozen=True)
class Int(Domain):
    """Integers ``low, low + step, ..., <= high``; log-uniform sampling when ``log``."""

    low: int
    high: int
    step: int = 1
    log: bool = False
    kind: ClassVar[str] = "int"

    def check(self, label: str) -> None:
        for name in ("low", "high", "step"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpaceError(f"label {label!r}: int {name} must be an integer, got {v!r}")
        if self.low > self.high:
            raise SpaceError(f"label {label!r}: low ({self.low}) > high ({self.high})")
        if self.step < 1:
            raise SpaceError(f"label {label!r}: step must be >= 1, got {self.step}")
        if self.log and self.low <= 0:
            raise SpaceError(f"label {label!r}: log scale needs low > 0, got low={self.low}")
        if self.log and self.step != 1:
            raise SpaceError(f"label {label!r}: log scale and step={self.step} cannot be combined")

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def sample(self, rng: random.Random) -> int:
        if self.log:
            u = rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5))
            return min(self.high, max(self.low, round(math.exp(u))))
        return self.low + self.step * rng.randrange(self.size)

    @property
    def size(self) -> int:
        return (self.high - self.low) // self.step + 1

    def values(self) -> list[Any]:
        return list(range(self.low, self.high + 1, self.step))

    def grid(self, points: int) -> list[Any]:
        """Every value up to :data:`GRID_LIMIT` of them; else ``points`` values spread over the
        range (log-spaced on log domains), as for a continuous domain."""
        if self.size <= GRID_LIMIT:
            return self.values()
        spread = Float(float(self.low), float(self.high), self.log).grid(points)
        snapped = [self.low + self.step * round((v - self.low) / self.step) for v in spread]
        return sorted({min(self.high, max(self.low, v)) for v in snapped})

    @property
    def default(self) -> int:
        return self.low

    def describe(self) -> str:
        extra = f", step={self.step}" if self.step != 1 else ""
        return f"int[{self.low}, {self.high}{extra}{', log' if self.log else ''}]"


@dataclass(frozen=True)
class Float(Domain):
    """Reals in ``[low, high]``; log-uniform when ``log``; a grid of ``step`` when given."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    kind: ClassVar[str] = "float"

    def check(self, label: str) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SpaceError(
                    f"label {label!r}: float {name} must be a finite number, got {v!r}"
                )
        if self.low > self.high:
            raise SpaceError(f"label {label!r}: low ({self.low}) > high ({self.high})")
        if self.log and self.low <= 0:
            raise SpaceError(f"label {label!r}: log scale needs low > 0, got low={self.low}")
        if self.step is not None and (
            isinstance(self.step, bool) or not isinstance(self.step, (int, float))
            or not math.isfinite(self.step) or self.step <= 0 or self.log
        ):
            raise SpaceError(
                f"label {label!r}: step must be a number > 0 and not combined with log, "
                f"got step={self.step!r}"
            )

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        k = (value - self.low) / self.step
        return abs(k - round(k)) < 1e-6

    def _clip(self, value: float) -> float:
        """``value`` pulled back into ``[low, high]`` (``exp(log(x))`` may miss ``x`` by an ulp)."""
        return float(min(self.high, max(self.low, value)))

    def sample(self, rng: random.Random) -> float:
        if self.step is not None:
            values = self.values()
            return values[rng.randrange(len(values))]
        if self.log:
            return self._clip(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return self._clip(rng.uniform(self.low, self.high))

    @property
    def size(self) -> int | None:
        if self.step is None:
            return None
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def values(self) -> list[Any]:
        n = self.size
        if n is None:
            return super().values()
        assert self.step is not None
        return [self._clip(self.low + i * self.step) for i in range(n)]

    def grid(self, points: int) -> list[Any]:
        if self.step is not None:
            return self.values()
        if points <= 1 or self.low == self.high:
            return [float(self.low)]
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            inner = [math.exp(lo + (hi - lo) * i / (points - 1)) for i in range(1, points - 1)]
        else:
            inner = [self.low + (self.high - self.low) * i / (points - 1)
                     for i in range(1, points - 1)]
        return [float(self.low), *(self._clip(v) for v in inner), float(self.high)]

    @property
    def default(self) -> float:
        if self.step is not None:
            values = self.values()
            return values[len(values) // 2]
        if self.log:
            return self._clip(math.sqrt(self.low * self.high))
        return self._clip((self.low + self.high) / 2)

    def normalize(self, value: Any) -> float:
        return float(value)

    def describe(self) -> str:
        extra = f", step={self.step}" if self.step is not None else ""
        return f"float[{self.low:g}, {self.high:g}{extra}{', log' if self.log else ''}]"


@dataclass(frozen=True)
class Inputs(Domain):
    """``k`` distinct indices out of ``n`` candidate inputs, stored sorted (multi-branch)."""

    n: int
    k: int = 1
    kind: ClassVar[str] = "inputs"

    def check(self, label: str) -> None:
        for name in ("n", "k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpaceError(f"label {label!r}: inputs {name} must be an integer, got {v!r}")
        if self.n < 1:
            raise SpaceError(f"label {label!r}: inputs needs at least one candidate, got {self.n}")
        if not 1 <= self.k <= self.n:
            raise SpaceError(f"label {label!r}: inputs k must be in [1, {self.n}], got {self.k}")

    def contains(self, value: Any) -> bool:
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != self.k:
            return False
        ok = all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.n for i in value)
        return ok and len(set(value)) == self.k

    def sample(self, rng: random.Random) -> list[int]:
        return sorted(rng.sample(range(self.n), self.k))

    @property
    def size(self) -> int:
        return math.comb(self.n, self.k)

    def values(self) -> list[Any]:
        return [list(c) for c in itertools.combinations(range(self.n), self.k)]

    @property
    def default(self) -> list[int]:
        return list(range(self.k))

    def normalize(self, value: Any) -> list[int]:
        return sorted(int(i) for i in value)

    def describe(self) -> str:
        return f"inputs[{self.k} of {self.n}]"


def domain_from_json(data: dict[str, Any]) -> Domain:
    """Rebuilds a domain from :meth:`Domain.to_json` output."""
    fields = {k: v for k, v in data.items() if k != "kind"}
    kinds: dict[str, type[Domain]] = {
        c.kind: c for c in (Categorical, Op, Bool, Int, Float, Inputs)
    }
    cls = kinds.get(data.get("kind", ""))
    if cls is None:
        raise SpaceError(f"unknown domain kind {data.get('kind')!r}; known: {sorted(kinds)}")
    if "choices" in fields:
        fields["choices"] = tuple(fields["choices"])
    return cls(**fields)
