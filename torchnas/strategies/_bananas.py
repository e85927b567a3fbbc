"""BANANAS: predictor-guided search (White, Neiswanger and Savani, AAAI 2021).

After ``startup`` random trials, an ensemble of regressors is fitted on the encodings of the
finished architectures (:class:`~torchnas.surrogate.Encoding`) to predict the first
objective. Candidates are mutations of the best architectures plus a few random ones, never an
architecture already evaluated or running; the one with the best acquisition (independent
Thompson sampling or an upper confidence bound over the ensemble's spread) is proposed whole by
:meth:`ask`. Decisions the change newly brings in (a deeper network's extra layers) are drawn at
random.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np

from torchnas._util.errors import ConfigError
from torchnas.strategies._base import (
    AskContext,
    check_int,
    check_real,
    derive_seed,
    register,
    warn_first_objective,
)
from torchnas.strategies._mutation import mutate
from torchnas.strategies._proposer import ArchProposer, Taken
from torchnas.study._trial import FrozenTrial, TrialState
from torchnas.surrogate import Encoding, Surrogate, acquire

__all__ = ["BananasStrategy"]

MODELS = ("gbr", "mlp")


@register("bananas")
class BananasStrategy(ArchProposer):
    """Neural-predictor (or boosted-trees) guided evolution with an ensemble's uncertainty.

    Args:
        startup: trials drawn at random before the first fit.
        ensemble: regressors in the ensemble (each with its own seed and subsample).
        candidates: architectures scored per trial.
        parents: the best architectures that candidates are mutated from.
        random_candidates: how many of the candidates are drawn at random instead.
        acquisition: ``"its"`` (independent Thompson sampling) or ``"ucb"``.
        kappa: the weight of the ensemble's spread in ``"ucb"``.
        model: ``"gbr"`` (gradient-boosted trees, with subsampling) or ``"mlp"``.
        max_train: fit on at most this many trials: the best half and a random half of the
            rest.
        refit_every: fit the ensemble again every this many finished trials.
    """

    def __init__(self, startup: int = 10, ensemble: int = 5, candidates: int = 100,
                 parents: int = 10, random_candidates: int = 10, acquisition: str = "its",
                 kappa: float = 1.0, model: str = "gbr", max_train: int = 256,
                 refit_every: int = 1) -> None:
        self.startup = startup
        self.ensemble = ensemble
        self.candidates = candidates
        self.parents = parents
        self.random_candidates = random_candidates
        self.acquisition = acquisition
        self.kappa = kappa
        self.model = model
        self.max_train = max_train
        self.refit_every = refit_every

    def check(self) -> None:
        for key, low in (("startup", 0), ("ensemble", 1), ("candidates", 1), ("parents", 1),
                         ("random_candidates", 0), ("max_train", 2), ("refit_every", 1)):
            check_int("strategy 'bananas'", key, getattr(self, key), low)
        check_real("strategy 'bananas'", "kappa", self.kappa, 0.0)
        if self.acquisition not in ("its", "ucb"):
            raise ConfigError(f"strategy 'bananas': acquisition must be 'its' or 'ucb', got "
                              f"{self.acquisition!r}")
        if self.model not in MODELS:
            raise ConfigError(f"strategy 'bananas': model must be one of {MODELS}, got "
                              f"{self.model!r}")

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        warn_first_objective(self.name, objectives)
        name, direction = next(iter(objectives.items()))
        self._metric, self._sign = name, 1.0 if direction == "max" else -1.0
        self._conditional: set[str] = set()
        self._told: list[FrozenTrial] = []
        self._scored: list[tuple[int, float]] = []  # (index in _told, signed objective)
        self._encoding: Encoding | None = None
        self._x = np.zeros((0, 0))  # encodings of _told under _encoding
        self._fitted: tuple[int, Encoding | None, Surrogate | None] = (-1, None, None)

    def tell(self, trial: FrozenTrial) -> None:
        if self._told:  # a label first met after the first trial is conditional
            self._conditional.update(lb for lb in trial.domains if lb not in self._domains)
        super().tell(trial)
        self._conditional.update(lb for lb in self._domains if lb not in trial.arch)
        self._told.append(trial)
        value = self._sign * trial.value(self._metric)
        if trial.state is TrialState.COMPLETE and math.isfinite(value):
            self._scored.append((len(self._told) - 1, value))

    # -- the predictor ----------------------------------------------------------------------
    def _encode(self, archs: list[dict[str, Any]]) -> np.ndarray:
        """Encodings under the current layout (the cached ones re-made when it changed)."""
        enc = Encoding(dict(self._domains), frozenset(self._conditional))
        if enc != self._encoding:
            self._encoding, self._x = enc, enc.encode_many([t.arch for t in self._told])
        elif len(self._x) < len(self._told):
            self._x = np.vstack([self._x, enc.encode_many([t.arch for t in
                                                           self._told[len(self._x):]])])
        return enc.encode_many(archs)

    def _fit(self) -> Surrogate:
        """The ensemble, fitted on the first trials up to the last refit point (so a resumed
        study fits exactly what an uninterrupted one did)."""
        n = len(self._scored)
        n -= (n - self.startup) % max(1, self.refit_every)
        if self._fitted[:2] == (n, self._encoding) and self._fitted[2] is not None:
            return self._fitted[2]
        data = self._scored[:n]
        if len(data) > self.max_train:  # the best half, and a random half of the others
            ranked = sorted(data, key=lambda d: -d[1])
            keep = self.max_train // 2
            rest = ranked[keep:]
            random.Random(derive_seed(self.seed, n, "bananas:train")).shuffle(rest)
            data = ranked[:keep] + rest[: self.max_train - keep]
        x = self._x[[i for i, _ in data]]
        y = np.array([v for _, v in data])
        model = Surrogate("ensemble", members=self.ensemble, model=self.model,
                          seed=derive_seed(self.seed, n, "bananas")).fit(x, y)
        self._fitted = (n, self._encoding, model)
        return model

    def _candidates(self, rng: random.Random, taken: Taken) -> list[dict[str, Any]]:
        """Mutations of the best architectures and random ones, none seen or running (as the
        run would meet them: a changed decision drops labels and brings in new ones)."""
        best = sorted(self._scored, key=lambda d: -d[1])[: max(1, self.parents)]
        parents = [self._told[i].arch for i, _ in best]
        n_random = min(self.random_candidates, self.candidates)
        out = [mutate(parents[j % len(parents)], self._domains, rng,
                      k=1 if rng.random() < 0.7 else 2)
               for j in range(self.candidates - n_random)]
        out += [{lb: d.sample(rng) for lb, d in self._domains.items()} for _ in range(n_random)]
        return list(taken.new(out))

    def propose(self, ctx: AskContext, taken: Taken) -> dict[str, Any]:
        if len(self._scored) < max(self.startup, 2):
            return taken.random(ctx.rng("bananas", "random"))
        rng = ctx.rng("bananas")
        cands = self._candidates(rng, taken)
        if not cands:
            return taken.random(ctx.rng("bananas", "random"))
        x = self._encode(cands)
        mean, std = self._fit().predict(x)
        nrng = np.random.default_rng(rng.getrandbits(64))
        score = acquire(self.acquisition, mean, std, 0.0, nrng, kappa=self.kappa)
        return cands[int(np.argmax(score))]
