"""Random search: every decision drawn independently from its domain."""

from __future__ import annotations

from typing import Any

from torchnas.space import Domain
from torchnas.strategies._base import AskContext, Strategy, register

__all__ = ["RandomStrategy"]


@register("random")
class RandomStrategy(Strategy):
    """Samples each decision uniformly (log-uniformly on log domains).

    Each label of each trial has its own stream derived from ``(seed, trial number, label)``, so
    a value does not depend on which other labels the run met first.
    """

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        return domain.sample(ctx.rng(label))
