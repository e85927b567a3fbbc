"""Any Optuna sampler as a torchnas strategy, through an in-memory Optuna study.

Each torchnas study gets its own Optuna study. :meth:`OptunaStrategy.ask` asks it for a trial;
each decision the space meets becomes the matching Optuna distribution (``choice``, ``op``,
``bool``: categorical; ``inputs``: categorical over the index of the combination; ``int`` and
``float`` with their step and log scale) and is suggested through that trial; a finished trial is
told back (failed: ``FAIL``, pruned: ``PRUNED`` with its reports). Trials this instance did not
ask (a resumed study's replay, architectures imposed by hand) are added whole with
``optuna.trial.create_trial``. A sampler given by name is built afresh for each trial with a
seed derived from ``(seed, trial number)``, so a resumed study proposes what an uninterrupted
one would for samplers whose only state is the trials (random, TPE, QMC, GP).

Optuna is an optional dependency: ``pip install 'torchnas[optuna]'``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from torchnas._util.errors import ConfigError
from torchnas.space import Categorical, Domain, Float, Inputs, Int
from torchnas.strategies._base import AskContext, Strategy, derive_seed, register
from torchnas.study._trial import FrozenTrial, TrialState

__all__ = ["SAMPLERS", "OptunaStrategy"]

SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler",
            "gp": "GPSampler", "nsgaii": "NSGAIISampler", "nsgaiii": "NSGAIIISampler",
            "qmc": "QMCSampler"}
"""Sampler names and the ``optuna.samplers`` class each stands for."""


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ImportError("the optuna strategy needs Optuna: pip install 'torchnas[optuna]' "
                          "(or pip install optuna)") from exc
    return optuna


@contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna's per-trial INFO lines silenced (the study has its own progress report)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _rank(n: int, combination: list[int]) -> int:
    """The index of a sorted combination in ``itertools.combinations(range(n), k)`` order."""
    k, index, start = len(combination), 0, 0
    for i, c in enumerate(combination):
        index += sum(math.comb(n - x - 1, k - i - 1) for x in range(start, c))
        start = c + 1
    return index


def _unrank(n: int, k: int, index: int) -> list[int]:
    """The combination at ``index`` in ``itertools.combinations(range(n), k)`` order."""
    out, x = [], 0
    for i in range(k):
        while math.comb(n - x - 1, k - i - 1) <= index:
            index -= math.comb(n - x - 1, k - i - 1)
            x += 1
        out.append(x)
        x += 1
    return out


def distribution(domain: Domain) -> Any:
    """The Optuna distribution of a domain (``inputs``: categorical over combination
    indices)."""
    dist = _optuna().distributions
    if isinstance(domain, Categorical):
        return dist.CategoricalDistribution(list(domain.choices))
    if isinstance(domain, Inputs):
        return dist.CategoricalDistribution(list(range(domain.size)))
    if isinstance(domain, Int):
        return dist.IntDistribution(domain.low, domain.high, log=domain.log, step=domain.step)
    if isinstance(domain, Float):
        top = domain.high
        if domain.step is not None and domain.size is not None:  # a multiple of the step,
            top = float(Decimal(str(domain.low)) + (domain.size - 1) * Decimal(  # as Optuna
                str(domain.step)))  # counts it (decimal), else it lowers the bound
        return dist.FloatDistribution(domain.low, top, log=domain.log, step=domain.step)
    raise TypeError(f"no Optuna distribution for {domain.describe()}")


def _to_optuna(domain: Domain, value: Any) -> Any:
    return _rank(domain.n, domain.normalize(value)) if isinstance(domain, Inputs) else value


def _from_optuna(domain: Domain, value: Any) -> Any:
    if isinstance(domain, Inputs):
        return _unrank(domain.n, domain.k, int(value))
    if isinstance(domain, Float) and not domain.contains(value):
        value = min(domain.high, max(domain.low, float(value)))
        if domain.step is not None:  # snap to the grid
            value = min(domain.high, domain.low + domain.step * round(
                (value - domain.low) / domain.step))
    return domain.normalize(value)


@register("optuna")
class OptunaStrategy(Strategy):
    """An Optuna sampler behind the strategy interface.

    Args:
        sampler: a name in :data:`SAMPLERS` (``"tpe"``, ``"random"``, ``"cmaes"``, ``"gp"``,
            ``"nsgaii"``, ...), the import path of a sampler class (``"optuna.samplers.
            TPESampler"``, a sampler of one's own), or a sampler object, used as it is (its own
            seed and state: exact resumes are then up to it; the study stores its class path,
            so a reopened study builds a fresh one from ``sampler_kwargs``).
        sampler_kwargs: keyword arguments of the named sampler's class (``seed`` defaults to
            one derived from the study's seed and the trial number).

    Example:
        >>> import torchnas as tn
        >>> study = tn.Study(objectives={"loss": "min"},
        ...                  strategy={"name": "optuna", "sampler": "random"})
        >>> study.optimize(lambda hp: hp.float("x", -1.0, 1.0) ** 2, trials=3)
        >>> len(study.trials)
        3
    """

    def __init__(self, sampler: str | Any = "tpe",
                 sampler_kwargs: dict[str, Any] | None = None) -> None:
        self.sampler = sampler
        self.sampler_kwargs = sampler_kwargs

    def check(self) -> None:
        """Checks the sampler (a class path is imported) and ``sampler_kwargs``; whether the
        sampler takes them is known when :meth:`setup` builds it."""
        if isinstance(self.sampler, str):
            if self.sampler not in SAMPLERS and "." not in self.sampler:
                raise ConfigError(f"strategy 'optuna': unknown sampler {self.sampler!r}; known: "
                                  f"{sorted(SAMPLERS)}, or a class path such as "
                                  f"'optuna.samplers.TPESampler'")
            if self.sampler not in SAMPLERS:
                self._sampler_class()
        elif not isinstance(self.sampler, _optuna().samplers.BaseSampler):
            raise ConfigError(f"strategy 'optuna': sampler must be a name, a class path or an "
                              f"Optuna sampler, got {self.sampler!r}")
        if self.sampler_kwargs is not None and not isinstance(self.sampler_kwargs, dict):
            raise ConfigError(f"strategy 'optuna': sampler_kwargs must be a dict or None, got "
                              f"{self.sampler_kwargs!r}")

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        optuna = self._optuna = _optuna()
        directions = ["maximize" if d == "max" else "minimize" for d in objectives.values()]
        with _quiet(optuna):
            self._study = optuna.create_study(directions=directions, sampler=self._sampler(-1))
        self._live: dict[int, Any] = {}

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments; a sampler object as its class path (JSON-able)."""
        params = super().get_params()
        if not isinstance(self.sampler, str):
            cls = type(self.sampler)
            params["sampler"] = f"{cls.__module__}.{cls.__qualname__}"
        return params

    @property
    def optuna_study(self) -> Any:
        """The Optuna study behind this strategy (for Optuna's plots and analyses)."""
        return self._study

    def _sampler_class(self) -> Any:
        """The class a sampler given by name or class path stands for."""
        assert isinstance(self.sampler, str)
        if self.sampler in SAMPLERS:
            return getattr(_optuna().samplers, SAMPLERS[self.sampler])
        module, _, name = self.sampler.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"strategy 'optuna': sampler {self.sampler!r} cannot be "
                              f"imported: {exc}") from exc

    def _sampler(self, number: int) -> Any:
        if not isinstance(self.sampler, str):
            return self.sampler
        cls = self._sampler_class()
        kwargs = {"seed": derive_seed(self.seed, number, "optuna") % 2**32,
                  **(self.sampler_kwargs or {})}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"strategy 'optuna': sampler {self.sampler!r} does not take "
                              f"sampler_kwargs {self.sampler_kwargs!r}: {exc}") from exc

    def ask(self, ctx: AskContext) -> dict[str, Any]:
        stale = self._live.pop(ctx.number, None)
        with _quiet(self._optuna):
            if stale is not None:  # the trial is taken up again: its first attempt is void
                self._study.tell(stale, state=self._optuna.trial.TrialState.FAIL)
            self._study.sampler = self._sampler(ctx.number)
            self._live[ctx.number] = self._study.ask()
        return {}

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        if ctx.number not in self._live:
            self.ask(ctx)
        trial = self._live[ctx.number]
        dist = distribution(domain)
        if isinstance(domain, (Categorical, Inputs)):
            value = trial.suggest_categorical(label, dist.choices)
        elif isinstance(domain, Int):
            value = trial.suggest_int(label, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            value = trial.suggest_float(label, dist.low, dist.high, step=dist.step, log=dist.log)
        return _from_optuna(domain, value)

    def tell(self, trial: FrozenTrial) -> None:
        optuna = self._optuna
        states = {TrialState.COMPLETE: optuna.trial.TrialState.COMPLETE,
                  TrialState.PRUNED: optuna.trial.TrialState.PRUNED}
        state = states.get(trial.state, optuna.trial.TrialState.FAIL)
        values: list[float] | None = [trial.value(n) for n in self.objectives]
        if state is not optuna.trial.TrialState.COMPLETE or not all(
                math.isfinite(v) for v in values or ()):
            values = None
        if state is optuna.trial.TrialState.COMPLETE and values is None:
            state = optuna.trial.TrialState.FAIL
        first = next(iter(self.objectives))
        reports = {} if len(self.objectives) > 1 else {
            int(step): m[first] for step, m in trial.intermediate
            if first in m and math.isfinite(m[first])}
        params = {lb: _to_optuna(trial.domains[lb], v) for lb, v in trial.arch.items()
                  if lb in trial.domains}
        live = self._live.pop(trial.number, None)
        with _quiet(optuna):
            if live is not None and live.params.keys() == params.keys() and all(
                    _from_optuna(trial.domains[lb], v) == trial.arch[lb]
                    for lb, v in live.params.items()):
                for step, value in reports.items():
                    live.report(value, step)
                self._study.tell(live, values, state=state)
                return
            if live is not None:  # decisions were imposed: record what actually ran instead
                self._study.tell(live, state=optuna.trial.TrialState.FAIL)
            if state is optuna.trial.TrialState.PRUNED and reports:
                values = [reports[max(reports)]]
            self._study.add_trial(optuna.trial.create_trial(
                state=state, values=values, params=params, intermediate_values=reports,
                distributions={lb: distribution(trial.domains[lb]) for lb in params}))
