"""Search strategies behind one small ask/suggest/tell interface, and their registry."""

from torchnas.strategies._bananas import BananasStrategy
from torchnas.strategies._base import AskContext, Strategy, derive_seed
from torchnas.strategies._dqn import DQNStrategy
from torchnas.strategies._evolution import EvolutionStrategy
from torchnas.strategies._grid import GridStrategy
from torchnas.strategies._local import LocalSearchStrategy
from torchnas.strategies._motpe import MOTPEStrategy
from torchnas.strategies._nsga2 import NSGA2Strategy
from torchnas.strategies._optuna import OptunaStrategy
from torchnas.strategies._random import RandomStrategy
from torchnas.strategies._registry import (
    AUTO,
    AUTO_MULTI,
    REGISTRY,
    add_resolver,
    auto_name,
    available,
    create,
    register,
    resolve,
)
from torchnas.strategies._reinforce import ReinforceStrategy
from torchnas.strategies._smac import SMACStrategy
from torchnas.strategies._tpe import BOHBStrategy, TPEStrategy

__all__ = [
    "AUTO",
    "AUTO_MULTI",
    "REGISTRY",
    "AskContext",
    "BOHBStrategy",
    "BananasStrategy",
    "DQNStrategy",
    "EvolutionStrategy",
    "GridStrategy",
    "LocalSearchStrategy",
    "MOTPEStrategy",
    "NSGA2Strategy",
    "OptunaStrategy",
    "RandomStrategy",
    "ReinforceStrategy",
    "SMACStrategy",
    "Strategy",
    "TPEStrategy",
    "add_resolver",
    "auto_name",
    "available",
    "create",
    "derive_seed",
    "register",
    "resolve",
]
