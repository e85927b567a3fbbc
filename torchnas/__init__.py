"""torchnas: neural architecture search for PyTorch.

Write a space once as ``build(hp)``; search it with any strategy; get back the best model.
"""

from torchnas import (
    callbacks,
    data,
    execution,
    metrics,
    oneshot,
    report,
    schedulers,
    space,
    storage,
    strategies,
    surrogate,
)
from torchnas._util.errors import (
    ConfigError,
    DataError,
    SpaceError,
    StorageError,
    TooManyFailures,
    TorchnasError,
    TrainFnError,
    TrialPruned,
)
from torchnas.evaluation import Trainer, summary
from torchnas.search import ModelSearch, load_model, save_model
from torchnas.space import HP, arch_key, build, explore
from torchnas.space import builtin as spaces
from torchnas.study import FrozenTrial, Study, Trial, TrialState, hypervolume, load_study

__version__ = "0.1.0"

__all__ = [
    "HP",
    "ConfigError",
    "DataError",
    "FrozenTrial",
    "ModelSearch",
    "SpaceError",
    "StorageError",
    "Study",
    "TorchnasError",
    "Trainer",
    "Trial",
    "TooManyFailures",
    "TrainFnError",
    "TrialPruned",
    "TrialState",
    "__version__",
    "arch_key",
    "build",
    "callbacks",
    "data",
    "execution",
    "explore",
    "hypervolume",
    "load_model",
    "load_study",
    "metrics",
    "oneshot",
    "report",
    "save_model",
    "schedulers",
    "space",
    "spaces",
    "storage",
    "strategies",
    "summary",
    "surrogate",
]
