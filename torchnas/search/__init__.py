"""The NAS path for PyTorch models: :class:`ModelSearch` (the facade most users call), what it
measures on built models, its checks before the first trial, its results (kept models,
retrain, export) and the settings a resumed study must share.
"""

from torchnas.search._export import FORMATS, load_model, read_export, save_model
from torchnas.search._model_search import ModelSearch, Rejected

__all__ = ["FORMATS", "ModelSearch", "Rejected", "load_model", "read_export", "save_model"]
