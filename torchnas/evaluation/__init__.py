"""Estimating how good an architecture is: training (:class:`Trainer`), hardware cost
(parameters, FLOPs, memory, latency), zero-cost proxies and surrogate predictors."""

from __future__ import annotations

from torchnas.evaluation._cost import COST_METRICS, flops, latency, params, peak_memory
from torchnas.evaluation._predictor import Predictor
from torchnas.evaluation._proxies import PROXIES, proxy
from torchnas.evaluation._summary import ModelSummary, summary
from torchnas.evaluation._trainer import Trainer, evaluate

__all__ = [
    "COST_METRICS", "PROXIES", "ModelSummary", "Predictor", "Trainer", "evaluate", "flops",
    "latency", "params", "peak_memory", "proxy", "summary",
]
