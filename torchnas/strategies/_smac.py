"""Model-based search in the manner of SMAC (Hutter, Hoos and Leyton-Brown, LION 2011).

After ``startup`` random trials, a surrogate (:class:`~torchnas.surrogate.Surrogate`, randomized
trees by default) is fitted on the encodings of every finished architecture
(:class:`~torchnas.surrogate.Encoding`); failed and infeasible trials count as the
worst value seen. The next architecture maximizes an acquisition function over candidates found
by a local search *on the acquisition*: hill climbing through one-decision moves, started from
the best architectures evaluated and from the best of many random ones. Architectures already
evaluated or running are never proposed. The default acquisition is expected improvement; the
predicted mean alone (``acquisition="mean"``: each fit's randomized trees already vary from
trial to trial) measured a lower regret on NAS-Bench-Graph at 100 queries
(``benchmarks/tabular.py``) but a worse one on continuous decisions (``tests``' toy spaces).
"""

from __future__ import annotations

import math
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
from torchnas.strategies._evolution import score
from torchnas.strategies._mutation import mutate, neighbours
from torchnas.strategies._proposer import ArchProposer, Taken
from torchnas.study._trial import FrozenTrial
from torchnas.surrogate import ACQUISITIONS, KINDS, Encoding, Surrogate, acquire

__all__ = ["SMACStrategy"]


@register("smac")
class SMACStrategy(ArchProposer):
    """Surrogate-guided search: a surrogate model and a local search on its acquisition.

    Args:
        startup: random trials before the first fit.
        surrogate: ``"forest"``, ``"ensemble"`` or ``"gp"``.
        members: trees of the forest, or models of the ensemble.
        acquisition: ``"ei"``, ``"ucb"``, ``"its"`` (Thompson) or ``"mean"``.
        random_candidates: random architectures scored per trial (the best seed climbs too).
        starts: the best evaluated architectures each climb starts from.
        steps: the most moves of one climb.
        random_fraction: the probability that a trial is drawn at random instead (exploration
            that does not rely on the model).
        float_points: values a move tries for a numeric decision (spread over its range).
        kappa, xi: the weight of the spread in ``"ucb"``, the margin of ``"ei"``.
        max_train: fit on at most this many trials: the best half and a seeded random half
            of the others (keeps a suggestion fast after thousands of trials).
    """

    def __init__(self, startup: int = 10, surrogate: str = "forest", members: int = 32,
                 acquisition: str = "ei", random_candidates: int = 256, starts: int = 5,
                 steps: int = 3, random_fraction: float = 0.0, float_points: int = 8,
                 kappa: float = 1.0, xi: float = 0.0, max_train: int = 256) -> None:
        self.startup = startup
        self.surrogate = surrogate
        self.members = members
        self.acquisition = acquisition
        self.random_candidates = random_candidates
        self.starts = starts
        self.steps = steps
        self.random_fraction = random_fraction
        self.float_points = float_points
        self.kappa = kappa
        self.xi = xi
        self.max_train = max_train

    def check(self) -> None:
        for key, low in (("startup", 0), ("members", 1), ("random_candidates", 0),
                         ("starts", 0), ("steps", 0), ("float_points", 2),
                         ("max_train", 2)):
            check_int("strategy 'smac'", key, getattr(self, key), low)
        if self.surrogate not in KINDS:
            raise ConfigError(f"strategy 'smac': surrogate must be one of {KINDS}, got "
                              f"{self.surrogate!r}")
        if self.acquisition not in ACQUISITIONS:
            raise ConfigError(f"strategy 'smac': acquisition must be one of {ACQUISITIONS}, "
                              f"got {self.acquisition!r}")
        check_real("strategy 'smac'", "random_fraction", self.random_fraction, 0.0, 1.0)
        check_real("strategy 'smac'", "kappa", self.kappa, 0.0)
        check_real("strategy 'smac'", "xi", self.xi)

    def setup(self, objectives: Mapping[str, str], seed: int) -> None:
        super().setup(objectives, seed)
        warn_first_objective(self.name, objectives)
        self._archs: list[dict[str, Any]] = []
        self._values: list[float] = []  # NaN: failed or infeasible (imputed as the worst)
        self._first = next(iter(objectives))
        self._model: tuple[int, Encoding, Surrogate] | None = None

    def tell(self, trial: FrozenTrial) -> None:
        super().tell(trial)
        s = score(trial, {self._first: self.objectives[self._first]})
        if s is None:
            return
        self._archs.append(dict(trial.arch))
        self._values.append(s[1][0] if s[0] == 2 else math.nan)

    def _fit(self, y: np.ndarray) -> tuple[Encoding, Surrogate]:
        """The surrogate on every usable trial told so far (at most ``max_train`` of them),
        kept while nothing new is told (parallel asks)."""
        if self._model is not None and self._model[0] == len(y):
            return self._model[1], self._model[2]
        rows = np.arange(len(y))
        if len(rows) > self.max_train:  # the best half, and a seeded random half of the rest
            ranked = np.argsort(-y, kind="stable")
            keep = self.max_train // 2
            rest = np.random.default_rng(derive_seed(self.seed, len(y), "smac:train") % 2**32
                                         ).permutation(ranked[keep:])
            rows = np.sort(np.concatenate([ranked[:keep], rest[: self.max_train - keep]]))
        archs = [self._archs[i] for i in rows]
        enc = Encoding.from_archs(archs, self._domains)
        model = Surrogate(self.surrogate, members=self.members,
                          seed=derive_seed(self.seed, len(y), "smac"))
        model.fit(enc.encode_many(archs), y[rows])
        self._model = (len(y), enc, model)
        return enc, model

    def propose(self, ctx: AskContext, taken: Taken) -> dict[str, Any]:
        rng = ctx.rng("smac")
        y = np.array(self._values)
        good = np.isfinite(y)
        if (ctx.number < self.startup or good.sum() < 2
                or rng.random() < self.random_fraction):
            return taken.random(rng)
        y = np.where(good, y, y[good].min())
        enc, model = self._fit(y)
        nrng = np.random.default_rng(rng.getrandbits(64))
        best = float(y.max())

        def scores(archs: list[dict[str, Any]]) -> np.ndarray:
            mean, std = model.predict(enc.encode_many(archs))
            return acquire(self.acquisition, mean, std, best, nrng, self.kappa, self.xi)

        pool: list[dict[str, Any]] = []
        pool_values: list[np.ndarray] = []

        def consider(archs: list[dict[str, Any]], values: np.ndarray) -> None:
            pool.extend(archs)
            pool_values.append(values)

        randoms = [{lb: d.sample(rng) for lb, d in self._domains.items()}
                   for _ in range(self.random_candidates)]
        order = np.argsort(-y, kind="stable")[: self.starts]
        climbers = [self._archs[i] for i in order]
        if randoms:
            values = scores(randoms)
            consider(randoms, values)
            climbers += [randoms[int(i)] for i in np.argsort(-values)[:max(1, self.starts // 2)]]
        current = list(climbers)
        current_values = scores(current)
        consider(current, current_values)
        for _ in range(self.steps):
            moves: list[dict[str, Any]] = []
            owner: list[int] = []
            for j, arch in enumerate(current):
                near = neighbours(arch, self._domains, self.float_points)
                near += [mutate(arch, self._domains, rng, scale=0.05) for _ in range(2)]
                moves += near
                owner += [j] * len(near)
            if not moves:
                break
            values = scores(moves)
            consider(moves, values)
            moved = False
            for j in range(len(current)):
                mine = [k for k, o in enumerate(owner) if o == j]
                k = max(mine, key=lambda k: values[k], default=None)
                if k is not None and values[k] > current_values[j]:
                    current[j], current_values[j] = moves[k], values[k]
                    moved = True
            if not moved:
                break
        order = np.argsort(-np.concatenate(pool_values), kind="stable")
        arch = next(taken.new(pool[i] for i in order), None)
        return arch if arch is not None else taken.random(rng)
