"""Built-in search spaces (``tn.spaces``): ``create(name, **kw)``, ``available()`` (or
``list()``), ``register``.

Each space is a class whose instances are space functions ``space(hp) -> nn.Module``; they adapt
to the data's ``input_shape`` and ``num_classes`` (``num_outputs``: one output per float target,
for regression).
"""

from torchnas.space.builtin._registry import REGISTRY, available, create, get, list, register
from torchnas.space.builtin.cell import CellSpace
from torchnas.space.builtin.chain_cnn import ChainCNNSpace
from torchnas.space.builtin.mlp import MLPSpace
from torchnas.space.builtin.mobile import MobileSpace
from torchnas.space.builtin.rnn import RNNSpace
from torchnas.space.builtin.rnn_cell import RNNCellSpace
from torchnas.space.builtin.transformer import TransformerSpace

__all__ = [
    "REGISTRY", "CellSpace", "ChainCNNSpace", "MLPSpace", "MobileSpace", "RNNCellSpace",
    "RNNSpace", "TransformerSpace", "available", "create", "get", "list", "register",
]
