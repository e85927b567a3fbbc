"""Estimating how good an architecture is: training (:class:`Trainer`, for a :class:`Task`:
classification, regression, token sequences, language models), hardware cost
(parameters, FLOPs, memory, latency), zero-cost proxies and surrogate predictors; and the
callbacks a search calls, trackers among them (``tn.callbacks``)."""

from __future__ import annotations

from torchnas.evaluation import _trackers  # noqa: F401 - registers the trackers
from torchnas.evaluation._callbacks import Callback, Callbacks
from torchnas.evaluation._cost import COST_METRICS, flops, latency, params, peak_memory
from torchnas.evaluation._predictor import Predictor
from torchnas.evaluation._proxies import PROXIES, proxy
from torchnas.evaluation._summary import ModelSummary, summary
from torchnas.evaluation._tasks import (
    TASKS,
    ClassificationTask,
    LanguageModelTask,
    RegressionTask,
    SequenceTask,
    Task,
)
from torchnas.evaluation._trainer import Trainer, evaluate

__all__ = [
    "COST_METRICS", "PROXIES", "TASKS", "Callback", "Callbacks", "ClassificationTask",
    "LanguageModelTask", "ModelSummary", "Predictor", "RegressionTask", "SequenceTask", "Task",
    "Trainer", "evaluate", "flops", "latency", "params", "peak_memory", "proxy", "summary",
]
