"""Estimating how good an architecture is: training (:class:`Trainer`) and evaluation."""

from __future__ import annotations

from torchnas.evaluation._trainer import Trainer, evaluate

__all__ = ["Trainer", "evaluate"]
