"""What every one-shot method shares: settings, the search run, the result.

A method is a keyword-only dataclass (the constructor is the config) with one entry point,
:meth:`OneShot.search`, and one method to implement, :meth:`OneShot.fit`, which trains a
:class:`~torchnas.oneshot.Supernet` and returns the chosen path. The training split is cut in
two: weights train on one half, architecture decisions are made on the other (DARTS' split);
``data.val`` is only watched (history) and ``data.test`` never touched.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset

from torchnas.data import Data
from torchnas.evaluation._loop import Batches
from torchnas.oneshot._batchnorm import batch_stats
from torchnas.oneshot._collapse import GUARDS, CollapseReport
from torchnas.oneshot._penalty import METRICS, CostModel
from torchnas.oneshot._supernet import SpaceFn, Supernet, check_arch

__all__ = ["OneShot", "OneShotResult", "SearchRun"]

OnEpoch = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class OneShotResult:
    """What a one-shot search found.

    Attributes:
        method: the method's registered name.
        arch: the derived architecture: the same JSON dict as any trial's
            (``tn.build(space, arch)`` rebuilds it as a standalone model).
        alphas: ``{label: {candidate: weight}}``: the softmax of the architecture logits
            (DARTS, GDAS), the controller's sampling frequencies (ENAS) or the frequencies in
            the final population (SPOS).
        history: one dict of metrics per epoch (and per generation for SPOS).
        collapse: the :class:`CollapseReport` of the derived architecture.
        seconds: wall time of the search.
        cost: the derived architecture's cost (``{metric: value}``).
        settings: the method's settings (its constructor arguments).
    """

    method: str
    arch: dict[str, Any]
    alphas: dict[str, dict[str, float]]
    history: list[dict[str, float]]
    collapse: CollapseReport
    seconds: float
    cost: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["collapse"] = self.collapse.to_json()
        return out


class SearchRun:
    """The state of one search: the supernet, the data halves, the clock, the history."""

    def __init__(self, method: OneShot, net: Supernet, data: Data, seed: int,
                 device: torch.device, deadline: float | None, on_epoch: OnEpoch | None) -> None:
        self.method, self.net, self.data, self.device = method, net, data, device
        self.deadline, self.on_epoch = deadline, on_epoch
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
        self.cost = CostModel(net, method.cost_metric, device) if method.cost_needed() else None

    def batches(self, half: str, shuffle: bool = True, batch_size: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over a half (``"weights"``, ``"arch"``) or ``"val"``; no batch of one."""
        ds = self.data.val if half == "val" else self.halves[half]
        size = batch_size or self.method.batch_size
        for x, y in Batches(ds, size, self.device, generator=self.generator if shuffle else None):
            if len(y) > 1:
                yield x, y.long()

    def cycle(self, half: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled batches of a half."""
        while True:
            yield from self.batches(half)

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
        loss = F.cross_entropy(self.net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=weights)
        if self.method.grad_clip is not None:
            nn.utils.clip_grad_norm_(weights, self.method.grad_clip)
        opt.step()
        sched.step()
        return float(loss.detach())

    def penalty(self) -> torch.Tensor | float:
        """The hardware-cost term of the architecture loss (0 without ``cost_weight``)."""
        m = self.method
        if self.cost is None or not m.cost_weight:
            return 0.0
        return self.cost.penalty(self.net, m.cost_weight, m.cost_target)

    def evaluate(self, half: str = "val", max_samples: int | None = None,
                 batch_norm: str = "running") -> dict[str, float]:
        """Accuracy and loss of the supernet as it is (mode, path) on a half or on val, with
        batch norm's ``"running"`` statistics or the ``"batch"``'s (see :func:`batch_stats`)."""
        correct, loss, seen = 0, 0.0, 0
        with batch_stats(self.net, batch_norm == "batch"):
            for x, y in self.batches(half, shuffle=False, batch_size=512):
                out = self.net(x)
                loss += float(F.cross_entropy(out, y, reduction="sum"))
                correct += int((out.argmax(1) == y).sum())
                seen += len(y)
                if max_samples is not None and seen >= max_samples:
                    break
        return {"accuracy": correct / max(seen, 1), "loss": loss / max(seen, 1)}

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Records an epoch's metrics (with time and cost) and reports them."""
        row = {"epoch": float(epoch), **metrics,
               "seconds": time.perf_counter() - self.started}
        if self.cost is not None:
            row["expected_cost"] = float(self.cost.expected(self.net).detach())
        self.history.append(row)
        if self.on_epoch is not None:
            self.on_epoch(epoch, dict(row))

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


@dataclass(kw_only=True)
class OneShot:
    """Base class of the one-shot methods; every setting is a keyword argument.

    Args:
        epochs: passes over the weights' half of the training split.
        batch_size: samples per step.
        lr, momentum, weight_decay, grad_clip: SGD on the weights (cosine-annealed).
        arch_fraction: the share of the training split that architecture decisions use.
        partial_channels: ``K`` > 1: PC-DARTS partial channels (see ``SupernetHP``).
        cost_weight: weight of the hardware penalty (0: none).
        cost_metric: ``"params"``, ``"flops"`` or ``"latency"``, measured per candidate.
        cost_target: with it, only a cost above it is penalized (SPOS: a hard limit).
        collapse_threshold: the share of op labels won by parameter-free operations above
            which the search counts as collapsed.
        fixed: values of labels not to search; other value decisions take their default.
        device: ``"auto"`` (CUDA when available), or a torch device.
    """

    name: ClassVar[str] = ""
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float | None = 5.0
    arch_fraction: float = 0.5
    partial_channels: int = 1
    cost_weight: float = 0.0
    cost_metric: str = "params"
    cost_target: float | None = None
    collapse_threshold: float = 0.5
    fixed: dict[str, Any] | None = None
    device: str = "auto"

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments (the config saved beside the results)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def check(self) -> None:
        """Raises ``ValueError`` naming the first bad setting."""
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"{self.name}: epochs must be an integer >= 1, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(f"{self.name}: batch_size must be an integer >= 2, "
                             f"got {self.batch_size!r}")
        if not 0.0 < self.arch_fraction < 1.0:
            raise ValueError(f"{self.name}: arch_fraction must be in (0, 1), "
                             f"got {self.arch_fraction!r}")
        if self.cost_metric not in (*METRICS, "latency_ms"):
            raise ValueError(f"{self.name}: cost_metric must be one of {METRICS}, "
                             f"got {self.cost_metric!r}")
        guard = getattr(self, "collapse_guard", None)
        if guard not in GUARDS:
            raise ValueError(f"{self.name}: collapse_guard must be one of {GUARDS}, got {guard!r}")

    def cost_needed(self) -> bool:
        return bool(self.cost_weight) or self.cost_target is not None

    def fit(self, run: SearchRun) -> dict[str, list[int]]:
        """Trains the supernet of ``run`` and returns the chosen path."""
        raise NotImplementedError

    def alphas(self, run: SearchRun) -> dict[str, dict[str, float]]:
        """The architecture weights to save (default: the softmax of the logits)."""
        return run.net.probabilities()

    def supernet(self, space_fn: SpaceFn, data: Data, seed: int = 0) -> Supernet:
        """The space built in weight-sharing mode and probed on two training samples."""
        example = torch.stack([torch.as_tensor(data.train[i][0])
                               for i in range(min(2, len(data.train)))])  # type: ignore[arg-type]
        return Supernet(space_fn, example, fixed=self.fixed,
                        partial_channels=self.partial_channels, seed=seed)

    def search(self, space_fn: SpaceFn, data: Data, *, seed: int = 0,
               deadline: float | None = None, on_epoch: OnEpoch | None = None,
               net: Supernet | None = None) -> OneShotResult:
        """Searches ``space_fn`` on ``data``; returns the derived architecture and the rest.

        Args:
            space_fn: the space function (the one multi-trial search uses).
            data: the dataset bundle.
            seed: seed of the initial weights, the data split and every draw.
            deadline: a ``time.monotonic()`` time after which no new epoch starts.
            on_epoch: called as ``on_epoch(epoch, metrics)`` after each epoch.
            net: a supernet to search instead of building one (tests, warm starts).
        """
        self.check()
        dev = _device(self.device)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = net if net is not None else self.supernet(space_fn, data, seed)
            net.to(dev)
            run = SearchRun(self, net, data, seed, dev, deadline, on_epoch)
            path = self.fit(run)
            arch = net.arch(path)
            check_arch(space_fn, arch)  # inside: building it draws from the forked stream
        guard = getattr(self, "collapse_guard", None)
        report = CollapseReport.of(net, path, self.collapse_threshold, guard, run.stopped_at,
                                   run.counts)
        cost = {} if run.cost is None else {run.cost.metric: run.cost.of_path(path)}
        return OneShotResult(self.name, arch, self.alphas(run), run.history, report,
                             time.perf_counter() - start, cost, _jsonable(self.get_params()))


def _device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (int, float, str, bool, type(None), dict, list)) else str(v)
            for k, v in params.items()}
