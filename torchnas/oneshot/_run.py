"""The state of one one-shot search: the supernet, the data halves, the clock, the history,
and its checkpoint (:meth:`SearchRun.save` after every epoch, :meth:`SearchRun.resume`).

The training split is cut in two: weights train on one half, architecture decisions are made on
the other (DARTS' split); ``data.val`` is only watched (history) and ``data.test`` never
touched.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from torchnas.data import Data
from torchnas.evaluation._loop import Batches, autocast
from torchnas.evaluation._tasks import ClassificationTask, Task
from torchnas.evaluation._tokens import input_embedding
from torchnas.evaluation._trainer import amp_dtype
from torchnas.oneshot._batchnorm import batch_stats
from torchnas.oneshot._checkpoint import Cycle, load_checkpoint, save_checkpoint
from torchnas.oneshot._penalty import CostModel, CostTerm
from torchnas.oneshot._supernet import Supernet

if TYPE_CHECKING:
    from torchnas.oneshot._base import OneShot

__all__ = ["OnEpoch", "SearchRun", "jsonable"]

OnEpoch = Callable[[int, dict[str, float]], None]


class SearchRun:
    """The state of one search: the supernet, the data halves, the clock, the history, and
    its checkpoint file (``None``: not saved). The ``task`` gives the loss the supernet trains
    with and the metrics it is evaluated by (default: classification)."""

    def __init__(self, method: OneShot, net: Supernet, data: Data, seed: int,
                 device: torch.device, deadline: float | None, on_epoch: OnEpoch | None,
                 checkpoint: Path | None = None, task: Task | None = None) -> None:
        self.method, self.net, self.data, self.device = method, net, data, device
        self.task = task if task is not None else ClassificationTask()
        self.embedding = input_embedding(net)
        self.deadline, self.on_epoch, self.seed = deadline, on_epoch, seed
        self.checkpoint = checkpoint
        self.started = time.perf_counter()
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)
        n = len(data.train)  # type: ignore[arg-type]
        order = torch.randperm(n, generator=self.generator).tolist()
        cut = min(n - 1, max(1, round(n * (1 - method.arch_fraction))))
        self.halves: dict[str, Dataset[Any]] = {
            "weights": Subset(data.train, order[:cut]), "arch": Subset(data.train, order[cut:])}
        self.history: list[dict[str, float]] = []
        self.counts: list[int] = []
        self.stopped_at: int | None = None
        self.extra: dict[str, Any] = {}  # what a method keeps for its result (controller, ...)
        # one cost model per penalized metric; ``cost``: the first (None: no penalty)
        self.costs: list[tuple[CostTerm, CostModel]] = [
            (term, CostModel(net, term.metric, device, method.batch_size))
            for term in method.cost_terms()]
        self.cost = self.costs[0][1] if self.costs else None
        self.amp_dtype = amp_dtype(method.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)

    def batches(self, half: str, shuffle: bool = True, batch_size: int | None = None,
                generator: torch.Generator | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over a half (``"weights"``, ``"arch"``) or ``"val"``; no batch of one.
        Shuffled by ``generator`` (default: the run's) unless ``shuffle`` is false."""
        ds = self.data.val if half == "val" else self.halves[half]
        size = batch_size or self.method.batch_size
        order = (generator or self.generator) if shuffle else None
        for x, y in Batches(ds, size, self.device, generator=order, embedding=self.embedding,
                            split="val" if half == "val" else "train",
                            num_classes=self.data.num_classes):
            if len(y) > 1:
                yield x, (y if y.is_floating_point() else y.long())

    def cycle(self, half: str) -> Cycle:
        """Endless shuffled batches of a half, in an order of their own (the same for every
        cycle of a run and half) that a checkpoint saves."""
        offset = {"weights": 1, "arch": 2, "val": 3}[half]
        return Cycle(lambda g: self.batches(half, generator=g), self.seed * 4 + offset)

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.halves["weights"]) / self.method.batch_size))  # type: ignore[arg-type]

    def weight_optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
        """SGD with momentum over the weights, cosine-annealed over the whole search."""
        m = self.method
        opt = torch.optim.SGD(self.net.weight_parameters(), lr=m.lr, momentum=m.momentum,
                              weight_decay=m.weight_decay)
        total = m.epochs * self.steps_per_epoch()
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, eta_min=m.lr * 0.01)
        return opt, sched

    def weight_step(self, opt: torch.optim.Optimizer, sched: Any, x: torch.Tensor,
                    y: torch.Tensor) -> float:
        """One step on the weights (architecture logits untouched)."""
        weights = self.net.weight_parameters()
        with self.autocast():
            loss = self.loss(self.net(x).float(), x, y)
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(inputs=weights)
        if self.method.grad_clip is not None:
            self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(weights, self.method.grad_clip)
        self.scaler.step(opt)
        self.scaler.update()
        sched.step()
        return float(loss.detach())

    def loss(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task's training loss of a batch (cross-entropy for classification)."""
        return self.task.loss_of(out, x, y)

    def score(self, metrics: dict[str, float]) -> float:
        """The task's score of :meth:`evaluate`'s metrics (higher is better: accuracy,
        regression's R^2, a language model's ``1 / perplexity``)."""
        return self.task.score(metrics)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The mixed-precision context of a forward pass (a no-op without ``amp``)."""
        return autocast(self.device, self.amp_dtype)

    def arch_grads(self, loss: torch.Tensor, params: list[nn.Parameter]
                   ) -> list[torch.Tensor | None] | None:
        """Gradients of ``loss`` for ``params`` (the architecture's). Under float16 the loss is
        scaled by the gradient scaler's factor and the gradients unscaled, so small ones do
        not flush to zero; ``None`` when one is not finite (the step is then skipped)."""
        scale = float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0
        grads: list[torch.Tensor | None] = [
            None if g is None else g / scale
            for g in torch.autograd.grad(loss * scale, params, allow_unused=True)]
        if any(g is not None and not bool(torch.isfinite(g).all()) for g in grads):
            return None
        return grads

    def penalty(self) -> torch.Tensor | float:
        """The hardware-cost terms of the architecture loss, summed over the penalized costs
        (0 without any: see :meth:`CostTerm.penalty`)."""
        total: torch.Tensor | float = 0.0
        for term, model in self.costs:
            total = total + term.penalty(model, self.net)
        return total

    def path_penalty(self, path: Mapping[str, Any], hard_target: bool = False) -> float:
        """What a sampled path's fitness or reward loses for its costs (SPOS, ENAS)."""
        return sum(term.path_penalty(model, path, hard_target) for term, model in self.costs)

    def evaluate(self, half: str = "val", max_samples: int | None = None,
                 batch_norm: str = "running") -> dict[str, float]:
        """The task's metrics of the supernet as it is (mode, path) on a half or on val
        (classification: ``accuracy`` and ``loss``), with batch norm's ``"running"``
        statistics or the ``"batch"``'s (see :func:`batch_stats`)."""
        tally, seen = self.task.tally(), 0
        with batch_stats(self.net, batch_norm == "batch"), torch.no_grad():
            for x, y in self.batches(half, shuffle=False, batch_size=512):
                with self.autocast():
                    out = self.net(x).float()
                tally.add(out, x, y)
                seen += len(y)
                if max_samples is not None and seen >= max_samples:
                    break
        return tally.result()

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Records an epoch's metrics (with time and cost) and reports them."""
        row = {"epoch": float(epoch), **metrics,
               "seconds": time.perf_counter() - self.started}
        if self.cost is not None:
            row["expected_cost"] = float(self.cost.expected(self.net).detach())
        if len(self.costs) > 1:
            for _, model in self.costs:
                row[f"expected_{model.metric}"] = float(model.expected(self.net).detach())
        self.history.append(row)
        if self.on_epoch is not None:
            self.on_epoch(epoch, dict(row))

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def seconds(self) -> float:
        """Wall time of the search so far (a resumed search counts its earlier runs)."""
        return time.perf_counter() - self.started

    # -- checkpoints ----------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: method, settings, seed, supernet."""
        settings = jsonable(self.method.get_params())
        if settings.get("costs", 0) is None:  # as before ``costs`` was a setting: old files resume
            del settings["costs"]
        return {"method": self.method.name, "settings": settings,
                "seed": self.seed,
                "labels": {k: list(c.names) for k, c in self.net.choices.items()},
                "shapes": {k: list(v.shape) for k, v in self.net.state_dict().items()}}

    def save(self, epoch: int, parts: Mapping[str, Any] | None = None,
             values: Mapping[str, Any] | None = None) -> None:
        """Saves the state after ``epoch`` (no-op without a checkpoint file): the supernet,
        ``parts`` (objects with ``state_dict``), ``values``, and the run's own state."""
        if self.checkpoint is None:
            return
        own = {"history": self.history, "counts": self.counts, "stopped_at": self.stopped_at,
               "seconds": self.seconds(), "rng": _rng_state(self.rng),
               "generator": self.generator.get_state(),
               "gumbel": self.net.state.generator.get_state(), "torch": torch.get_rng_state()}
        save_checkpoint(self.checkpoint, self.identity(), epoch,
                        {"net": self.net, "scaler": self.scaler, **(parts or {})},
                        {"run": own, **(values or {})})

    def resume(self, parts: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Loads the checkpoint into the supernet, ``parts`` and the run; returns the last
        finished epoch and the saved ``values`` (``(0, {})`` when there is nothing to load)."""
        if self.checkpoint is None:
            return 0, {}
        found = load_checkpoint(self.checkpoint, self.identity(),
                                {"net": self.net, "scaler": self.scaler, **(parts or {})})
        if found is None:
            return 0, {}
        epoch, values = found
        own = values.pop("run")
        self.history, self.counts = list(own["history"]), list(own["counts"])
        self.stopped_at = own["stopped_at"]
        self.started = time.perf_counter() - own["seconds"]
        self.rng.setstate(_rng_tuple(own["rng"]))
        self.generator.set_state(own["generator"])
        self.net.state.generator.set_state(own["gumbel"])
        torch.set_rng_state(own["torch"])
        return epoch, values


def _rng_state(rng: random.Random) -> list[Any]:
    version, state, gauss = rng.getstate()
    return [version, list(state), gauss]


def _rng_tuple(saved: list[Any]) -> tuple[Any, ...]:
    version, state, gauss = saved
    return (version, tuple(state), gauss)


def jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as JSON values (anything else as its text)."""
    return {k: v if isinstance(v, (int, float, str, bool, type(None), dict, list)) else str(v)
            for k, v in params.items()}
