"""Writing a found model to disk and reading it back (``tn.save_model``, ``tn.load_model``):
the public path of :mod:`torchnas.search._export`."""

from torchnas.search._export import (
    FORMAT,
    FORMATS,
    check_path,
    load_model,
    read_export,
    save_model,
)

__all__ = ["FORMAT", "FORMATS", "check_path", "load_model", "read_export", "save_model"]
