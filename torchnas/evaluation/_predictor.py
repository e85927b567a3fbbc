"""Surrogate predictors: estimate a metric of untrained architectures from trained ones.

A :class:`Predictor` is fitted on finished trials (or on architectures and their measured
values) and predicts, for architectures nobody trained, a mean and a standard deviation. It
shares its architecture encoding (:class:`~torchnas.surrogate.Encoding`) and its models
(:class:`~torchnas.surrogate.Surrogate`) with the model-based strategies, so what it says is
what ``smac`` and ``bananas`` believe.

Example:
    >>> import torchnas as tn
    >>> def space(hp):
    ...     return hp.int("depth", 1, 8) + hp.choice("act", [0, 2])
    >>> study = tn.Study(objectives={"score": "max"}, seed=0)
    >>> study.optimize(space, trials=30)
    >>> mean, std = tn.evaluation.Predictor("forest").fit(study.trials).predict(
    ...     [{"depth": 8, "act": 2}, {"depth": 1, "act": 0}])
    >>> bool(mean[0] > mean[1])
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from torchnas._util.errors import ConfigError
from torchnas.space import Domain, explore
from torchnas.study._trial import FrozenTrial, TrialState
from torchnas.surrogate import KINDS, Encoding, Surrogate

__all__ = ["Predictor"]


class Predictor:
    """A performance predictor with uncertainty, over any space's architectures.

    Args:
        kind: ``"gp"`` (a Gaussian process: the best calibrated uncertainty, and close to the
            best ranking in ``benchmarks/predictors.py``), ``"ensemble"`` (gradient-boosted
            trees fitted with their own seeds and subsamples, as in BANANAS: the best ranking,
            overconfident) or ``"forest"`` (randomized trees: the fastest, overconfident).
        metric: the metric to predict when fitting on trials (default: the only metric the
            complete trials share, or an error naming them).
        members: trees of a forest or models of an ensemble.
        seed: seeds the fit.

    Attributes:
        encoding: the columns architectures are encoded into (set by :meth:`fit`).
    """

    def __init__(self, kind: str = "gp", metric: str | None = None, members: int = 32,
                 seed: int = 0) -> None:
        if kind not in KINDS:
            raise ConfigError(f"Predictor: kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.metric = metric
        self.members = members
        self.seed = seed
        self.encoding: Encoding | None = None
        self._model: Surrogate | None = None

    def fit(self, data: Sequence[FrozenTrial] | Sequence[Mapping[str, Any]],
            values: Sequence[float] | None = None, *,
            domains: Mapping[str, Domain] | None = None,
            space: Callable[..., Any] | None = None) -> Predictor:
        """Fits on finished trials, or on architectures and their measured ``values``.

        Args:
            data: frozen trials (``study.trials``: the complete ones with a finite value of
                :attr:`metric` are used; their recorded domains lay out the encoding), or
                architectures (``{label: value}`` dicts).
            values: the measured value of each architecture (only with architectures).
            domains: each label's domain (only with architectures; else ``space``).
            space: the space function, explored to find the domains (only with
                architectures, when ``domains`` is not given).

        Raises:
            ConfigError: for mixed or missing inputs, fewer than two usable points, or
                non-finite values, naming the culprit.
        """
        items = list(data)
        if items and all(isinstance(t, FrozenTrial) for t in items):
            if values is not None:
                raise ConfigError("Predictor.fit: values come from the trials; pass either "
                                  "trials, or architectures and values")
            archs, ys, doms = self._from_trials(items)  # type: ignore[arg-type]
        else:
            if any(isinstance(t, FrozenTrial) for t in items):
                raise ConfigError("Predictor.fit: got a mix of trials and architectures")
            archs, ys, doms = self._from_archs(items, values, domains, space)
        self.encoding = Encoding.from_archs(archs, doms)
        self._model = Surrogate(self.kind, members=self.members, seed=self.seed)
        self._model.fit(self.encoding.encode_many(archs), np.array(ys))
        return self

    def _from_trials(self, trials: list[FrozenTrial]
                     ) -> tuple[list[dict[str, Any]], list[float], dict[str, Domain]]:
        done = [t for t in trials if t.state is TrialState.COMPLETE]
        metric = self.metric
        if metric is None:
            shared = set.intersection(*(set(t.metrics) for t in done)) if done else set()
            if len(shared) != 1:
                raise ConfigError(f"Predictor: say which metric to predict (metric=...); the "
                                  f"complete trials have {sorted(shared) or 'none in common'}")
            metric = next(iter(shared))
        used = [t for t in done if math.isfinite(t.value(metric))]
        if len(used) < 2:
            raise ConfigError(f"Predictor.fit: need at least 2 complete trials with a finite "
                              f"{metric!r}, got {len(used)}")
        doms: dict[str, Domain] = {}
        for t in used:
            for label, dom in t.domains.items():
                doms.setdefault(label, dom)
        return [dict(t.arch) for t in used], [t.value(metric) for t in used], doms

    @staticmethod
    def _from_archs(archs: list[Any], values: Sequence[float] | None,
                    domains: Mapping[str, Domain] | None, space: Callable[..., Any] | None
                    ) -> tuple[list[dict[str, Any]], list[float], dict[str, Domain]]:
        if values is None:
            raise ConfigError("Predictor.fit: architectures need their values: "
                              "fit(archs, values, domains=...)")
        bad = next((a for a in archs if not isinstance(a, Mapping)), None)
        if bad is not None:
            raise ConfigError(f"Predictor.fit: an architecture must be a {{label: value}} "
                              f"dict, got {bad!r}")
        ys = [float(v) for v in values]
        if len(ys) != len(archs):
            raise ConfigError(f"Predictor.fit: {len(archs)} architectures but {len(ys)} values")
        if len(ys) < 2:
            raise ConfigError(f"Predictor.fit: need at least 2 architectures, got {len(ys)}")
        if not all(math.isfinite(v) for v in ys):
            raise ConfigError("Predictor.fit: values must be finite (drop failed ones)")
        if domains is None and space is not None:
            domains = {lb: info.domain for lb, info in explore(space).labels.items()}
        if domains is None:
            raise ConfigError("Predictor.fit: architectures need the domains of their labels "
                              "(domains={label: domain}) or the space function (space=build)")
        missing = sorted({lb for a in archs for lb in a} - set(domains))
        if missing:
            raise ConfigError(f"Predictor.fit: no domain for labels {missing}")
        return [dict(a) for a in archs], ys, dict(domains)

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """The predicted mean and standard deviation of each architecture.

        Labels the fitted architectures never had are ignored.

        Raises:
            RuntimeError: before :meth:`fit`.
            ConfigError: for something that is not a ``{label: value}`` dict.
        """
        if self._model is None or self.encoding is None:
            raise RuntimeError("Predictor: call fit() before predict()")
        archs = list(archs)
        bad = next((a for a in archs if not isinstance(a, Mapping)), None)
        if bad is not None:
            raise ConfigError(f"Predictor.predict: an architecture must be a {{label: value}} "
                              f"dict, got {bad!r}")
        if not archs:
            return np.zeros(0), np.zeros(0)
        return self._model.predict(self.encoding.encode_many(archs))

    def __repr__(self) -> str:
        return (f"Predictor(kind={self.kind!r}, metric={self.metric!r}, members={self.members}, "
                f"seed={self.seed})")
