"""The HP recorder: the object a space function ``build(hp)`` receives.

Every call (``hp.choice``, ``hp.int``, ``hp.float``, ``hp.bool``, ``hp.op``, ``hp.inputs``) is one
labelled decision. The recorder checks the domain, asks its *source* for a value (a fixed
architecture, a strategy, an explorer) and records what was met, in order. A label that a run
never reaches is not part of that run's architecture: conditional spaces come for free.

A weight-sharing (supernet) mode subclasses :class:`HP` and overrides :meth:`HP.op` and
:meth:`HP.inputs` to return mixed operations instead of one chosen candidate.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from torchnas._util.errors import SpaceError
from torchnas.space._domains import Bool, Categorical, Domain, Float, Inputs, Int, Op

if TYPE_CHECKING:
    from torchnas.space._handle import TrialHandle

__all__ = ["HP", "InputChoice", "Source"]

_REDUCTIONS = ("sum", "mean", "concat", "none")


def _spec(domain: Domain) -> str:
    return json.dumps(domain.to_json(), sort_keys=True)


class Source(Protocol):
    """Gives the value of a decision the recorder meets."""

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        """Returns the value for ``label`` given the decisions ``met`` so far (in order)."""
        ...


class InputChoice(nn.Module):
    """Applies a fixed choice of ``k`` out of ``n`` inputs (returned by ``hp.inputs(label, n)``).

    ``forward`` takes the list of all ``n`` candidate tensors and reduces the chosen ones.
    """

    def __init__(self, n: int, indices: Sequence[int], reduction: str = "sum") -> None:
        super().__init__()
        self.n = n
        self.indices = list(indices)
        self.reduction = reduction

    def forward(self, candidates: Sequence[torch.Tensor]) -> Any:
        if len(candidates) != self.n:
            raise ValueError(f"InputChoice expects {self.n} inputs, got {len(candidates)}")
        return reduce_inputs([candidates[i] for i in self.indices], self.reduction)

    def extra_repr(self) -> str:
        return f"n={self.n}, indices={self.indices}, reduction={self.reduction!r}"


def reduce_inputs(chosen: list[Any], reduction: str) -> Any:
    """Reduces the chosen inputs: ``sum``, ``mean``, ``concat`` (channels) or ``none`` (list)."""
    if reduction == "none":
        return chosen
    if len(chosen) == 1:
        return chosen[0]
    if reduction == "concat":
        return torch.cat(chosen, dim=1)
    total = chosen[0]
    for x in chosen[1:]:
        total = total + x
    return total / len(chosen) if reduction == "mean" else total


class HP:
    """Records the decisions a space function meets.

    Args:
        source: where values come from (a fixed architecture, a strategy, an explorer).
        trial: the running trial this run belongs to, if any (``hp.trial.report(...)``;
            a :class:`~torchnas.space.TrialHandle`).

    Attributes:
        width: the width multiplier of a low-fidelity search (``ModelSearch(fidelity=
            {"width": 0.5})``; 1 otherwise). A space opts in by passing its channel and unit
            counts through :meth:`scale`; the architecture keeps the full-width values.

    Example:
        >>> from torchnas.space import HP, FixedSource
        >>> hp = HP(FixedSource({"units": 64}))
        >>> hp.int("units", 32, 512, step=32)
        64
        >>> hp.arch
        {'units': 64}
    """

    def __init__(self, source: Source, trial: TrialHandle | None = None) -> None:
        self.source = source
        self.trial = trial
        self._values: dict[str, Any] = {}
        self._domains: dict[str, Domain] = {}
        self._scopes: list[str] = []
        self.width = 1.0

    # -- what was met ---------------------------------------------------------------------------
    @property
    def arch(self) -> dict[str, Any]:
        """The architecture: ``{label: value}`` of the decisions met so far, in order."""
        return dict(self._values)

    @property
    def domains(self) -> dict[str, Domain]:
        """``{label: domain}`` of the decisions met so far, in order."""
        return dict(self._domains)

    def __contains__(self, label: str) -> builtins.bool:
        return label in self._values

    def get(self, label: str, default: Any = None) -> Any:
        """The value already decided for ``label`` (no new decision is made)."""
        return self._values.get(label, default)

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Prefixes the labels decided inside the block with ``name/``."""
        if not isinstance(name, str) or not name or "/" in name:
            raise SpaceError(f"scope name must be a non-empty string without '/', got {name!r}")
        self._scopes.append(name)
        try:
            yield
        finally:
            self._scopes.pop()

    def scale(self, n: builtins.int) -> builtins.int:
        """``n`` channels or units at this run's width multiplier: ``max(1, round(n *
        width))`` (``n`` itself at full width)."""
        return n if self.width == 1.0 else max(1, round(n * self.width))

    # -- the decision core ----------------------------------------------------------------------
    def _full(self, label: str) -> str:
        """``label`` with the current scopes' prefix."""
        if not isinstance(label, str) or not label:
            raise SpaceError(f"a label must be a non-empty string, got {label!r}")
        return "/".join([*self._scopes, label])

    def decide(self, label: str, domain: Domain) -> Any:
        """Checks ``domain``, then returns the value of ``label`` (one decision per label)."""
        full = self._full(label)
        domain.check(full)
        known = self._domains.get(full)
        if known is not None:
            # compared as JSON: dataclass equality would take choices [1, 0] for [True, False]
            if _spec(known) != _spec(domain):
                raise SpaceError(
                    f"label {full!r} is used twice with different domains: "
                    f"{known.describe()} and {domain.describe()}"
                )
            return self._values[full]
        value = self.source.value(full, domain, self._values)
        if not domain.contains(value):
            raise SpaceError(f"label {full!r}: value {value!r} is not in {domain.describe()}")
        value = domain.normalize(value)
        self._domains[full] = domain
        self._values[full] = value
        return value

    # -- public decision kinds ------------------------------------------------------------------
    def choice(self, label: str, values: Sequence[Any]) -> Any:
        """One of ``values`` (JSON scalars)."""
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise SpaceError(
                f"label {self._full(label)!r}: choice needs a list of values, got {values!r}"
            )
        return self.decide(label, Categorical(tuple(values)))

    def int(
        self, label: str, low: builtins.int, high: builtins.int, *, step: builtins.int = 1,
        log: builtins.bool = False,
    ) -> builtins.int:
        """An integer in ``[low, high]`` (inclusive), on a grid of ``step``; log-uniform if ``log``.
        """
        return self.decide(label, Int(low, high, step, log))

    def float(
        self, label: str, low: builtins.float, high: builtins.float, *, log: builtins.bool = False,
        step: builtins.float | None = None,
    ) -> builtins.float:
        """A real in ``[low, high]``; log-uniform if ``log``; on a grid of ``step`` if given."""
        if isinstance(low, builtins.int) and not isinstance(low, builtins.bool):
            low = builtins.float(low)
        if isinstance(high, builtins.int) and not isinstance(high, builtins.bool):
            high = builtins.float(high)
        return self.decide(label, Float(low, high, log, step))

    def bool(self, label: str) -> builtins.bool:
        """``True`` or ``False``."""
        return self.decide(label, Bool())

    def op(
        self, label: str, candidates: Mapping[str, Callable[[], nn.Module] | nn.Module]
    ) -> nn.Module:
        """One of the named candidate operations, built by calling its factory.

        ``candidates`` maps names to module factories (classes, lambdas) or modules. The
        architecture records the chosen name.
        """
        if not isinstance(candidates, Mapping):
            raise SpaceError(
                f"label {self._full(label)!r}: op needs a dict {{name: module factory}}, "
                f"got {type(candidates).__name__}"
            )
        name = self.decide(label, Op(tuple(candidates)))
        made = candidates[name]
        module = made if isinstance(made, nn.Module) else made()
        if not isinstance(module, nn.Module):
            raise SpaceError(
                f"label {self._full(label)!r}: candidate {name!r} did not build an nn.Module"
            )
        return module

    def inputs(
        self, label: str, candidates: builtins.int | Sequence[Any], *, k: builtins.int = 1,
        reduction: str = "sum",
    ) -> Any:
        """Chooses ``k`` of the candidate inputs (multi-branch spaces).

        With a list of tensors, returns their ``reduction`` (``sum``, ``mean``, ``concat`` or
        ``none`` for the list). With a list of other things, returns the chosen item (``k=1``) or
        the list. With an integer ``n``, returns an :class:`InputChoice` module whose forward
        takes the ``n`` candidate tensors: the form a supernet can turn into a weighted mix.
        """
        if reduction not in _REDUCTIONS:
            raise SpaceError(
                f"label {self._full(label)!r}: reduction must be one of {_REDUCTIONS}, "
                f"got {reduction!r}"
            )
        if isinstance(candidates, builtins.int) and not isinstance(candidates, builtins.bool):
            chosen = self.decide(label, Inputs(candidates, k))
            return InputChoice(candidates, chosen, reduction)
        if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
            raise SpaceError(
                f"label {self._full(label)!r}: inputs needs a list of candidates or a count"
            )
        chosen = self.decide(label, Inputs(len(candidates), k))
        picked = [candidates[i] for i in chosen]
        if all(isinstance(x, torch.Tensor) for x in candidates):  # the type never depends on picks
            return reduce_inputs(picked, reduction)
        return picked[0] if k == 1 and reduction != "none" else picked
