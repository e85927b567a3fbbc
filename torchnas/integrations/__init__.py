"""Bridges to training libraries: a space may return a model that another library trains.

- :mod:`torchnas.integrations.lightning` (``pip install 'torchnas[lightning]'``): a space
  returns a ``LightningModule``; :func:`~torchnas.integrations.lightning.fit` trains it with a
  Lightning ``Trainer`` and :class:`~torchnas.integrations.lightning.TorchnasCallback` reports
  every validation to the trial and stops the pruned ones.
- :mod:`torchnas.integrations.hf` (``pip install 'torchnas[hf]'``):
  :class:`~torchnas.integrations.hf.TorchnasHFCallback` does the same for a
  ``transformers.Trainer``.
- :mod:`torchnas.integrations.optuna_storage` (``pip install 'torchnas[optuna-dashboard]'``):
  :class:`~torchnas.integrations.optuna_storage.OptunaStorage` presents a torchnas storage as a
  read-only Optuna storage, for ``optuna-dashboard`` and ``optuna.load_study``.

Each is imported by name (``from torchnas.integrations import lightning``), so torchnas itself
never needs these libraries.
"""

from __future__ import annotations

__all__: list[str] = []
