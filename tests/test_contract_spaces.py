"""The space contract (``torchnas.testing.spaces``) over every built-in space."""

from __future__ import annotations

import pytest

from torchnas.testing.spaces import MakeSpace, SpaceContract, by_name, registered


class TestBuiltinSpaces(SpaceContract):
    @pytest.fixture(params=registered())
    def make(self, request: pytest.FixtureRequest) -> MakeSpace:
        return by_name(request.param)
