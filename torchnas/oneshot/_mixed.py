"""Mixed operations: the modules a supernet puts where ``hp.op`` and ``hp.inputs`` stand.

A :class:`MixedOp` holds every candidate module of one ``hp.op`` label; a :class:`MixedInput`
stands for one ``hp.inputs`` label. Neither owns architecture weights: both read them from the
supernet's :class:`ArchState`, shared by every mixed module (a label used twice shares its
weights, as it shares its choice in a discrete model). The state's ``mode`` says how a forward
pass combines the candidates:

* ``"softmax"`` (DARTS): the softmax-weighted sum of every candidate's output;
* ``"gumbel"`` (GDAS): one candidate per pass, drawn by a hard Gumbel-softmax whose
  straight-through weight lets gradients reach the architecture logits;
* ``"path"`` (SPOS, ENAS, evaluation of a discrete architecture): the candidates that
  ``state.path`` names, nothing else runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchnas._util.errors import SpaceError
from torchnas.space._hp import reduce_inputs

__all__ = ["MODES", "ArchState", "MixedInput", "MixedOp", "Searched"]

MODES = ("softmax", "gumbel", "path")


@dataclass(eq=False)
class Searched:
    """One searched label: its candidates and architecture logits.

    Attributes:
        label: the full label.
        kind: ``"op"`` (values are candidate names) or ``"inputs"`` (sorted index lists).
        names: the candidates' names (``"0"``, ``"1"``, ... for inputs).
        k: how many are chosen (1 for ops).
        logits: the architecture parameter (one logit per candidate).
        modules: the mixed modules that use this label.
    """

    label: str
    kind: str
    names: tuple[str, ...]
    k: int
    logits: nn.Parameter
    modules: list[nn.Module] = field(default_factory=list)

    def value(self, indices: Sequence[int]) -> Any:
        """The architecture value of chosen candidate indices."""
        if self.kind == "op":
            return self.names[indices[0]]
        return sorted(int(i) for i in indices)

    def indices(self, value: Any) -> list[int]:
        """Candidate indices of an architecture value (inverse of :meth:`value`)."""
        if self.kind == "op":
            if value not in self.names:
                raise SpaceError(f"label {self.label!r}: {value!r} is not one of {self.names}")
            return [self.names.index(value)]
        return sorted(int(i) for i in value)


class ArchState:
    """The architecture side of a supernet: logits per label, mode, current path.

    Args:
        partial_channels: ``K`` > 1 sends only the first ``1/K`` of the channels through the
            candidates of every op (PC-DARTS); the rest bypass them.
        seed: seed of the Gumbel noise.
    """

    def __init__(self, partial_channels: int = 1, seed: int = 0) -> None:
        self.choices: dict[str, Searched] = {}
        self.mode = "softmax"
        self.tau = 1.0
        self.path: dict[str, list[int]] = {}
        self.aux_skip = 0.0
        self.partial_channels = partial_channels
        self.probing = False
        self.generator = torch.Generator().manual_seed(seed)
        self._pass: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pass"] = {}  # a pass's weights belong to its autograd graph: never copied
        return state

    def add(self, label: str, kind: str, names: Sequence[str], k: int = 1) -> Searched:
        """The searched label ``label`` (created at its first use, shared after)."""
        found = self.choices.get(label)
        if found is None:
            logits = nn.Parameter(1e-3 * torch.randn(len(names), generator=self.generator))
            found = self.choices[label] = Searched(label, kind, tuple(names), k, logits)
        return found

    def set_mode(self, mode: str) -> None:
        """``"softmax"``, ``"gumbel"`` or ``"path"``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.new_pass()

    def new_pass(self) -> None:
        """Forgets the weights of the last pass (new Gumbel draws, fresh autograd graph)."""
        self._pass.clear()

    def weights(self, label: str) -> torch.Tensor:
        """Softmax of the label's logits (computed once per pass)."""
        if label not in self._pass:
            self._pass[label] = F.softmax(self.choices[label].logits, dim=-1)
        out: torch.Tensor = self._pass[label]
        return out

    def sample(self, label: str) -> tuple[torch.Tensor, list[int]]:
        """A hard Gumbel top-k draw: straight-through weights (1 in value) and the indices."""
        if label not in self._pass:
            c = self.choices[label]
            u = torch.rand(len(c.names), generator=self.generator).clamp_(1e-9, 1 - 1e-9)
            noisy = c.logits + (-torch.log(-torch.log(u))).to(c.logits.device)
            soft = F.softmax(noisy / self.tau, dim=-1)
            picked = torch.topk(noisy.detach(), c.k).indices.tolist()
            hard = torch.zeros_like(soft)
            hard[picked] = 1.0
            self._pass[label] = (hard - soft.detach() + soft, sorted(picked))
        weights, picked = self._pass[label]
        return weights, picked

    def chosen(self, label: str) -> list[int]:
        """The candidate indices of the current path."""
        try:
            return self.path[label]
        except KeyError:
            raise SpaceError(f"supernet in path mode: no path set for label {label!r}") from None


class MixedOp(nn.Module):
    """Every candidate of one ``hp.op`` label (or of ``hp.inputs`` over modules), mixed.

    Args:
        label: the full label.
        candidates: the built candidate modules, in the order of ``state.choices[label].names``.
        state: the supernet's architecture state.
        partial: apply partial channels (the state's ``partial_channels``) to this op.
    """

    def __init__(self, label: str, candidates: Sequence[nn.Module], state: ArchState,
                 partial: bool = False) -> None:
        super().__init__()
        self.label = label
        self.candidates = nn.ModuleList(candidates)
        self.state = state
        self.partial = partial
        self.param_counts = [sum(p.numel() for p in m.parameters()) for m in candidates]
        self.input_shape: tuple[int, ...] | None = None  # per sample, seen by the probe
        self.zero = [False] * len(candidates)  # candidates whose output was all zeros

    @property
    def names(self) -> tuple[str, ...]:
        return self.state.choices[self.label].names

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        k = self.state.partial_channels if self.partial else 1
        if k <= 1 or not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[1] < k:
            return self._mix(x, *args, **kwargs)
        c = x.shape[1] // k  # PC-DARTS: the first C/K channels go through, the rest bypass
        part, rest = x[:, :c], x[:, c:]
        out = self._mix(part, *args, **kwargs)
        if out.shape[2:] != rest.shape[2:]:
            pool = F.adaptive_max_pool1d if rest.ndim == 3 else F.adaptive_max_pool2d
            rest = pool(rest, out.shape[2:])
        out = torch.cat([out, rest], dim=1)
        channels = out.shape[1]
        if channels % k:
            return out
        return out.view(out.shape[0], k, channels // k, *out.shape[2:]).transpose(1, 2).reshape(
            out.shape)

    def _mix(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        state = self.state
        if state.probing:
            return self._probe(x, *args, **kwargs)
        if state.mode == "path":
            out = self.candidates[state.chosen(self.label)[0]](x, *args, **kwargs)
        elif state.mode == "gumbel":
            weights, picked = state.sample(self.label)
            out = weights[picked[0]] * self.candidates[picked[0]](x, *args, **kwargs)
        else:
            weights = state.weights(self.label)
            outs = [m(x, *args, **kwargs) for m in self.candidates]
            self._check_shapes(outs)
            out = sum(w * o for w, o in zip(weights, outs, strict=True))
        if state.aux_skip and isinstance(x, torch.Tensor) and out.shape == x.shape:
            out = out + state.aux_skip * x  # DARTS-: an auxiliary skip, decayed to 0
        return out

    def _probe(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Runs every candidate once: checks shapes, notes the input shape and zero outputs."""
        if isinstance(x, torch.Tensor):
            self.input_shape = tuple(x.shape[1:])
        outs = []
        for name, m in zip(self.names, self.candidates, strict=True):
            try:
                outs.append(m(x, *args, **kwargs))
            except Exception as exc:
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise SpaceError(
                    f"supernet: label {self.label!r}, candidate {name!r} fails on an input "
                    f"shaped {shape}: {type(exc).__name__}: {exc}"
                    + (f" (partial_channels={self.state.partial_channels}: the space must build "
                       "this op's candidates for channels // hp.partial_channels)"
                       if self.partial and self.state.partial_channels > 1 else "")
                ) from exc
        self._check_shapes(outs)
        self.zero = [isinstance(o, torch.Tensor) and not bool(o.detach().abs().amax() > 0)
                     for o in outs]
        weights = F.softmax(self.state.choices[self.label].logits, dim=-1)
        return sum(w * o for w, o in zip(weights, outs, strict=True))

    def _check_shapes(self, outs: list[Any]) -> None:
        shapes = [tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
                  for o in outs]
        if len(set(shapes)) > 1:
            listed = ", ".join(f"{n}: {s}" for n, s in zip(self.names, shapes, strict=True))
            raise SpaceError(
                f"supernet: the candidates of label {self.label!r} return different shapes "
                f"({listed}); a weight-sharing supernet runs them all on one input, so they "
                "must agree (fix the label with `fixed=` to search the rest)"
            )

    def extra_repr(self) -> str:
        return f"label={self.label!r}, candidates={list(self.names)}"


class MixedInput(nn.Module):
    """Stands for ``hp.inputs(label, n, k, reduction)``: ``forward`` takes the ``n`` candidates.

    Softmax mode: ``sum`` gives ``k * sum_i w_i x_i`` and ``mean`` ``sum_i w_i x_i`` (what
    choosing ``k`` inputs gives on average); ``concat`` and ``none`` keep the ``k`` heaviest
    inputs, each scaled by a straight-through weight. Gumbel mode draws ``k`` inputs; path mode
    takes ``state.path[label]``.
    """

    def __init__(self, label: str, n: int, k: int, reduction: str, state: ArchState) -> None:
        super().__init__()
        self.label, self.n, self.k, self.reduction = label, n, k, reduction
        self.state = state

    def forward(self, candidates: Sequence[torch.Tensor]) -> Any:
        if len(candidates) != self.n:
            raise ValueError(f"input choice {self.label!r} expects {self.n} inputs, "
                             f"got {len(candidates)}")
        state = self.state
        if state.mode == "path" and not state.probing:
            return reduce_inputs([candidates[i] for i in state.chosen(self.label)],
                                 self.reduction)
        if state.mode == "gumbel" and not state.probing:
            weights, picked = state.sample(self.label)
        else:
            weights = state.weights(self.label)
            if self.reduction in ("sum", "mean"):
                total = sum(w * x for w, x in zip(weights, candidates, strict=True))
                return total * self.k if self.reduction == "sum" else total
            picked = sorted(torch.topk(weights.detach(), self.k).indices.tolist())
            weights = weights / weights.detach()  # 1 in value, gradient to the logits
        return reduce_inputs([weights[i] * candidates[i] for i in picked], self.reduction)

    def extra_repr(self) -> str:
        return f"label={self.label!r}, n={self.n}, k={self.k}, reduction={self.reduction!r}"
