"""A third party's strategy under the strategy contract, exactly as ``torchnas.testing``'s
docstring shows; and the contract failing a strategy that breaks it."""

from __future__ import annotations

from typing import Any

import pytest

from torchnas.space import Domain
from torchnas.strategies import AskContext, Strategy
from torchnas.testing import StrategyContract

pytest_plugins = ["pytester"]


class Coin(Strategy):
    """Each decision drawn from its domain by the trial's own random stream."""

    def suggest(self, ctx: AskContext, label: str, domain: Domain) -> Any:
        return domain.sample(ctx.rng(label))


class TestCoin(StrategyContract):
    @pytest.fixture
    def make(self) -> type[Coin]:
        return Coin


BROKEN = '''
import random

import pytest

from torchnas.strategies import Strategy
from torchnas.testing import StrategyContract


class Unseeded(Strategy):
    """Draws from a stream of its own: neither the seed nor a resume reproduces it."""

    def __init__(self):
        self.rng = random.Random()

    def suggest(self, ctx, label, domain):
        return domain.sample(self.rng)


class TestUnseeded(StrategyContract):
    @pytest.fixture
    def make(self):
        return Unseeded
'''


def test_the_contract_fails_a_strategy_that_ignores_the_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unseeded=BROKEN)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-k",
                                          "same_seed or resumed or domains")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*FAILED*test_same_seed_same_architectures*",
                                 "*FAILED*test_resumed_study_proposes*"])
