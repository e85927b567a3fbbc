"""torchnas: neural architecture search for PyTorch."""

from torchnas import space, storage, strategies
from torchnas._errors import ConfigError, DataError, SpaceError, TorchnasError, TrialPruned
from torchnas._trial import FrozenTrial, TrialState
from torchnas.space import HP, arch_key, build, explore
from torchnas.study import Study, Trial, load_study

__version__ = "0.1.0"

__all__ = [
    "HP",
    "ConfigError",
    "DataError",
    "FrozenTrial",
    "SpaceError",
    "Study",
    "TorchnasError",
    "Trial",
    "TrialPruned",
    "TrialState",
    "__version__",
    "arch_key",
    "build",
    "explore",
    "load_study",
    "space",
    "storage",
    "strategies",
]
