"""Metrics of built, untrained models in a search: cost metrics and zero-cost proxies as
objectives and constraints, rejection before training, and the proxy warm start.

:class:`ModelMetrics` is the part of :class:`~torchnas.ModelSearch` that needs only the built
model: it measures what the objectives and constraints name, says why a model breaks a
constraint, and queues the proxy's best picks (its settings: :mod:`torchnas.search._options`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchnas import data as tn_data
from torchnas._util.errors import ConfigError
from torchnas._util.table import format_metric
from torchnas.evaluation import COST_METRICS, PROXIES
from torchnas.evaluation._cost import measure
from torchnas.evaluation._proxies import FLOAT_INPUTS, rank_architectures
from torchnas.search._options import CostSettings, WarmStart
from torchnas.space import HP
from torchnas.strategies import derive_seed
from torchnas.study import Study
from torchnas.study._objectives import is_feasible, parse_constraints, parse_objectives

__all__ = ["ModelMetrics", "Rejected"]

log = logging.getLogger("torchnas")

DEFAULT_OBJECTIVES = {"val_accuracy": "max"}


class Rejected(dict[str, float]):
    """An objective's result for an architecture refused before training: its measured
    metrics, and the ``reason``. The study records it ``REJECTED`` (finished, infeasible)."""

    def __init__(self, metrics: Mapping[str, float], reason: str) -> None:
        super().__init__(metrics)
        self.reason = reason


class ModelMetrics:
    """What a search measures on a built model before (or instead of) training it.

    Args:
        objectives, constraints: the search's (objectives default to ``val_accuracy``).
        cost: how the model metrics are measured.
        warm_start: the proxy warm start (``None``: off).
        seed: the search's seed (the proxy batch and the warm start's sampling derive from it).

    Raises:
        ConfigError: at construction, for a CUDA ``cost.device`` without CUDA.
    """

    def __init__(self, objectives: Any, constraints: Mapping[str, Any] | None,
                 cost: CostSettings, warm_start: WarmStart | None, seed: int) -> None:
        self.objectives = parse_objectives(objectives or DEFAULT_OBJECTIVES)
        self.constraints = parse_constraints(constraints)
        self.seed = seed
        self.cost = cost
        if torch.device(cost.device).type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"cost: device {cost.device!r} but CUDA is not available")
        self.warm_start = warm_start
        #: The warm start's ``(score, architecture)`` pairs, best first, once it ran.
        self.ranking: list[tuple[float, dict[str, Any]]] | None = None
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def named(self) -> list[str]:
        """Every metric the objectives and constraints name, in order."""
        return list(dict.fromkeys([*self.objectives, *self.constraints]))

    @property
    def trains(self) -> bool:
        """Whether a trial trains (some objective or constraint is not a model metric)."""
        return any(n not in COST_METRICS and n not in PROXIES for n in self.named)

    @property
    def proxies(self) -> dict[str, str]:
        """``{proxy: where it is used}`` for the proxies of the objectives, the constraints and
        the warm start."""
        used = {n: "an objective" for n in self.objectives if n in PROXIES}
        used.update({n: "a constraint" for n in self.constraints if n in PROXIES and n not in used})
        if self.warm_start is not None:
            used.setdefault(self.warm_start.proxy, "the warm start")
        return used

    def check_inputs(self, dataset: tn_data.Data) -> None:
        """Refuses, before any trial, a proxy that cannot score models of ``dataset``: on
        integer inputs (token ids), ``synflow`` and ``jacob_cov`` (they need float inputs).

        Raises:
            ConfigError: naming the proxy, where it is used and why it cannot work.
        """
        refused = {n: where for n, where in self.proxies.items() if n in FLOAT_INPUTS}
        if not refused:
            return
        x = torch.as_tensor(dataset.train[0][0])
        if x.is_floating_point():
            return
        name, where = next(iter(refused.items()))
        usable = [n for n in PROXIES if n not in FLOAT_INPUTS]
        raise ConfigError(
            f"the zero-cost proxy {name!r} ({where}) needs float inputs: "
            f"{FLOAT_INPUTS[name]}, and the inputs of {dataset.name!r} are {x.dtype} (token "
            f"ids?); {', '.join(usable)} score models of integer inputs, or convert the inputs "
            f"to floats")

    def proxy_batch(self, dataset: tn_data.Data) -> tuple[torch.Tensor, torch.Tensor]:
        """Training samples drawn once from the seed: what every proxy scores on (the first
        call draws them from ``dataset``, after :meth:`check_inputs`; later calls return the
        same batch)."""
        if self._batch is not None:
            return self._batch
        self.check_inputs(dataset)
        train = dataset.train
        size = min(self.cost.proxy_batch_size, len(train))  # type: ignore[arg-type]
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "proxy batch") % 2**63)
        rows = [train[int(i)] for i in torch.randperm(len(train), generator=gen)[:size]]  # type: ignore[arg-type]
        self._batch = (torch.stack([torch.as_tensor(r[0]) for r in rows]),
                       torch.as_tensor([int(r[1]) for r in rows]))
        return self._batch

    def measure(self, model: nn.Module, dataset: tn_data.Data,
                names: Sequence[str] | None = None) -> dict[str, float]:
        """The model metrics among ``names`` (default: the objectives' and constraints', and
        ``params`` when nothing is trained)."""
        if names is None:
            names = [*self.named, *([] if self.trains else ["params"])]
        names = [n for n in dict.fromkeys(names) if n in COST_METRICS or n in PROXIES]
        if not names:
            return {}
        cost = {k: v for k, v in self.cost.to_dict().items() if k != "proxy_batch_size"}
        example = torch.as_tensor(dataset.train[0][0]).unsqueeze(0)
        batch = self.proxy_batch(dataset) if any(n in PROXIES for n in names) else None
        return measure(model, names, example, batch=batch, seed=self.seed, **cost)

    def rejection(self, measured: Mapping[str, float]) -> str | None:
        """Why a built model breaks a constraint on a model metric (``None``: it does not)."""
        negated = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!="}
        broken = [f"{name} {format_metric(measured[name], name)} {negated[op]} "
                  f"{format_metric(bound, name)}"
                  for name, (op, bound) in self.constraints.items()
                  if name in measured and not is_feasible(measured, {name: (op, bound)})]
        return "; ".join(broken) or None

    def queue_warm_start(self, study: Study, space_fn: Callable[[HP], nn.Module],
                         dataset: tn_data.Data) -> None:
        """Queues the proxy's best architectures before the first trial of a new study (a
        study with trials or a queue already is left alone)."""
        warm = self.warm_start
        if warm is None or study.trials or study.queued:
            return
        limits = [n for n in self.constraints if n in COST_METRICS]

        def accept(model: nn.Module) -> bool:
            return not limits or self.rejection(self.measure(model, dataset, limits)) is None

        x, y = self.proxy_batch(dataset)
        ranking = rank_architectures(
            space_fn, warm.proxy, x, y, samples=warm.samples, device=self.cost.device,
            seed=derive_seed(self.seed, "warm start") % 2**31, accept=accept)
        self.ranking = ranking
        for _, arch in ranking[: warm.top]:
            study.enqueue(arch)
        log.info("warm start: %d of %d architectures queued by %s",
                 min(warm.top, len(ranking)), len(ranking), warm.proxy)
