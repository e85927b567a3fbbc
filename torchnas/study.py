"""The study: ask/tell around a strategy, a durable journal, and the optimize loop."""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torchnas._console import leaderboard
from torchnas._errors import ConfigError, SpaceError, TooManyFailures, TrialPruned
from torchnas._objectives import (
    is_feasible,
    pareto_front,
    parse_constraints,
    parse_objectives,
    rank_key,
)
from torchnas._process import owner_alive, owner_token
from torchnas._trial import FrozenTrial, TrialState
from torchnas.schedulers import Scheduler
from torchnas.schedulers import resolve as resolve_scheduler
from torchnas.space import HP, Domain, SpaceInfo, arch_key, explore, infer
from torchnas.storage import Journal, TrialLog, get_storage
from torchnas.strategies import AskContext, Strategy, resolve

__all__ = ["Study", "Trial", "load_study"]

log = logging.getLogger("torchnas")

Objective = Callable[[HP], "float | Mapping[str, float]"]
Callback = Callable[["Study", FrozenTrial], None]


class _StudySource:
    """Values for one trial: fixed ones first, then the strategy's suggestions."""

    def __init__(self, fixed: Mapping[str, Any], strategy: Strategy, ctx: AskContext) -> None:
        self.fixed = fixed
        self.strategy = strategy
        self.ctx = ctx

    def value(self, label: str, domain: Domain, met: Mapping[str, Any]) -> Any:
        if label in self.fixed:
            return self.fixed[label]
        return self.strategy.suggest(self.ctx, label, domain)


class Trial:
    """A running trial: its number, its ``hp`` recorder, and reporting.

    Decisions are written to storage when :meth:`commit` is called (``ModelSearch`` does so once
    the model is built, before training), when a metric is reported, and when the trial ends.
    """

    def __init__(
        self, study: Study, number: int, fixed: Mapping[str, Any], ctx: AskContext
    ) -> None:
        self.study = study
        self.number = number
        self._ctx = ctx
        self._imposed = dict(fixed)
        self.hp = self._new_hp({**study.strategy.ask(ctx), **fixed})
        self._committed: set[str] = set()
        self.last_metrics: dict[str, float] = {}

    def _new_hp(self, fixed: Mapping[str, Any]) -> HP:
        hp = HP(_StudySource(fixed, self.study.strategy, self._ctx), trial=self)
        self._ctx.params = hp._values  # the strategy sees decisions as they are made
        return hp

    def duplicate_of(self) -> int | None:
        """The number of another trial (finished, or running) with this same architecture."""
        log = self.study._log
        key = arch_key(self.hp.arch)
        found = log.finished_keys.get(key)
        if found is not None:
            return found
        return next((n for n in log.running if n != self.number
                     and arch_key(log.trials[n].arch) == key), None)

    def redraw(self) -> HP:
        """Draws this trial's decisions again with fresh randomness (the strategy is asked again;
        imposed decisions stay): for an architecture that repeats one already evaluated.
        Only before anything is committed; returns the new ``hp``."""
        if self._committed:
            raise RuntimeError(f"trial {self.number}: decisions already committed")
        self._ctx.attempt += 1
        self.hp = self._new_hp({**self.study.strategy.ask(self._ctx), **self._imposed})
        return self.hp

    @property
    def arch(self) -> dict[str, Any]:
        """Decisions met so far."""
        return self.hp.arch

    def _uncommitted(self) -> dict[str, Any]:
        arch = {k: v for k, v in self.hp.arch.items() if k not in self._committed}
        doms = self.hp.domains
        self._committed.update(arch)
        return {"arch": arch, "domains": {k: doms[k].to_json() for k in arch}}

    def commit(self) -> None:
        """Writes the decisions made so far to storage (to re-run them after a crash)."""
        fresh = self._uncommitted()
        if fresh["arch"]:
            self.study._append(
                {"kind": "arch", "trial": self.number, "owner": self.study._owner, **fresh}
            )

    def report(self, step: int, metrics: Mapping[str, float]) -> None:
        """Records intermediate metrics (e.g. per epoch); raises :class:`TrialPruned` when the
        study's scheduler says to stop."""
        self.commit()
        clean = {k: float(v) for k, v in metrics.items()}
        self.last_metrics = clean
        self.study._append(
            {"kind": "report", "trial": self.number, "step": int(step), "metrics": clean,
             "owner": self.study._owner}
        )
        if self.should_prune():
            raise TrialPruned(f"stopped by the scheduler at step {step}")

    def should_prune(self) -> bool:
        """Whether the scheduler wants this trial stopped (always ``False`` without one)."""
        scheduler = self.study.scheduler
        if scheduler is None:
            return False
        self.study._sync()  # the scheduler must see the report just appended
        trials = self.study._log.trials
        return bool(scheduler.should_prune(trials[self.number], trials))

    @property
    def budget(self) -> float | None:
        """The most steps (epochs, ...) the scheduler grants this trial; ``None``: no limit."""
        return self.study._log.trials[self.number].budget


class Study:
    """A search: a strategy proposes, an objective evaluates, a journal records.

    Args:
        name: the study's name inside its storage.
        storage: ``None`` (in memory), a path or ``sqlite:///path`` (SQLite), or a journal.
            An existing study of that name is continued: finished trials are replayed to the
            strategy and trials left running by a dead process are run again first.
        objectives: ``{"metric": "max"|"min"}``; a bare name infers the direction.
        constraints: ``{"metric": (op, bound)}``, op in ``<= < >= > ==``.
        strategy: a registered name (``"auto"``), a :class:`Strategy`, or ``{"name": ..., **kw}``.
        scheduler: a scheduler name (``tn.schedulers.available()``), a
            :class:`~torchnas.schedulers.Scheduler`, ``{"name": ..., **kw}``, or ``None``.
        seed: the seed every random stream derives from.
    """

    def __init__(
        self,
        name: str = "study",
        storage: str | Journal | None = None,
        objectives: str | Sequence[str] | Mapping[str, str] | None = None,
        constraints: Mapping[str, Any] | None = None,
        strategy: str | Strategy | dict[str, Any] = "auto",
        scheduler: str | Scheduler | dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.journal = get_storage(storage)
        found = self.journal.find_study(name)
        config: dict[str, Any]
        if found is None:
            self.objectives = parse_objectives(objectives)
            self.constraints = parse_constraints(constraints)
            self.seed = int(seed)
            self.strategy, spec = resolve(strategy)
            self.scheduler, sched_spec = resolve_scheduler(scheduler)
            config = {"objectives": self.objectives, "constraints": self.constraints,
                      "seed": self.seed, "strategy": spec, "scheduler": sched_spec}
            self._id = self.journal.create_study(name, config)
        else:
            self._id, config = found
            stored: dict[str, str] = config["objectives"]
            if objectives is not None and list(parse_objectives(objectives).items()) != list(
                stored.items()
            ):  # order matters: a float result is the first objective
                raise ConfigError(
                    f"study {name!r} exists with objectives {stored}; "
                    f"got {parse_objectives(objectives)}"
                )
            self.objectives = stored
            self.constraints = {k: (v[0], v[1]) for k, v in config["constraints"].items()}
            if constraints is not None and parse_constraints(constraints) != self.constraints:
                raise ConfigError(f"study {name!r} exists with constraints {config['constraints']}")
            self.seed = int(config["seed"])
            self.strategy, _ = resolve(config["strategy"] if strategy == "auto" else strategy)
            self.scheduler, _ = resolve_scheduler(
                config.get("scheduler") if scheduler is None else scheduler)
        self.config = config
        self.strategy.setup(self.objectives, self.seed)
        if self.scheduler is not None:
            self.scheduler.setup(self.objectives, self.seed)
        self._owner = owner_token()
        self._log = TrialLog(self.journal, self._id)
        self._sync()
        self._interrupt_orphans()

    # -- journal --------------------------------------------------------------------------------
    def _append(self, *events: dict[str, Any]) -> None:
        now = time.time()
        self.journal.append(self._id, [{**e, "time": now} for e in events])

    def _sync(self) -> None:
        for trial in self._log.sync():
            self.strategy.tell(trial)

    def _interrupt_orphans(self) -> None:
        """Marks trials left running by a process that is gone as interrupted."""
        with self.journal.exclusive():
            self._sync()
            dead = [t.number for t in self._log.trials.values()
                    if t.state is TrialState.RUNNING and owner_alive(t.owner) is False]
            for n in dead:
                self._append({"kind": "interrupt", "trial": n, "reason": "its process died"})
            self._sync()
        if dead:
            log.warning("trials %s were left running by a dead process; they run again first", dead)

    # -- ask / tell -----------------------------------------------------------------------------
    def enqueue(self, arch: Mapping[str, Any]) -> None:
        """Queues decisions (a whole or partial architecture) for a coming trial, durably:
        trials take queued architectures, oldest first, before asking the strategy."""
        self._append({"kind": "enqueue", "id": uuid.uuid4().hex, "arch": dict(arch)})

    def ask(self, fixed: Mapping[str, Any] | None = None) -> Trial:
        """Starts a trial. An interrupted trial is taken up again first (same number and
        architecture), then a queued architecture (:meth:`enqueue`); otherwise a new one is
        numbered and the strategy fills its decisions.

        Args:
            fixed: decisions to impose (e.g. an architecture to evaluate again).
        """
        with self.journal.exclusive():
            self._sync()
            first = next(iter(self._log.interrupted), None)
            retry = None if first is None else self._log.trials[first]
            if retry is not None:
                number, imposed = retry.number, {**retry.arch, **(fixed or {})}
                self._append({"kind": "restart", "trial": number, "owner": self._owner})
            else:
                number, imposed = len(self._log.trials), dict(fixed or {})
                queued = next(iter(self._log.queue), None) if fixed is None else None
                if queued is not None:
                    imposed = dict(self._log.queue[queued])
                budget = None if self.scheduler is None else self.scheduler.budget(number)
                self._append({"kind": "create", "trial": number, "owner": self._owner,
                              "budget": budget, "queued": queued})
            self._sync()
        pending = [self._log.trials[n].arch for n in self._log.running if n != number]
        ctx = AskContext(number=number, seed=self.seed, pending=pending)
        return Trial(self, number, imposed, ctx)

    def tell(
        self,
        trial: Trial | int,
        result: float | Mapping[str, float] | None = None,
        *,
        state: TrialState = TrialState.COMPLETE,
        error: str | None = None,
    ) -> FrozenTrial:
        """Finishes a trial with its result (a float is the first objective).

        A complete trial whose objectives are missing, NaN or infinite is recorded FAILED with
        the reason. A pruned trial without a result keeps its last reported metrics. A
        ``REJECTED`` trial (refused before evaluation, e.g. too many parameters) is infeasible.
        """
        number = trial if isinstance(trial, int) else trial.number
        self._sync()  # reports made since ask() (a pruned trial keeps the last one)
        current = self._log.trials.get(number)
        if current is None or current.state is not TrialState.RUNNING:
            raise ValueError(f"trial {number} is not running (state: {current and current.state})")
        metrics = self._metrics(result)
        if state is TrialState.PRUNED and not metrics and current.intermediate:
            metrics = dict(current.intermediate[-1][1])
        if state is TrialState.COMPLETE:
            bad = [n for n in self.objectives if not math.isfinite(metrics.get(n, math.nan))]
            if bad:
                state = TrialState.FAILED
                error = error or "objective " + ", ".join(
                    f"{n!r} is {metrics[n]}" if n in metrics else f"{n!r} is missing" for n in bad
                ) + f" (result: {metrics})"
        feasible = (is_feasible(metrics, self.constraints) if state is TrialState.COMPLETE
                    else False if state is TrialState.REJECTED else None)
        event = {"kind": "finish", "trial": number, "state": state.value, "metrics": metrics,
                 "feasible": feasible, "error": error}
        if isinstance(trial, Trial):  # from the running process: only its owner may finish it
            event.update(trial._uncommitted(), owner=self._owner)
        self._append(event)
        self._sync()
        return self._log.trials[number]

    def _metrics(self, result: float | Mapping[str, float] | None) -> dict[str, float]:
        if result is None:
            return {}
        if isinstance(result, Mapping):
            out = {}
            for k, v in result.items():
                try:
                    out[str(k)] = float(v)
                except (TypeError, ValueError):
                    raise TypeError(f"metric {k!r} is not a number: {v!r}") from None
            return out
        try:
            return {next(iter(self.objectives)): float(result)}
        except (TypeError, ValueError):
            raise TypeError(
                f"the objective returned {result!r}: expected a number or a dict of numbers"
            ) from None

    # -- the loop -------------------------------------------------------------------------------
    def optimize(
        self,
        objective: Objective,
        trials: int | None = None,
        timeout: float | None = None,
        workers: int = 1,
        executor: str = "inline",
        callbacks: Iterable[Callback] = (),
        max_failures: int | None = None,
    ) -> None:
        """Runs trials until ``trials`` more have finished, ``timeout`` seconds have passed, or
        the strategy is exhausted.

        A trial that raises is recorded FAILED with its reason and the loop goes on; a
        :class:`TrialPruned` records it PRUNED; a :class:`SpaceError` (a malformed space) and
        ``KeyboardInterrupt`` stop the loop (the trial is recorded FAILED, respectively
        INTERRUPTED so that it runs again on resume).

        Args:
            objective: ``objective(hp) -> float | dict``.
            trials: how many trials this call runs (``None``: until timeout or exhaustion).
            timeout: seconds after which no new trial starts.
            workers, executor: parallelism; only ``1`` and ``"inline"`` for now.
            callbacks: called as ``cb(study, frozen_trial)`` after each trial.
            max_failures: stop with an error after this many failures in a row.
        """
        if executor != "inline" or workers != 1:
            raise ConfigError(
                f"executor={executor!r}, workers={workers}: only the inline executor with one "
                "worker is available in this version"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        done, failures_in_row = 0, 0
        while (trials is None or done < trials) and not self.strategy.exhausted():
            if deadline is not None and time.monotonic() >= deadline:
                break
            frozen = self._run_one(objective)
            done += 1
            failures_in_row = failures_in_row + 1 if frozen.state is TrialState.FAILED else 0
            for cb in callbacks:
                cb(self, frozen)
            if max_failures is not None and failures_in_row >= max_failures:
                raise TooManyFailures(
                    f"{failures_in_row} trials failed in a row; last error: {frozen.error}"
                )

    def _run_one(self, objective: Objective) -> FrozenTrial:
        trial = self.ask()
        try:
            result = objective(trial.hp)
        except TrialPruned as exc:
            return self.tell(trial, trial.last_metrics or None, state=TrialState.PRUNED,
                             error=str(exc) or None)
        except SpaceError as exc:
            self.tell(trial, state=TrialState.FAILED, error=f"SpaceError: {exc}")
            raise
        except (KeyboardInterrupt, SystemExit):
            self._append({"kind": "interrupt", "trial": trial.number, "reason": "interrupted"})
            raise
        except Exception as exc:
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            return self.tell(trial, state=TrialState.FAILED, error=f"{type(exc).__name__}: {exc}")
        try:
            return self.tell(trial, result)
        except TypeError as exc:
            return self.tell(trial, state=TrialState.FAILED, error=str(exc))

    # -- results --------------------------------------------------------------------------------
    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, by number (synced with storage)."""
        self._sync()
        return [self._log.trials[n] for n in sorted(self._log.trials)]

    def _ranked(self) -> list[FrozenTrial]:
        done = [t for t in self.trials if t.state is TrialState.COMPLETE and t.feasible]
        return sorted(done, key=rank_key(self.objectives))

    @property
    def best_trial(self) -> FrozenTrial:
        """The best complete, feasible trial (single objective; see :meth:`pareto_front`)."""
        if len(self.objectives) > 1:
            raise ValueError("best_trial is for one objective; use pareto_front() for several")
        ranked = self._ranked()
        if not ranked:
            raise ValueError(f"study {self.name!r} has no complete feasible trial yet")
        return ranked[0]

    def pareto_front(self) -> list[FrozenTrial]:
        """The non-dominated complete, feasible trials, best first objective first."""
        return pareto_front(self._ranked(), self.objectives)

    def results_summary(self, top: int = 10) -> str:
        """A table of the best trials (Keras Tuner's ``results_summary``)."""
        states: dict[str, int] = {}
        for t in self.trials:
            states[t.state.value] = states.get(t.state.value, 0) + 1
        head = f"Study {self.name!r}: " + ", ".join(f"{v} {k}" for k, v in states.items())
        extra = [c for c in self.constraints if c not in self.objectives]
        return head + "\n" + leaderboard(self._ranked(), self.objectives, extra, top=top)

    def space_summary(self, space: Callable[[HP], Any] | None = None) -> str:
        """Every label, its domain, the decision it depends on, and the size of the space.

        With ``space``, the function is explored; without, the recorded trials are used.
        """
        info: SpaceInfo
        if space is not None:
            info = explore(space)
        else:
            trials = [t for t in self.trials if t.arch]
            domains: dict[str, Domain] = {}
            for t in trials:
                for k, d in t.domains.items():
                    domains.setdefault(k, d)
            info = infer([t.arch for t in trials], domains)
        return info.summary()


def load_study(
    storage: str | os.PathLike[str] | Journal, name: str | None = None, **kwargs: Any
) -> Study:
    """Opens an existing study (the only one in ``storage`` when ``name`` is omitted).

    Keyword arguments (``strategy``, ``scheduler``) are passed to :class:`Study`.
    """
    if isinstance(storage, (str, os.PathLike)) and os.fspath(storage) != ":memory:":
        path = os.fspath(storage).removeprefix("sqlite:///")
        if not os.path.exists(path):
            raise ValueError(f"no such storage file: {path}")
    journal = get_storage(storage)
    names = journal.study_names()
    if name is None:
        if len(names) != 1:
            raise ValueError(f"{storage}: name one of the studies {names}")
        name = names[0]
    if name not in names:
        raise ValueError(f"{storage}: no study named {name!r} (studies: {names})")
    return Study(name=name, storage=journal, **kwargs)
