"""What a person watches: a live progress bar and the leaderboard of a search."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from tqdm.auto import tqdm

from torchnas._util.table import format_metric, format_table
from torchnas.study._trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from torchnas.study import Study

__all__ = ["ProgressBar", "format_arch", "leaderboard", "state_counts"]


def format_arch(arch: Mapping[str, Any], width: int | None = 60) -> str:
    """``label=value, ...`` with floats shortened, cut to ``width`` characters."""
    text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in arch.items())
    return text if width is None or len(text) <= width else text[: width - 3] + "..."


def _fmt(v: float, name: str = "") -> str:
    """A metric's value as the leaderboard shows it (:func:`torchnas._util.table.format_metric`)."""
    return format_metric(v, name)


class ProgressBar:
    """A study callback drawing trials done, the best so far and the time left, with the
    leaderboard live under the bar.

    On a terminal the ``live_top`` best trials are redrawn in place under the bar after every
    trial (they are cleared at the end, where the caller prints the whole leaderboard).
    Elsewhere (a log file, a pipe) each new best is written on a line of its own above the bar.

    A resumed study's bar counts the whole study: the trials finished before (``done``) fill
    it from the start, and the best so far and the failed/pruned counts include them, so a
    "new best" line only appears for a trial better than every earlier one.

    Args:
        total: trials the study will hold when the run ends (``None`` when bounded by time
            only).
        timeout: the run's time budget in seconds, if any.
        objective: the metric shown as "best", with its direction.
        enabled: draw anything at all.
        live_top: rows of the live leaderboard (0: none, and no new-best lines).
        file: where to draw (standard error by default).
        done: the study's trials before this run.
    """

    def __init__(self, total: int | None, timeout: float | None, objective: tuple[str, str],
                 enabled: bool = True, *, live_top: int = 5, file: IO[str] | None = None,
                 done: Sequence[FrozenTrial] = ()) -> None:
        self.timeout = timeout
        self.objective = objective
        self.start = time.monotonic()
        self.best = math.nan
        self.counts = {"failed": 0, "pruned": 0}
        self.live_top = live_top if enabled else 0
        self.file = sys.stderr if file is None else file
        finished = [t for t in done if t.state.finished]
        for t in finished:
            self._tally(t)
        self.bar = tqdm(total=total, initial=len(finished), desc="search", unit="trial",
                        disable=not enabled, file=self.file, dynamic_ncols=True,
                        mininterval=0.5, position=0)
        # on a terminal, one line per leaderboard row (its header and rule included)
        tty = self.live_top > 0 and _isatty(self.file)
        self.rows = [tqdm(total=0, position=i + 1, bar_format="{desc}", leave=False,
                          file=self.file, dynamic_ncols=True)
                     for i in range(self.live_top + 2)] if tty else []
        self.shown: list[int] = []  # trial numbers in the live leaderboard

    def _tally(self, trial: FrozenTrial) -> bool:
        """Counts a finished trial; whether it is a new best."""
        name, direction = self.objective
        if trial.state is TrialState.COMPLETE and trial.feasible:
            v = trial.value(name)
            better = v > self.best if direction == "max" else v < self.best
            if math.isfinite(v) and (math.isnan(self.best) or better):
                self.best = v
                return True
        elif trial.state.value in self.counts:
            self.counts[trial.state.value] += 1
        return False

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        name = self.objective[0]
        news = ""
        if self._tally(trial):
            news = (f"trial {trial.number}: new best {name} {_fmt(trial.value(name))} "
                    f"({format_arch(trial.arch)})")
        if self.rows and trial.state is TrialState.COMPLETE:
            self._draw(study)
        post: dict[str, str] = {f"best {name}": _fmt(self.best)}
        post.update({k: str(v) for k, v in self.counts.items() if v})
        if self.timeout is not None:
            left = max(0.0, self.timeout - (time.monotonic() - self.start))
            post["time left"] = f"{left:.0f}s"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)
        if news and self.live_top and not self.rows:
            self.bar.write(news, file=self.file)

    def _draw(self, study: Study) -> None:
        """Redraws the live leaderboard when its trials changed."""
        ranked = study.ranked()[: self.live_top]
        numbers = [t.number for t in ranked]
        if numbers == self.shown:
            return
        self.shown = numbers
        lines = leaderboard(ranked, study.objectives, top=self.live_top).split("\n")
        for row, line in zip(self.rows, lines + [""] * len(self.rows), strict=False):
            row.set_description_str(line)

    def close(self) -> None:
        """Ends the bar's line and clears the live leaderboard."""
        for row in reversed(self.rows):
            row.close()
        self.bar.close()


def _isatty(file: IO[str]) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no such method, or a closed file
        return False


def leaderboard(trials: Sequence[FrozenTrial], objectives: Mapping[str, str],
                extra: Sequence[str] = ("params", "train_seconds"), top: int = 10) -> str:
    """The ``top`` trials (already ranked best first) as a table: the objectives (with their
    spread ``± <objective>_std`` over a trial's executions, when recorded), then the ``extra``
    metrics that at least one of them has."""
    shown = trials[:top]
    cols = [*objectives, *(c for c in extra if c not in objectives
                           and any(math.isfinite(t.value(c)) for t in shown))]

    def cell(t: FrozenTrial, c: str) -> str:
        text = _fmt(t.value(c), c)
        spread = t.value(f"{c}_std")
        return text + f" ± {_fmt(spread, c)}" if c in objectives and math.isfinite(spread) else text

    rows = [[str(i + 1), str(t.number), *(cell(t, c) for c in cols), format_arch(t.arch)]
            for i, t in enumerate(shown)]
    return format_table(["rank", "trial", *cols, "architecture"], rows)


def state_counts(trials: Sequence[FrozenTrial]) -> str:
    """``"8 complete (2 infeasible), 1 pruned"``: the trials by state, in the states' order;
    complete trials that break a constraint (never ranked) are counted apart."""
    parts = []
    for state in TrialState:
        of_state = [t for t in trials if t.state is state]
        if not of_state:
            continue
        text = f"{len(of_state)} {state.value}"
        infeasible = sum(not t.feasible for t in of_state) if state is TrialState.COMPLETE else 0
        parts.append(text + (f" ({infeasible} infeasible)" if infeasible else ""))
    return ", ".join(parts)
