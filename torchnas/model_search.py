"""The import path ``torchnas.model_search`` of earlier releases: :class:`ModelSearch` lives in
:mod:`torchnas.search`."""

from torchnas.search import ModelSearch

__all__ = ["ModelSearch"]
