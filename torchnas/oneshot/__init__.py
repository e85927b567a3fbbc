"""Weight-sharing one-shot search on the same space functions: DARTS, PC-DARTS, GDAS, SPOS, ENAS.

The space function multi-trial search runs is built once as a supernet (:class:`Supernet`,
through :class:`SupernetHP`): ``hp.op`` becomes a mixed op over all candidates and
``hp.inputs`` a weighted mix of the candidate inputs (or a sampled path, for single-path
methods). A method (:func:`create`, or ``tn.ModelSearch(strategy="darts")``) trains it and
derives an architecture: the same JSON dict as any trial's, that ``tn.build`` turns into a
standalone model.
"""

from torchnas.oneshot._base import OneShot, OneShotResult, SearchRun
from torchnas.oneshot._batchnorm import batch_stats, recalibrate_bn
from torchnas.oneshot._checkpoint import Cycle
from torchnas.oneshot._collapse import CollapseReport, collapse_counts
from torchnas.oneshot._darts import DARTS, PCDARTS
from torchnas.oneshot._enas import ENAS, Controller
from torchnas.oneshot._gdas import GDAS
from torchnas.oneshot._mixed import ArchState, MixedInput, MixedOp
from torchnas.oneshot._penalty import CostModel, CostTerm, parse_costs, training_memory
from torchnas.oneshot._registry import REGISTRY, available, create, is_method, register, resolve
from torchnas.oneshot._search import checkpoint_path, record_path, run_search
from torchnas.oneshot._spos import SPOS
from torchnas.oneshot._supernet import Supernet, SupernetHP, check_arch

__all__ = [
    "DARTS",
    "REGISTRY",
    "ENAS",
    "GDAS",
    "PCDARTS",
    "SPOS",
    "ArchState",
    "CollapseReport",
    "Controller",
    "Cycle",
    "CostModel",
    "CostTerm",
    "MixedInput",
    "MixedOp",
    "OneShot",
    "OneShotResult",
    "SearchRun",
    "Supernet",
    "SupernetHP",
    "available",
    "batch_stats",
    "check_arch",
    "checkpoint_path",
    "collapse_counts",
    "create",
    "is_method",
    "parse_costs",
    "recalibrate_bn",
    "record_path",
    "register",
    "resolve",
    "run_search",
    "training_memory",
]
