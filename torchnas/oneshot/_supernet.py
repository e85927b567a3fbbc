"""Supernet mode of the HP recorder: the same space function, every candidate built at once.

``SupernetHP`` is an :class:`~torchnas.space.HP` whose ``hp.op`` returns a :class:`MixedOp` over
all candidates and whose ``hp.inputs`` returns a :class:`MixedInput` (or, over a list of
tensors, their mix at once). Value decisions (``choice``, ``int``, ``float``, ``bool``, and
``hp.inputs`` over things that are neither tensors nor modules) would change shapes, so they are
**fixed**: to the value given in ``fixed``, else to the domain's default (the first choice, the
low end of an int, the middle of a float range). ``fixed`` may also name ``hp.op``/``hp.inputs``
labels: those are built as chosen and not searched.

:class:`Supernet` wraps the model the space returns and keeps the two kinds of parameters
apart: :meth:`Supernet.arch_parameters` (one logit vector per searched label) and
:meth:`Supernet.weight_parameters` (the model's weights). :meth:`Supernet.derive` turns the
logits into an architecture of the same space: the JSON dict every other part of torchnas uses.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchnas._util.errors import SpaceError
from torchnas.oneshot._mixed import ArchState, MixedInput, MixedOp, Searched
from torchnas.space import HP, Domain, FixedSource, Inputs, Op

__all__ = ["Supernet", "SupernetHP", "check_arch"]

SpaceFn = Callable[[HP], nn.Module]


class _FixedOrDefault:
    """Values of the decisions a supernet does not search: ``fixed[label]``, else the default."""

    def __init__(self, fixed: Mapping[str, Any]) -> None:
        self.fixed = fixed

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        return self.fixed.get(label, domain.default)


class SupernetHP(HP):
    """The HP recorder in weight-sharing mode.

    Args:
        fixed: values of labels not to search (value decisions default to their domain's
            default when absent).
        partial_channels: ``K`` for PC-DARTS. A space that supports it builds its ``hp.op``
            candidates for ``channels // hp.partial_channels`` channels (the built-in ``cell``
            space does); the mixed op then feeds them the first ``1/K`` of the channels.
        seed: seed of the initial architecture logits and the Gumbel noise.
    """

    def __init__(self, fixed: Mapping[str, Any] | None = None, *, partial_channels: int = 1,
                 seed: int = 0) -> None:
        self.fixed = dict(fixed or {})
        super().__init__(_FixedOrDefault(self.fixed))
        if isinstance(partial_channels, bool) or not isinstance(partial_channels, int) or (
                partial_channels < 1):
            raise ValueError(f"partial_channels must be an integer >= 1, got {partial_channels!r}")
        self.partial_channels = partial_channels
        self.state = ArchState(partial_channels, seed)

    def op(self, label: str, candidates: Mapping[str, Callable[[], nn.Module] | nn.Module]
           ) -> nn.Module:
        """A :class:`MixedOp` over every candidate (built now, all of them)."""
        full = self._full(label)
        if full in self.fixed or not isinstance(candidates, Mapping) or len(candidates) < 2:
            return super().op(label, candidates)
        self.decide(label, Op(tuple(candidates)))  # checks the domain; a placeholder value
        built = []
        for name, made in candidates.items():
            module = made if isinstance(made, nn.Module) else made()
            if not isinstance(module, nn.Module):
                raise SpaceError(f"label {full!r}: candidate {name!r} did not build an nn.Module")
            built.append(module)
        self.state.add(full, "op", tuple(candidates))
        mixed = MixedOp(full, built, self.state, partial=self.partial_channels > 1)
        self.state.choices[full].modules.append(mixed)
        return mixed

    def inputs(self, label: str, candidates: int | Sequence[Any], *, k: int = 1,
               reduction: str = "sum") -> Any:
        """A :class:`MixedInput` (``n`` given as a count), the mix of a list of tensors, or a
        :class:`MixedOp` over a list of modules (``k=1``); anything else is a fixed value."""
        full = self._full(label)
        count = isinstance(candidates, int) and not isinstance(candidates, bool)
        items: Sequence[Any] = [] if isinstance(candidates, int) else candidates
        n = candidates if isinstance(candidates, int) else (
            len(items) if isinstance(items, Sequence) else 0)
        tensors = bool(items) and all(isinstance(x, torch.Tensor) for x in items)
        modules = bool(items) and all(isinstance(x, nn.Module) for x in items)
        searchable = count or tensors or (modules and k == 1 and reduction != "none")
        if (full in self.fixed or not searchable or isinstance(items, str)
                or reduction not in ("sum", "mean", "concat", "none") or not 1 <= k < n):
            return super().inputs(label, candidates, k=k, reduction=reduction)
        self.decide(label, Inputs(n, k))
        searched = self.state.add(full, "inputs", tuple(str(i) for i in range(n)), k)
        mixed: nn.Module
        if modules:
            mixed = MixedOp(full, list(items), self.state, partial=False)
        else:
            mixed = MixedInput(full, n, k, reduction, self.state)
        searched.modules.append(mixed)
        return mixed(list(items)) if tensors else mixed


class Supernet(nn.Module):
    """A space function built in weight-sharing mode.

    Args:
        space_fn: the space, ``space_fn(hp) -> nn.Module`` (the same function multi-trial
            search uses).
        example: a batch of inputs; when given, every candidate runs once on it now
            (:meth:`probe`): shapes that disagree fail here naming the label.
        fixed, partial_channels, seed: see :class:`SupernetHP`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> def space(hp):
        ...     op = hp.op("op", {"id": nn.Identity, "lin": lambda: nn.Linear(4, 4)})
        ...     return nn.Sequential(op, nn.Linear(4, 2))
        >>> net = Supernet(space, torch.zeros(3, 4))
        >>> [p.shape for p in net.arch_parameters()]
        [torch.Size([2])]
        >>> sorted(net.derive())
        ['op']
    """

    def __init__(self, space_fn: SpaceFn, example: torch.Tensor | None = None, *,
                 fixed: Mapping[str, Any] | None = None, partial_channels: int = 1,
                 seed: int = 0) -> None:
        super().__init__()
        hp = SupernetHP(fixed, partial_channels=partial_channels, seed=seed)
        model = space_fn(hp)
        if not isinstance(model, nn.Module):
            raise SpaceError(f"the space returned {type(model).__name__}, not an nn.Module")
        self.model = model
        self.hp = hp
        self.state = hp.state
        self.alphas = nn.ParameterList([c.logits for c in self.state.choices.values()])
        if example is not None:
            self.probe(example)

    @property
    def choices(self) -> dict[str, Searched]:
        """The searched labels, in the order the space met them."""
        return self.state.choices

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.state.new_pass()
        return self.model(*args, **kwargs)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture logits (one tensor per searched label)."""
        return list(self.alphas)

    def weight_parameters(self) -> list[nn.Parameter]:
        """The model's weights (every candidate's), never an architecture logit."""
        return list(self.model.parameters())

    def mixed_ops(self) -> list[MixedOp]:
        """Every mixed op module (several per label when a label is used more than once)."""
        return [m for m in self.model.modules() if isinstance(m, MixedOp)]

    @torch.no_grad()
    def probe(self, example: torch.Tensor) -> None:
        """Runs every candidate once on ``example`` (eval mode): checks that the candidates of
        each label agree on shapes (else :class:`SpaceError` naming it), notes each op's input
        shape (for FLOPs and latency) and which candidates output zeros."""
        was = self.training
        self.state.probing = True
        try:
            self.eval()(example)
        finally:
            self.state.probing = False
            self.train(was)

    # -- architectures --------------------------------------------------------------------------
    def probabilities(self) -> dict[str, dict[str, float]]:
        """``{label: {candidate: softmax weight}}``."""
        return {label: dict(zip(c.names, torch.softmax(c.logits.detach(), -1).tolist(),
                                strict=True))
                for label, c in self.choices.items()}

    def zero_candidates(self) -> dict[str, list[int]]:
        """``{label: indices}`` of the op candidates whose output was all zeros when the
        supernet was probed (``none``), for the labels that have other candidates."""
        zero: dict[str, set[int]] = {}
        for op in self.mixed_ops():
            if self.choices[op.label].kind == "op":
                zero.setdefault(op.label, set()).update(i for i, z in enumerate(op.zero) if z)
        return {label: sorted(found) for label, found in zero.items()
                if found and len(found) < len(self.choices[label].names)}

    def allowed(self, exclude_zero: bool = False) -> dict[str, list[int]]:
        """The candidate indices of each label a path may take (all, or all but the zero
        candidates)."""
        zero = self.zero_candidates() if exclude_zero else {}
        return {label: [i for i in range(len(c.names)) if i not in zero.get(label, ())]
                for label, c in self.choices.items()}

    def best_path(self, exclude_zero: bool = False) -> dict[str, list[int]]:
        """The heaviest ``k`` candidates of each label (with ``exclude_zero``, never a
        candidate that outputs zeros: DARTS' derivation)."""
        out = {}
        for label, allowed in self.allowed(exclude_zero).items():
            c = self.choices[label]
            logits = c.logits.detach()[allowed]
            out[label] = sorted(allowed[i] for i in torch.topk(logits, c.k).indices.tolist())
        return out

    def random_path(self, rng: random.Random, exclude_zero: bool = False
                    ) -> dict[str, list[int]]:
        """One uniform draw per label (SPOS), among :meth:`allowed` candidates."""
        return {label: sorted(rng.sample(allowed, self.choices[label].k))
                for label, allowed in self.allowed(exclude_zero).items()}

    def set_path(self, path: Mapping[str, Sequence[int]]) -> None:
        """Path mode on the given candidate indices (one list per searched label)."""
        missing = sorted(set(self.choices) - set(path))
        if missing:
            raise SpaceError(f"the path lacks the searched labels {missing}")
        self.state.path = {label: list(path[label]) for label in self.choices}
        self.state.set_mode("path")

    def arch(self, path: Mapping[str, Sequence[int]]) -> dict[str, Any]:
        """The architecture of a path: the fixed decisions plus the path's choices."""
        out = dict(self.hp.arch)
        for label, c in self.choices.items():
            out[label] = c.value(path[label])
        return out

    def path_of(self, arch: Mapping[str, Any]) -> dict[str, list[int]]:
        """The path of an architecture of this space (inverse of :meth:`arch`)."""
        return {label: c.indices(arch[label]) for label, c in self.choices.items()}

    def derive(self) -> dict[str, Any]:
        """The discrete architecture the logits prefer: the same JSON dict as every trial's."""
        return self.arch(self.best_path())


def check_arch(space_fn: SpaceFn, arch: Mapping[str, Any]) -> nn.Module:
    """Builds ``arch`` as a standalone model and checks the run met exactly its labels.

    Raises:
        SpaceError: when the space, built discretely, meets other labels (a space whose
            structure depends on an op's value, which a supernet cannot follow).
    """
    hp = HP(FixedSource(arch))
    model = space_fn(hp)
    if hp.arch != dict(arch):
        extra = sorted(set(arch) - set(hp.arch))
        raise SpaceError(f"the derived architecture does not rebuild exactly (labels not met: "
                         f"{extra}); the space's structure depends on a searched op or input")
    return model
