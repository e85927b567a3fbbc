"""The strategy contract (``torchnas.testing.strategies``) over every registered strategy."""

from __future__ import annotations

import pytest

from torchnas.testing.strategies import MakeStrategy, StrategyContract, by_name, registered


class TestRegisteredStrategies(StrategyContract):
    @pytest.fixture(params=registered())
    def make(self, request: pytest.FixtureRequest) -> MakeStrategy:
        return by_name(request.param)
