"""What every one-shot method shares: settings, the search run, the result.

A method is a keyword-only dataclass (the constructor is the config), registered where it is
defined (``@register("name")`` above its class), with one entry point, :meth:`OneShot.search`,
and one method to implement, :meth:`OneShot.fit`, which trains a
:class:`~torchnas.oneshot.Supernet` and returns the chosen path. The search's state lives in a
:class:`SearchRun` (``_run.py``); with a ``checkpoint`` file it is saved after every epoch and a
search started again resumes from it (``_checkpoint.py``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from torchnas._util.errors import ConfigError
from torchnas._util.registry import Configurable, Registry
from torchnas.data import Data
from torchnas.evaluation._tasks import Task
from torchnas.evaluation._trainer import amp_dtype
from torchnas.oneshot._collapse import GUARDS, CollapseReport
from torchnas.oneshot._penalty import ALIASES, METRICS, CostTerm, metric_name, parse_costs
from torchnas.oneshot._run import OnEpoch, SearchRun, jsonable
from torchnas.oneshot._supernet import SpaceFn, Supernet, check_arch

__all__ = ["REGISTRY", "OneShot", "OneShotResult", "SearchRun", "register"]


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
        cost: the derived architecture's cost of each penalized metric (``{metric: value}``).
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


@dataclass(kw_only=True, repr=False)
class OneShot(Configurable):
    """Base class of the one-shot methods; every setting is a keyword argument.

    A method is a ``@dataclass(kw_only=True, repr=False)`` (the repr is
    :class:`~torchnas._util.registry.Configurable`'s: the settings that differ from the
    defaults) that implements :meth:`fit` and may extend :meth:`check`.

    Args:
        epochs: passes over the weights' half of the training split.
        batch_size: samples per step.
        lr, momentum, weight_decay, grad_clip: SGD on the weights (cosine-annealed).
        arch_fraction: the share of the training split that architecture decisions use.
        partial_channels: ``K`` > 1: PC-DARTS partial channels (see ``SupernetHP``).
        cost_weight: weight of the hardware penalty (0: none).
        cost_metric: ``"params"``, ``"flops"``, ``"latency"`` or ``"peak_memory"``, measured
            per candidate.
        cost_target: with it, only a cost above it is penalized (SPOS: a hard limit).
        costs: several costs at once, instead of the three above:
            ``{metric: {"weight": w, "target": t}}`` with either key or both (a target alone:
            weight 1), e.g. ``{"latency_ms": {"target": 2.0}, "params": {"weight": 0.5},
            "peak_memory_mb": {"target": 50}}``; see :class:`~torchnas.oneshot.CostTerm`.
        collapse_threshold: the share of op labels won by parameter-free operations above
            which the search counts as collapsed.
        exclude_zero: never derive (nor, for SPOS and ENAS, sample) an op candidate whose
            output is all zeros (``none``), as DARTS derives its cells: an edge of zeros
            only removes a connection, and its weight in the mix says little about that.
        fixed: values of labels not to search; other value decisions take their default.
        device: ``"auto"`` (CUDA when available), or a torch device.
        amp: mixed precision of the supernet's forward passes, as ``Trainer(amp=...)``:
            ``True`` on CUDA only, ``False``, ``"bfloat16"`` or ``"float16"`` (with a
            gradient scaler). DARTS' second-order steps run in full precision.
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
    costs: dict[str, dict[str, float]] | None = None
    collapse_threshold: float = 0.5
    exclude_zero: bool = True
    fixed: dict[str, Any] | None = None
    device: str = "auto"
    amp: bool | str = True

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
        if self.cost_metric not in (*METRICS, *ALIASES):
            raise ValueError(f"{self.name}: cost_metric must be one of {METRICS}, "
                             f"got {self.cost_metric!r}")
        if self.costs is not None:
            parse_costs(self.costs, f"{self.name}: costs")
            if self.cost_weight or self.cost_target is not None:
                raise ConfigError(f"{self.name}: give costs or cost_weight/cost_target, not "
                                  "both (costs={metric: {'weight': w, 'target': t}} holds both)")
        try:
            amp_dtype(self.amp, torch.device("cpu"))
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        guard = getattr(self, "collapse_guard", None)
        if guard not in GUARDS:
            raise ValueError(f"{self.name}: collapse_guard must be one of {GUARDS}, got {guard!r}")

    def cost_needed(self) -> bool:
        return bool(self.cost_terms())

    def cost_terms(self) -> list[CostTerm]:
        """The penalized costs: those of ``costs``, else the one of ``cost_metric`` when
        ``cost_weight`` or ``cost_target`` is given, else none."""
        if self.costs is not None:
            return parse_costs(self.costs, f"{self.name}: costs")
        if self.cost_weight or self.cost_target is not None:
            return [CostTerm(metric_name(self.cost_metric), float(self.cost_weight),
                             self.cost_target)]
        return []

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
               net: Supernet | None = None, checkpoint: str | Path | None = None,
               task: Task | None = None) -> OneShotResult:
        """Searches ``space_fn`` on ``data``; returns the derived architecture and the rest.

        Args:
            space_fn: the space function (the one multi-trial search uses).
            data: the dataset bundle.
            seed: seed of the initial weights, the data split and every draw.
            deadline: a ``time.monotonic()`` time after which no new epoch starts.
            on_epoch: called as ``on_epoch(epoch, metrics)`` after each epoch.
            net: a supernet to search instead of building one (tests, warm starts).
            checkpoint: a file for the supernet's state, saved after every epoch; a search
                started again with the same file, settings, seed and space resumes from it.
            task: what the supernet learns: its training loss and the metrics it is ranked
                by (``Trainer(task=...).get_task()``; default: classification). A search
                through :class:`~torchnas.ModelSearch` uses its trainer's.
        """
        self.check()
        dev = _device(self.device)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = net if net is not None else self.supernet(space_fn, data, seed)
            net.to(dev)
            run = SearchRun(self, net, data, seed, dev, deadline, on_epoch,
                            None if checkpoint is None else Path(checkpoint), task)
            run.started = start
            path = self.fit(run)
            arch = net.arch(path)
            check_arch(space_fn, arch)  # inside: building it draws from the forked stream
        guard = getattr(self, "collapse_guard", None)
        report = CollapseReport.of(net, path, self.collapse_threshold, guard, run.stopped_at,
                                   run.counts)
        cost = {model.metric: model.of_path(path) for _, model in run.costs}
        return OneShotResult(self.name, arch, self.alphas(run), run.history, report,
                             run.seconds(), cost, jsonable(self.get_params()))


REGISTRY: Registry[OneShot] = Registry("one-shot method", OneShot)
"""The named one-shot methods (``tn.oneshot.available()``)."""

register = REGISTRY.register
"""``@register("name")`` above a one-shot method's class: a method of that name."""


def _device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
