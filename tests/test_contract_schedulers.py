"""The scheduler contract (``torchnas.testing.schedulers``) over every registered scheduler."""

from __future__ import annotations

import pytest

from torchnas.testing.schedulers import MakeScheduler, SchedulerContract, by_name, registered


class TestRegisteredSchedulers(SchedulerContract):
    @pytest.fixture(params=registered())
    def make(self, request: pytest.FixtureRequest) -> MakeScheduler:
        return by_name(request.param)
