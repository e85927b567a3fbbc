"""What a person watches: a live progress bar and the leaderboard of a search."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from torchnas._table import format_table
from torchnas._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["ProgressBar", "format_arch", "leaderboard"]


def format_arch(arch: Mapping[str, Any], width: int | None = 60) -> str:
    """``label=value, ...`` with floats shortened, cut to ``width`` characters."""
    text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in arch.items())
    return text if width is None or len(text) <= width else text[: width - 3] + "..."


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "-"
    if abs(v) >= 1000 and float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:.4g}"


class ProgressBar:
    """A study callback drawing trials done, the best so far and the time left.

    Args:
        total: trials this run will do (``None`` when bounded by time only).
        timeout: the run's time budget in seconds, if any.
        objective: the metric shown as "best", with its direction.
    """

    def __init__(self, total: int | None, timeout: float | None, objective: tuple[str, str],
                 enabled: bool = True) -> None:
        self.timeout = timeout
        self.objective = objective
        self.start = time.monotonic()
        self.best = math.nan
        self.counts = {"failed": 0, "pruned": 0}
        self.bar = tqdm(total=total, desc="search", unit="trial", disable=not enabled,
                        file=sys.stderr, dynamic_ncols=True, mininterval=0.5)

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        name, direction = self.objective
        if trial.state is TrialState.COMPLETE and trial.feasible:
            v = trial.value(name)
            better = v > self.best if direction == "max" else v < self.best
            if math.isfinite(v) and (math.isnan(self.best) or better):
                self.best = v
        elif trial.state.value in self.counts:
            self.counts[trial.state.value] += 1
        post: dict[str, str] = {f"best {name}": _fmt(self.best)}
        post.update({k: str(v) for k, v in self.counts.items() if v})
        if self.timeout is not None:
            left = max(0.0, self.timeout - (time.monotonic() - self.start))
            post["time left"] = f"{left:.0f}s"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        """Ends the bar's line."""
        self.bar.close()


def leaderboard(trials: Sequence[FrozenTrial], objectives: Mapping[str, str],
                extra: Sequence[str] = ("params", "train_seconds"), top: int = 10) -> str:
    """The ``top`` trials (already ranked best first) as a table."""
    cols = [*objectives, *(c for c in extra if c not in objectives)]
    rows = [[str(i + 1), str(t.number), *(_fmt(t.value(c)) for c in cols), format_arch(t.arch)]
            for i, t in enumerate(trials[:top])]
    return format_table(["rank", "trial", *cols, "architecture"], rows)
