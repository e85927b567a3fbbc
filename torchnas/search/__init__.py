"""The NAS path for PyTorch models: :class:`ModelSearch` (the facade most users call) and its
parts: :class:`ModelObjective` (what one trial runs; workers and one-shot methods receive it),
:class:`SearchResults` (kept models, retrain, export), the settings objects
:class:`CostSettings`, :class:`WarmStart` and :class:`Fidelity`, the checks before the first
trial and the settings a resumed study must share; :class:`TrialView` is the ``trial`` a
``train_fn`` (your own training loop) receives.
"""

from torchnas.search._export import FORMATS, load_model, read_export, save_model
from torchnas.search._model_search import ModelSearch, Rejected
from torchnas.search._objective import ModelObjective
from torchnas.search._options import CostSettings, Fidelity, WarmStart
from torchnas.search._results import SearchResults
from torchnas.search._train_fn import TrainFn, TrialView

__all__ = ["FORMATS", "CostSettings", "Fidelity", "ModelObjective", "ModelSearch", "Rejected",
           "SearchResults", "TrainFn", "TrialView", "WarmStart", "load_model", "read_export",
           "save_model"]
