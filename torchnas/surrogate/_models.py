"""Surrogate models with uncertainty, and the acquisition functions that use them.

One implementation serves the model-based strategies (``bananas``, ``smac``) and the public
:class:`torchnas.evaluation.Predictor`: a regressor over the fixed-width vectors of
:class:`~torchnas.surrogate.Encoding` that predicts a mean and a standard deviation.

- ``"forest"``: randomized trees (scikit-learn's ``ExtraTreesRegressor``, or a bootstrapped
  random forest); the spread of the trees' predictions is the uncertainty (SMAC's choice).
- ``"ensemble"``: several gradient-boosted tree models (or small MLPs) fitted on random
  subsamples with their own seeds; the spread of the members is the uncertainty (BANANAS).
- ``"gp"``: a Gaussian process with a Matérn kernel and a learned noise level; the posterior
  standard deviation is the uncertainty.

Targets are standardized before fitting and predictions mapped back, so the scale of the
metric does not matter.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from torchnas._util.errors import ConfigError

__all__ = ["ACQUISITIONS", "KINDS", "Surrogate", "acquire", "expected_improvement"]

KINDS = ("forest", "ensemble", "gp")
"""The surrogate kinds :class:`Surrogate` knows."""

ACQUISITIONS = ("ei", "ucb", "its", "mean")
"""Acquisition functions :func:`acquire` knows (larger is better for each)."""


def _sklearn() -> Any:
    try:
        import sklearn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("surrogate models need scikit-learn: pip install scikit-learn") from exc
    return sklearn


@dataclass
class Surrogate:
    """A regressor that predicts a mean and a standard deviation.

    Args:
        kind: ``"forest"``, ``"ensemble"`` or ``"gp"`` (see the module docstring).
        members: trees of a forest, or models of an ensemble (ignored by ``"gp"``).
        model: the ensemble's members: ``"gbr"`` (gradient-boosted trees) or ``"mlp"``; the
            forest's trees: ``"extra"`` (extremely randomized) or ``"rf"`` (bootstrapped).
        seed: seeds every random choice of the fit.
        min_samples_leaf: the smallest leaf of a forest's trees.
        max_features: the fraction of features a forest's split considers.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0], [0.25], [0.5], [1.0]])
        >>> s = Surrogate("forest", seed=0).fit(x, np.array([0.0, 1.0, 2.0, 4.0]))
        >>> mean, std = s.predict(np.array([[0.5], [0.75]]))
        >>> mean.shape, bool(std[1] > 0)
        ((2,), True)
    """

    kind: str = "forest"
    members: int = 32
    model: str | None = None
    seed: int = 0
    min_samples_leaf: int = 1
    max_features: float = 1.0
    _models: list[Any] = field(default_factory=list, init=False, repr=False)
    _scale: tuple[float, float] = field(default=(0.0, 1.0), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"surrogate kind must be one of {KINDS}, got {self.kind!r}")
        allowed = {"forest": ("extra", "rf"), "ensemble": ("gbr", "mlp"), "gp": ("matern",)}
        if self.model is None:
            self.model = allowed[self.kind][0]
        if self.model not in allowed[self.kind]:
            raise ConfigError(f"surrogate {self.kind!r}: model must be one of "
                              f"{allowed[self.kind]}, got {self.model!r}")
        if not isinstance(self.members, int) or self.members < 1:
            raise ConfigError(f"surrogate: members must be an integer >= 1, got "
                              f"{self.members!r}")

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has been called."""
        return bool(self._models)

    def fit(self, x: np.ndarray, y: np.ndarray) -> Surrogate:
        """Fits on the rows of ``x`` (``n x width``) and their targets ``y`` (``n``)."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.ndim != 2 or y.shape != (len(x),) or len(x) < 2:
            raise ValueError(f"surrogate: need an (n, width) matrix and n targets, n >= 2; got "
                             f"{x.shape} and {y.shape}")
        if not np.isfinite(y).all():
            raise ValueError("surrogate: targets must be finite")
        sd = float(y.std())
        self._scale = (float(y.mean()), sd if sd > 0 else 1.0)
        z = (y - self._scale[0]) / self._scale[1]
        sklearn = _sklearn()
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            self._models = self._fit(x, z)
        return self

    def _fit(self, x: np.ndarray, z: np.ndarray) -> list[Any]:
        seed = self.seed % 2**32
        if self.kind == "forest":  # trees fitted one by one: a forest's joblib costs more here
            from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor

            rng = np.random.default_rng(seed)
            x32 = np.ascontiguousarray(x, dtype=np.float32)
            trees = []
            for _ in range(self.members):
                cls = ExtraTreeRegressor if self.model == "extra" else DecisionTreeRegressor
                tree = cls(min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
                           random_state=int(rng.integers(2**31)))
                if self.model == "rf":  # bootstrapped rows
                    rows = rng.integers(0, len(x), len(x))
                    trees.append(tree.fit(x32[rows], z[rows], check_input=False))
                else:
                    trees.append(tree.fit(x32, z, check_input=False))
            return trees
        if self.kind == "gp":
            from sklearn.exceptions import ConvergenceWarning
            from sklearn.gaussian_process import GaussianProcessRegressor
            from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

            scale = math.sqrt(max(1.0, x.shape[1] / 4))  # about the distance of two archs
            kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(scale, (1e-2, 1e3), nu=2.5)
                      + WhiteKernel(0.1, (1e-6, 1.0)))
            gp = GaussianProcessRegressor(kernel, normalize_y=False, random_state=seed)
            with warnings.catch_warnings():  # a bound reached is no news to the user
                warnings.simplefilter("ignore", ConvergenceWarning)
                return [gp.fit(x, z)]
        rng = np.random.default_rng(seed)
        out = []
        for k in range(self.members):
            member_seed = int(rng.integers(2**31))
            if self.model == "mlp":
                from sklearn.neural_network import MLPRegressor

                m = MLPRegressor(hidden_layer_sizes=(32, 32), learning_rate_init=0.01,
                                 max_iter=200, random_state=member_seed)
                rows = rng.choice(len(x), len(x)) if k else np.arange(len(x))  # bootstrap
                out.append(m.fit(x[rows], z[rows]))
            else:
                from sklearn.ensemble import GradientBoostingRegressor

                m = GradientBoostingRegressor(n_estimators=15, max_depth=3, learning_rate=0.3,
                                              subsample=0.7, random_state=member_seed)
                out.append(m.fit(x, z))
        return out

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The predicted mean and standard deviation of each row of ``x``."""
        if not self._models:
            raise RuntimeError("surrogate: call fit() before predict()")
        x = np.asarray(x, dtype=float)
        if x.ndim != 2:
            raise ValueError(f"surrogate: need an (n, width) matrix, got shape {x.shape}")
        sklearn = _sklearn()
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self.kind == "gp":
                mean, std = self._models[0].predict(x, return_std=True)
            elif self.kind == "forest":
                x32 = np.ascontiguousarray(x, dtype=np.float32)
                preds = np.stack([t.predict(x32, check_input=False) for t in self._models])
                mean, std = preds.mean(0), preds.std(0)
            else:
                preds = np.stack([m.predict(x) for m in self._models])
                mean, std = preds.mean(0), preds.std(0)
        mu, sd = self._scale
        return mean * sd + mu, np.asarray(std) * sd


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float,
                         xi: float = 0.0) -> np.ndarray:
    """Expected improvement over ``best`` (maximization), ``xi`` the margin asked for."""
    std = np.maximum(std, 1e-12)
    gap = mean - best - xi
    z = gap / std
    cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return gap * cdf + std * pdf


_erf = np.vectorize(math.erf, otypes=[float])


def acquire(kind: str, mean: np.ndarray, std: np.ndarray, best: float,
            rng: np.random.Generator, kappa: float = 1.0, xi: float = 0.0) -> np.ndarray:
    """Scores of candidates under an acquisition function, larger is better.

    Args:
        kind: ``"ei"`` (expected improvement over ``best``), ``"ucb"`` (``mean + kappa *
            std``), ``"its"`` (independent Thompson sampling: one normal draw per candidate)
            or ``"mean"`` (pure exploitation).
        mean, std: the surrogate's predictions (larger is better).
        best: the best value observed.
        rng: the stream of ``"its"``.
        kappa, xi: the weight of ``std`` in ``"ucb"``, the margin of ``"ei"``.
    """
    if kind == "ei":
        return expected_improvement(mean, std, best, xi)
    if kind == "ucb":
        return mean + kappa * std
    if kind == "its":
        return rng.normal(mean, std)
    if kind == "mean":
        return mean
    raise ConfigError(f"acquisition must be one of {ACQUISITIONS}, got {kind!r}")
