"""Architecture encodings and surrogate models, shared by the model-based strategies (``smac``,
``bananas``) and :class:`torchnas.evaluation.Predictor`.

:class:`Encoding` turns define-by-run architectures into vectors of one width;
:class:`Surrogate` predicts a mean and a standard deviation from them; :func:`acquire` scores
candidates by those predictions. Nothing here knows strategies, studies or models.
"""

from __future__ import annotations

from torchnas.surrogate._encoding import Encoding
from torchnas.surrogate._models import (
    ACQUISITIONS,
    KINDS,
    Surrogate,
    acquire,
    expected_improvement,
)

__all__ = ["ACQUISITIONS", "KINDS", "Encoding", "Surrogate", "acquire", "expected_improvement"]
