"""Search strategies behind one small ask/suggest/tell interface, and their registry."""

from torchnas.strategies._base import AskContext, Strategy, derive_seed
from torchnas.strategies._grid import GridStrategy
from torchnas.strategies._random import RandomStrategy
from torchnas.strategies._registry import AUTO, available, create, register, resolve

__all__ = [
    "AUTO",
    "AskContext",
    "GridStrategy",
    "RandomStrategy",
    "Strategy",
    "available",
    "create",
    "derive_seed",
    "register",
    "resolve",
]
