"""GDAS (Dong & Yang, 2019): one sampled path per step, differentiable through Gumbel-softmax.

Every forward pass draws, for each searched label, one candidate (``k`` inputs) with a hard
Gumbel-softmax: only that candidate runs, its output multiplied by a straight-through weight
that is 1 in value and carries the gradient to the logits. The temperature decays linearly
from ``tau_max`` to ``tau_min`` over the search. Memory and time per step are those of one
architecture, not of all candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torchnas.oneshot._base import SearchRun, register
from torchnas.oneshot._darts import Differentiable

__all__ = ["GDAS"]


@register("gdas")
@dataclass(kw_only=True, repr=False)
class GDAS(Differentiable):
    """Gradient-based search using differentiable architecture sampling.

    Args:
        tau_max, tau_min: the Gumbel-softmax temperature's first and last value.
    """

    mode: ClassVar[str] = "gumbel"
    tau_max: float = 10.0
    tau_min: float = 0.1

    def check(self) -> None:
        super().check()
        if not 0 < self.tau_min <= self.tau_max:
            raise ValueError(f"gdas: need 0 < tau_min <= tau_max, got {self.tau_min!r}, "
                             f"{self.tau_max!r}")

    def begin_epoch(self, run: SearchRun, epoch: int) -> None:
        super().begin_epoch(run, epoch)
        share = (epoch - 1) / max(1, self.epochs - 1)
        run.net.state.tau = self.tau_max - (self.tau_max - self.tau_min) * share

    def val_metrics(self, run: SearchRun) -> dict[str, float]:
        """The supernet's metrics on ``data.val`` along the currently preferred path."""
        net = run.net
        net.set_path(net.best_path(self.exclude_zero))
        try:
            val = run.evaluate("val")
        finally:
            net.state.set_mode(self.mode)
        return {f"val_{k}": v for k, v in val.items()}
