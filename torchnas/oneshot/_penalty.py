"""Hardware-aware one-shot search: the cost of a supernet's architecture, measured per candidate.

Each candidate of each mixed op is measured once on the built module: its parameters (always),
or its FLOPs / latency on the input shape the probe saw (through
:mod:`torchnas.evaluation._cost` when it provides ``flops`` / ``latency``, else with
:class:`~torch.utils.flop_counter.FlopCounterMode` and a timer). The expected cost of the
architecture distribution, ``base + sum over ops of softmax(logits) . costs``, is
differentiable: it enters the search loss as a penalty.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchnas.oneshot._supernet import Supernet

__all__ = ["METRICS", "CostModel"]

METRICS = ("params", "flops", "latency")


def _measure(module: nn.Module, shape: tuple[int, ...] | None, metric: str,
             device: torch.device) -> float:
    """The cost of one candidate module (for one sample of its input shape)."""
    if metric == "params":
        return float(sum(p.numel() for p in module.parameters()))
    if shape is None:
        raise ValueError(f"cost metric {metric!r} needs the supernet probed on an example batch")
    x = torch.zeros(1, *shape, device=device)
    try:
        from torchnas.evaluation import _cost
    except ImportError:  # pragma: no cover - the cost module is optional
        _cost = None  # type: ignore[assignment]
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


class CostModel:
    """Per-candidate costs of a supernet's mixed ops, and the cost of an architecture.

    Args:
        net: the supernet (probed, for ``flops`` and ``latency``).
        metric: ``"params"``, ``"flops"`` or ``"latency"`` (milliseconds, summed over ops).
        device: where latency is timed.
    """

    def __init__(self, net: Supernet, metric: str = "params",
                 device: torch.device | None = None) -> None:
        if metric == "latency_ms":
            metric = "latency"
        if metric not in METRICS:
            raise ValueError(f"cost metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric
        dev = device or torch.device("cpu")
        self.ops: list[tuple[str, torch.Tensor]] = []
        inside = 0.0
        for op in net.mixed_ops():
            costs = [_measure(m, op.input_shape, metric, dev) for m in op.candidates]
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
