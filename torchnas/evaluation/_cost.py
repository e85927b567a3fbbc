"""Hardware cost of a model, measured on the model itself: parameters, FLOPs, memory, latency.

Nothing here is estimated from a formula: FLOPs are counted by
:class:`torch.utils.flop_counter.FlopCounterMode` while a forward pass runs, memory is what the
pass really allocates, latency is timed on the target device. Every function leaves the model
as it found it (training mode, weights, gradients, device).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from torchnas.evaluation._proxies import PROXIES, proxy

__all__ = ["COST_METRICS", "flops", "latency", "measure", "params", "peak_memory"]

Inputs = torch.Tensor | Sequence[torch.Tensor]

#: The cost metrics a search can name as objectives or constraints (``latency`` is reported as
#: ``latency_ms``), all measurable on a built, untrained model.
COST_METRICS: tuple[str, ...] = ("params", "flops", "peak_memory", "latency_ms")


def params(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``), shared tensors counted once.

    Example:
        >>> params(torch.nn.Linear(10, 3))
        33
    """
    seen = {id(p): p.numel() for p in model.parameters() if p.requires_grad}
    return sum(seen.values())


def flops(model: nn.Module, example_input: Inputs) -> float:
    """Floating-point operations of one forward pass, per sample, in eval mode.

    Counted by :class:`~torch.utils.flop_counter.FlopCounterMode` on a real forward pass of
    ``example_input`` (divided by its batch size). Its convention: a multiply-add counts as
    **2** FLOPs (a ``Linear(i, o)`` costs ``2*i*o`` per sample, a convolution
    ``2 * c_in/groups * prod(kernel) * c_out * prod(output size)``); bias additions,
    activations, normalization and pooling count 0.

    Example:
        >>> flops(torch.nn.Linear(10, 3), torch.zeros(4, 10))
        60.0
    """
    inputs = _as_tuple(example_input)
    with _eval(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() / _batch(inputs)


def peak_memory(model: nn.Module, example_input: Inputs, device: str | torch.device = "cpu",
                backward: bool = False) -> int:
    """Peak bytes allocated by a forward (and, with ``backward``, backward) pass.

    The figure counts the model's parameters and buffers, the input, and the most memory the
    pass holds at once beyond them (activations, saved tensors, gradients).

    * CUDA: ``torch.cuda.max_memory_allocated`` over the pass (its peak statistics are reset
      first), less what was allocated before it, plus the model's and the input's bytes.
    * CPU (and any other device): an allocation tracker, a ``TorchDispatchMode`` that records
      the storage of every tensor each ATen operator creates and drops it when the storage is
      freed (weak references to the storages, checked at every operator). It is exact at
      operator granularity; scratch memory inside one kernel is not seen.

    Without ``backward`` the pass runs in eval mode under ``torch.no_grad`` (inference);
    with it, a copy of the model runs in train mode and the gradients of a sum of its outputs
    are taken with ``torch.autograd.grad`` (the model's own ``.grad`` is untouched).

    Args:
        model: the network.
        example_input: a batch (a tensor, or a tuple of tensors for several inputs).
        device: where to measure; the model is copied there if it lives elsewhere.
        backward: include the backward pass (training memory).

    Returns:
        bytes.
    """
    dev = torch.device(device)
    net = _on(model, dev, copy_anyway=backward)
    inputs = tuple(t.to(dev) for t in _as_tuple(example_input))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        _pass(net, inputs, backward)
        torch.cuda.synchronize(dev)
        extra = torch.cuda.max_memory_allocated(dev) - before
        return extra + _resident_bytes(net, inputs)
    tracker = _AllocationTracker()
    tracker.track([*net.parameters(), *net.buffers(), *inputs])
    with tracker:
        _pass(net, inputs, backward)
    return tracker.peak


def latency(model: nn.Module, example_input: Inputs, device: str | torch.device = "cpu",
            batch_size: int | None = 1, warmup: int = 5, repeats: int = 30,
            threads: int | None = None) -> float:
    """Median wall time of one forward pass, in milliseconds.

    The model runs in eval mode under ``torch.inference_mode``; each of ``repeats`` passes is
    timed with ``time.perf_counter`` (on CUDA the device is synchronized before and after), after
    ``warmup`` untimed passes. The median resists the outliers of a shared machine.

    Args:
        model: the network (copied to ``device`` if it lives elsewhere).
        example_input: a batch shaped like the model's input.
        device: the target device.
        batch_size: samples per pass: the first sample of ``example_input`` repeated; ``None``
            uses ``example_input`` as given.
        warmup: untimed passes first.
        repeats: timed passes.
        threads: ``torch.set_num_threads`` for the measurement (restored after); ``None``
            keeps the current setting.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    dev = torch.device(device)
    net = _on(model, dev)
    inputs = tuple(t.to(dev) for t in _as_tuple(example_input))
    if batch_size is not None:
        inputs = tuple(t[:1].expand(batch_size, *t.shape[1:]).contiguous() for t in inputs)
    sync: Callable[[], None] = (
        (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None))
    times = []
    with _threads(threads), _eval(net), torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            net(*inputs)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def measure(model: nn.Module, names: Sequence[str], example_input: Inputs, *,
            batch: tuple[torch.Tensor, torch.Tensor] | None = None,
            device: str | torch.device = "cpu", batch_size: int = 1, warmup: int = 5,
            repeats: int = 30, threads: int | None = None, backward: bool = False,
            seed: int = 0) -> dict[str, float]:
    """The metrics among ``names`` that the built, untrained model gives: cost metrics
    (:data:`COST_METRICS`) and zero-cost proxies (``PROXIES``); other names are skipped.

    Args:
        model: the network (left as it was).
        names: metric names, in the order wanted.
        example_input: one sample as a batch of one (``flops`` per sample; ``latency_ms`` and
            ``peak_memory`` repeat it ``batch_size`` times).
        batch: ``(inputs, targets)`` the proxies score on (needed only for proxies).
        device, batch_size, warmup, repeats, threads: as for :func:`latency`; ``device`` is
            also where ``peak_memory`` and the proxies are measured.
        backward: ``peak_memory`` of a training step rather than of inference.
        seed: the proxies' seed.
    """
    x = _as_tuple(example_input)
    batched = tuple(t[:1].expand(batch_size, *t.shape[1:]).contiguous() for t in x)
    out: dict[str, float] = {}
    for name in names:
        if name == "params":
            out[name] = float(params(model))
        elif name == "flops":
            out[name] = flops(model, x)
        elif name == "peak_memory":
            out[name] = float(peak_memory(model, batched, device, backward=backward))
        elif name == "latency_ms":
            out[name] = latency(model, x, device, batch_size, warmup, repeats, threads)
        elif name in PROXIES:
            if batch is None:
                raise ValueError(f"the proxy {name!r} needs a batch of (inputs, targets)")
            out[name] = proxy(name, model, *batch, seed=seed, device=device)
    return out


# -- helpers ------------------------------------------------------------------------------------
class _AllocationTracker(TorchDispatchMode):
    """Live bytes of the storages tensors were created in, and their peak, per ATen operator."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def track(self, tensors: Any) -> None:
        """Counts the storages of the tensors in ``tensors`` (any nesting) not yet counted."""
        for t in tree_leaves(tensors):
            if not isinstance(t, torch.Tensor) or t.layout is not torch.strided:
                continue
            storage = t.untyped_storage()
            ref = StorageWeakRef(storage)
            if ref.cdata not in self.live:
                self.live[ref.cdata] = (ref, storage.nbytes())
                self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)

    def _release(self) -> None:
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.current -= self.live.pop(key)[1]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        self._release()
        out = func(*args, **(kwargs or {}))
        self.track(out)
        return out


def _pass(net: nn.Module, inputs: tuple[torch.Tensor, ...], backward: bool) -> None:
    if not backward:
        with _eval(net), torch.no_grad():
            net(*inputs)
        return
    weights = [p for p in net.parameters() if p.requires_grad]
    with torch.random.fork_rng(devices=[]):  # dropout draws leave the global stream alone
        out = net.train()(*inputs)
        total = sum(o.float().sum() for o in tree_leaves(out) if isinstance(o, torch.Tensor))
        if weights and isinstance(total, torch.Tensor) and total.requires_grad:
            torch.autograd.grad(total, weights)


def _resident_bytes(net: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    tensors = [*net.parameters(), *net.buffers(), *inputs]
    storages = {StorageWeakRef(t.untyped_storage()).cdata: t.untyped_storage().nbytes()
                for t in tensors}
    return sum(storages.values())


def _as_tuple(example_input: Inputs) -> tuple[torch.Tensor, ...]:
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    return tuple(example_input)


def _batch(inputs: tuple[torch.Tensor, ...]) -> int:
    if not inputs or inputs[0].ndim == 0:
        raise ValueError("example_input must be a batch: a tensor shaped (batch, ...)")
    return max(1, inputs[0].shape[0])


def _on(model: nn.Module, device: torch.device, copy_anyway: bool = False) -> nn.Module:
    """``model`` itself when it lives on ``device`` (and no copy is asked), else a copy there."""
    first = next(iter([*model.parameters(), *model.buffers()]), None)
    here = first is None or first.device == device or (
        first.device.type == device.type and device.index is None)
    if here and not copy_anyway:
        return model
    return copy.deepcopy(model).to(device)


@contextmanager
def _eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the block; every module's own mode is restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


@contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
