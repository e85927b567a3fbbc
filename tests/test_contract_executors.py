"""The executor contract (``torchnas.testing.executors``) over every registered executor: two
workers where an executor runs several; Ray's cases (marked slow) share one local Ray and run
one trial at a time (its pool is the process executor's; a second worker only adds the start of
Ray worker processes, seconds each)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from torchnas.testing.executors import ExecutorContract, MakeExecutor, by_name, registered


@pytest.fixture(scope="class", params=registered())
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    """An executor's name; Ray is started once for all of its cases (and stopped after)."""
    if request.param != "ray":
        yield request.param
        return
    import ray

    from torchnas.execution._ray import start_local_ray

    start_local_ray(num_cpus=2)
    try:
        yield request.param
    finally:
        ray.shutdown()


class TestRegisteredExecutors(ExecutorContract):
    @pytest.fixture
    def make(self, name: str) -> MakeExecutor:
        return by_name(name, workers=1 if name == "ray" else 2)
