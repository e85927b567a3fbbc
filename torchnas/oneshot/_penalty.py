"""Hardware-aware one-shot search: the cost of a supernet's architecture, measured per candidate.

Each candidate of each mixed op is measured once on the built module: its parameters (always),
or its FLOPs / latency on the input shape the probe saw (through
:mod:`torchnas.evaluation._cost` when it provides ``flops`` / ``latency``, else with
:class:`~torch.utils.flop_counter.FlopCounterMode` and a timer), or its peak training memory
(the memory a forward and backward pass of the candidate alone holds beyond its input, at the
search's batch size, in MB). The expected cost of the architecture distribution,
``base + sum over ops of softmax(logits) . costs``, is differentiable: it enters the search
loss as a penalty.

Several costs may be penalized at once: one :class:`CostTerm` per metric, each with a weight, a
target or both (:func:`parse_costs` reads ``costs={"latency_ms": {"target": 2.0}, ...}``).
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchnas._util.errors import ConfigError
from torchnas.oneshot._supernet import Supernet

__all__ = ["ALIASES", "METRICS", "CostModel", "CostTerm", "parse_costs"]

METRICS = ("params", "flops", "latency", "peak_memory")
#: Other names of the metrics (the names their units give them elsewhere in torchnas).
ALIASES = {"latency_ms": "latency", "peak_memory_mb": "peak_memory"}
_SPEC_KEYS = ("weight", "target")


def metric_name(metric: str) -> str:
    """The metric an alias names (``"latency_ms"``: ``"latency"``); others as they are."""
    return ALIASES.get(metric, metric)


@dataclass(frozen=True)
class CostTerm:
    """One penalized cost: a metric with a weight, a target or both.

    Attributes:
        metric: one of :data:`METRICS`.
        weight: ``None`` when not given. Without ``target``: the penalty is ``weight`` times
            the expected cost scaled to ``[0, 1]`` between the cheapest and the costliest
            architecture; SPOS and ENAS subtract the same of a path's cost from its fitness.
        target: with it, gradient methods (DARTS, PC-DARTS, GDAS) penalize
            ``weight * relu(expected / target - 1)`` (``weight`` 1 when not given); SPOS
            never evaluates a path above it; ENAS, without a weight, subtracts
            ``relu(cost / target - 1)`` from the reward.
    """

    metric: str
    weight: float | None = None
    target: float | None = None

    def penalty(self, model: CostModel, net: Supernet) -> torch.Tensor | float:
        """The differentiable penalty of the architecture distribution (0.0: none)."""
        weight = self.weight if self.weight is not None else 1.0
        if not weight or (self.weight is None and self.target is None):
            return 0.0
        return model.penalty(net, weight, self.target)

    def path_penalty(self, model: CostModel, path: Mapping[str, Sequence[int]],
                     hard_target: bool) -> float:
        """What a sampled path's fitness or reward loses (SPOS: ``hard_target``, the target is
        a limit checked apart)."""
        cost = model.of_path(path)
        if self.weight:
            span = max(model.high - model.low, 1e-12)
            return self.weight * (cost - model.low) / span
        if self.weight is None and self.target is not None and not hard_target:
            return max(0.0, cost / self.target - 1.0)
        return 0.0


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def parse_costs(costs: Any, owner: str = "costs") -> list[CostTerm]:
    """The cost terms of ``{metric: {"weight": w, "target": t}}`` (either key, or both).

    Raises:
        ConfigError: naming the bad metric, key or value.
    """
    if not isinstance(costs, Mapping):
        raise ConfigError(f"{owner} must be a dict of {{metric: {{'weight': w, 'target': t}}}}, "
                          f"got {costs!r}")
    terms: list[CostTerm] = []
    seen: dict[str, str] = {}
    for key, spec in costs.items():
        metric = metric_name(key) if isinstance(key, str) else key
        if metric not in METRICS:
            raise ConfigError(f"{owner}: unknown cost metric {key!r}; known: "
                              f"{[*METRICS, *ALIASES]}")
        if metric in seen:
            raise ConfigError(f"{owner}: {key!r} and {seen[metric]!r} are the same cost "
                              f"({metric}); give it once")
        seen[metric] = key
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError(f"{owner}[{key!r}] must be a dict with 'weight', 'target' or "
                              f"both, got {spec!r}")
        for name in spec:
            if name not in _SPEC_KEYS:
                raise ConfigError(f"{owner}[{key!r}]: unknown key {name!r}; use 'weight' and/or "
                                  "'target'")
        weight: Any = spec.get("weight")
        target: Any = spec.get("target")
        if "weight" in spec and (not _number(weight) or float(weight) < 0):
            raise ConfigError(f"{owner}[{key!r}]['weight'] must be a finite number >= 0, "
                              f"got {weight!r}")
        if "target" in spec and (not _number(target) or float(target) <= 0):
            raise ConfigError(f"{owner}[{key!r}]['target'] must be a finite number > 0, "
                              f"got {target!r}")
        terms.append(CostTerm(metric, None if weight is None else float(weight),
                              None if target is None else float(target)))
    return terms


def _measure(module: nn.Module, shape: tuple[int, ...] | None, metric: str,
             device: torch.device, batch_size: int = 1) -> float:
    """The cost of one candidate module (for one sample of its input shape; peak memory: for
    a batch of ``batch_size``, in MB)."""
    if metric == "params":
        return float(sum(p.numel() for p in module.parameters()))
    if shape is None:
        raise ValueError(f"cost metric {metric!r} needs the supernet probed on an example batch")
    try:
        from torchnas.evaluation import _cost
    except ImportError:  # pragma: no cover - the cost module is optional
        _cost = None  # type: ignore[assignment]
    if metric == "peak_memory":
        return _candidate_memory(module, torch.zeros(batch_size, *shape, device=device),
                                 device) / 2**20
    x = torch.zeros(1, *shape, device=device)
    was = module.training
    module.eval()
    try:
        if metric == "flops":
            if _cost is not None and hasattr(_cost, "flops"):
                return float(_cost.flops(module, x))
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                module(x)
            return float(counter.get_total_flops())
        if _cost is not None and hasattr(_cost, "latency"):
            return float(_cost.latency(module, x, device=device, repeats=10))
        times = []
        with torch.inference_mode():
            for _ in range(12):
                start = time.perf_counter()
                module(x)
                times.append(time.perf_counter() - start)
        return statistics.median(times[2:]) * 1000.0
    finally:
        module.train(was)


def _candidate_memory(module: nn.Module, x: torch.Tensor, device: torch.device) -> float:
    """Bytes a training step (forward and backward) of one candidate holds beyond its input."""
    from torchnas.evaluation import _cost

    x = x.requires_grad_(True)  # inside a network an op's input carries gradients
    with torch.random.fork_rng(devices=[]):
        peak = _cost.peak_memory(module, x, device=device, backward=True)
    return float(max(0, peak - x.untyped_storage().nbytes()))


class CostModel:
    """Per-candidate costs of a supernet's mixed ops, and the cost of an architecture.

    Args:
        net: the supernet (probed, for ``flops``, ``latency`` and ``peak_memory``).
        metric: ``"params"``, ``"flops"``, ``"latency"`` (milliseconds, summed over ops) or
            ``"peak_memory"`` (MB a training step of each chosen candidate holds beyond its
            input, at ``batch_size`` samples, summed over ops: a proxy that ranks
            architectures, not the whole network's peak); ``"latency_ms"`` and
            ``"peak_memory_mb"`` are the same.
        device: where latency and memory are measured.
        batch_size: the batch of the memory measure (the search's).
    """

    def __init__(self, net: Supernet, metric: str = "params",
                 device: torch.device | None = None, batch_size: int = 1) -> None:
        metric = metric_name(metric)
        if metric not in METRICS:
            raise ValueError(f"cost metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric
        dev = device or torch.device("cpu")
        self.ops: list[tuple[str, torch.Tensor]] = []
        inside = 0.0
        for op in net.mixed_ops():
            costs = [_measure(m, op.input_shape, metric, dev, batch_size) for m in op.candidates]
            self.ops.append((op.label, torch.tensor(costs, dtype=torch.float32)))
            inside += sum(op.param_counts)
        total = sum(p.numel() for p in net.weight_parameters())
        self.base = float(total - inside) if metric == "params" else 0.0
        self.low = self.base + sum(float(c.min()) for _, c in self.ops)
        self.high = self.base + sum(float(c.max()) for _, c in self.ops)

    def expected(self, net: Supernet) -> torch.Tensor:
        """The expected cost under the softmax of the logits (differentiable)."""
        out = torch.tensor(self.base)
        for label, costs in self.ops:
            logits = net.choices[label].logits
            out = out.to(logits.device) + (F.softmax(logits, -1) * costs.to(logits.device)).sum()
        return out

    def of_path(self, path: Mapping[str, Sequence[int]]) -> float:
        """The cost of the architecture a path chooses."""
        return self.base + sum(float(costs[path[label][0]]) for label, costs in self.ops)

    def penalty(self, net: Supernet, weight: float, target: float | None = None) -> torch.Tensor:
        """``weight`` times the expected cost scaled to ``[0, 1]`` between the cheapest and the
        costliest architecture; with ``target``, ``weight * relu(expected / target - 1)``."""
        cost = self.expected(net)
        if target is not None:
            return weight * torch.relu(cost / float(target) - 1.0)
        span = max(self.high - self.low, 1e-12)
        return weight * (cost - self.low) / span


def training_memory(net: nn.Module, example: torch.Tensor) -> int:
    """Peak bytes of one training step's forward and backward pass on ``example``: what
    :func:`torchnas.evaluation._cost.peak_memory` measures (``backward=True``) where it exists,
    else the parameters plus every tensor autograd saves for the backward pass.

    A supernet is measured in the mode it is in; a single-path one (``"gumbel"``, ``"path"``)
    on its current path (a uniform one for ``"gumbel"``), the weights off the path frozen.
    """
    frozen: list[nn.Parameter] = []
    restore: tuple[str, dict[str, list[int]]] | None = None
    if isinstance(net, Supernet) and net.state.mode != "softmax":
        restore = (net.state.mode, dict(net.state.path))
        path = net.state.path if net.state.mode == "path" else net.random_path(random.Random(0))
        net.set_path(path)
        on_path = {id(p) for op in net.mixed_ops()
                   for p in op.candidates[path[op.label][0]].parameters()}
        inside = [p for op in net.mixed_ops() for p in op.parameters()]
        frozen = [p for p in [*inside, *net.arch_parameters()]
                  if p.requires_grad and id(p) not in on_path]
    for p in frozen:
        p.requires_grad_(False)
    try:
        return _training_memory(net, example)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        if isinstance(net, Supernet) and restore is not None:
            net.state.path = restore[1]
            net.state.set_mode(restore[0])


def _training_memory(net: nn.Module, example: torch.Tensor) -> int:
    try:
        from torchnas.evaluation import _cost
    except ImportError:  # pragma: no cover - the cost module is optional
        _cost = None  # type: ignore[assignment]
    device = next(net.parameters()).device
    if _cost is not None and hasattr(_cost, "peak_memory"):
        return int(_cost.peak_memory(net, example.to(device), device=device, backward=True))
    storages: dict[int, int] = {}
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net.train()(example.to(device))
    del out
    return sum(storages.values()) + sum(p.numel() * p.element_size() for p in net.parameters())
