"""The one-shot contract (``torchnas.testing.oneshot``) over every registered method."""

from __future__ import annotations

import pytest

from torchnas.testing.oneshot import MakeOneShot, OneShotContract, by_name, registered


class TestRegisteredOneShotMethods(OneShotContract):
    @pytest.fixture(params=registered())
    def make(self, request: pytest.FixtureRequest) -> MakeOneShot:
        return by_name(request.param)
