"""Fixed-width vector encodings of define-by-run architectures, for surrogate models.

A predictor (BANANAS' ensemble, a surrogate model) needs every architecture as a vector of the
same width, although a conditional space makes architectures name different labels. The
:class:`Encoding` lays out one block of columns per label, in the order labels were first met:

- a finite label (``choice``, ``op``, ``bool``): one-hot over its values;
- a numeric label (``int``, ``float``): the value mapped to ``[0, 1]`` (in log space for log
  domains);
- an ``inputs`` label: multi-hot over its candidate inputs (``k`` ones out of ``n``);
- a conditional label (absent from some architecture) gets one more column, set when absent
  (the other columns of the block are then zero).

Example:
    >>> from torchnas.space import Categorical, Float
    >>> enc = Encoding.from_archs(
    ...     [{"act": "relu", "lr": 0.1}, {"act": "gelu"}],
    ...     {"act": Categorical(("relu", "gelu")), "lr": Float(0.01, 1.0, log=True)})
    >>> enc.columns
    ['act=relu', 'act=gelu', 'lr', 'lr:absent']
    >>> enc.encode({"act": "gelu"}).tolist()
    [0.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from torchnas.space import Categorical, Domain, Float, Inputs, Int

__all__ = ["Encoding"]

ABSENT = "absent"


def _scale(value: Any, domain: Int | Float) -> float:
    """A numeric value mapped to ``[0, 1]`` over its domain (log space on log domains)."""
    lo, hi, x = float(domain.low), float(domain.high), float(value)
    if domain.log:
        lo, hi, x = math.log(lo), math.log(hi), math.log(max(x, domain.low))
    if hi <= lo:
        return 0.0
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


@dataclass(frozen=True)
class Encoding:
    """A deterministic layout of columns over labels, and the encoder it defines.

    Attributes:
        domains: each label's domain, in column order (the order labels were first met).
        conditional: labels that get an ``absent`` column.
        columns: one name per column: ``label=value`` (one-hot), ``label`` (numeric),
            ``label[i]`` (multi-hot input ``i``), ``label:absent``.
    """

    domains: dict[str, Domain]
    conditional: frozenset[str] = frozenset()
    columns: list[str] = field(init=False, repr=False, compare=False)
    _offsets: dict[str, int] = field(init=False, repr=False, compare=False)
    _index: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)
    _fast: dict[str, dict[tuple[type, Any], int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        columns: list[str] = []
        offsets: dict[str, int] = {}
        index: dict[str, dict[str, int]] = {}
        fast: dict[str, dict[tuple[type, Any], int]] = {}
        for label, dom in self.domains.items():
            offsets[label] = len(columns)
            if isinstance(dom, Categorical):
                index[label] = {json.dumps(v): i for i, v in enumerate(dom.choices)}
                fast[label] = {(type(v), v): i for i, v in enumerate(dom.choices)
                               if isinstance(v, (str, int, float, bool, type(None)))}
                columns += [f"{label}={json.dumps(v) if not isinstance(v, str) else v}"
                            for v in dom.choices]
            elif isinstance(dom, Inputs):
                columns += [f"{label}[{i}]" for i in range(dom.n)]
            elif isinstance(dom, (Int, Float)):
                columns.append(label)
            else:
                raise TypeError(f"label {label!r}: cannot encode a {type(dom).__name__} domain")
            if label in self.conditional:
                columns.append(f"{label}:{ABSENT}")
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_fast", fast)

    @classmethod
    def from_archs(cls, archs: Iterable[Mapping[str, Any]],
                   domains: Mapping[str, Domain]) -> Encoding:
        """The layout for ``domains`` (their order is kept), where a label is conditional when
        one of ``archs`` lacks it."""
        archs = list(archs)
        conditional = frozenset(lb for lb in domains if any(lb not in a for a in archs))
        return cls(dict(domains), conditional)

    @property
    def width(self) -> int:
        """The number of columns."""
        return len(self.columns)

    def encode(self, arch: Mapping[str, Any]) -> np.ndarray:
        """One architecture as a float vector of :attr:`width` entries.

        Labels the layout does not know are ignored; a value outside its domain sets no one-hot
        column and clips numbers to ``[0, 1]``.
        """
        out = np.zeros(self.width)
        self._fill(out, arch)
        return out

    def encode_many(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Architectures as the rows of an ``(len(archs), width)`` matrix."""
        out = np.zeros((len(archs), self.width))
        for row, arch in zip(out, archs, strict=True):
            self._fill(row, arch)
        return out

    def _fill(self, out: np.ndarray, arch: Mapping[str, Any]) -> None:
        for label, dom in self.domains.items():
            at = self._offsets[label]
            if label not in arch:
                if label in self.conditional:
                    out[at + self._block(label, dom)] = 1.0
                continue
            value = arch[label]
            if isinstance(dom, Categorical):
                try:  # plain values without a JSON round trip (True and 1 stay apart)
                    i = self._fast[label].get((type(value), value))
                except TypeError:  # unhashable (a list)
                    i = None
                if i is None:
                    i = self._index[label].get(json.dumps(value))
                if i is not None:
                    out[at + i] = 1.0
            elif isinstance(dom, Inputs):
                for i in value:
                    if isinstance(i, int) and 0 <= i < dom.n:
                        out[at + i] = 1.0
            elif isinstance(dom, (Int, Float)):
                out[at] = _scale(value, dom)

    @staticmethod
    def _block(label: str, dom: Domain) -> int:
        """The width of a label's block, not counting its ``absent`` column."""
        if isinstance(dom, Categorical):
            return len(dom.choices)
        if isinstance(dom, Inputs):
            return dom.n
        return 1
