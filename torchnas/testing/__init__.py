"""Contract test suites for torchnas plug-ins (as ``optuna.testing.pytest_samplers``), for pytest.

One module per kind: :mod:`~torchnas.testing.strategies`, :mod:`~torchnas.testing.schedulers`,
:mod:`~torchnas.testing.storage`, :mod:`~torchnas.testing.executors`,
:mod:`~torchnas.testing.oneshot` and :mod:`~torchnas.testing.spaces`. Each offers a base class
of tests that a test module subclasses, giving it a fixture ``make`` that builds the plug-in
(``open_journal`` for storage), and ``registered()`` / ``by_name(name)`` to run it over the
kind's registry. Importing ``torchnas`` never imports this package (nor pytest).

Running the strategy suite on your own strategy (a file ``test_coin.py``)::

    import pytest
    from torchnas.strategies import Strategy
    from torchnas.testing import StrategyContract

    class Coin(Strategy):  # each decision drawn by the trial's own random stream
        def suggest(self, ctx, label, domain):
            return domain.sample(ctx.rng(label))

    class TestCoin(StrategyContract):
        @pytest.fixture
        def make(self):
            return Coin  # called with no arguments for each fresh strategy

``pytest test_coin.py`` then runs every check of :class:`StrategyContract` on ``Coin``.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(*(f"torchnas.testing.{kind}" for kind in (
    "executors", "oneshot", "schedulers", "spaces", "storage", "strategies")))

from torchnas.testing.executors import ExecutorContract  # noqa: E402
from torchnas.testing.oneshot import OneShotContract  # noqa: E402
from torchnas.testing.schedulers import SchedulerContract  # noqa: E402
from torchnas.testing.spaces import SpaceContract  # noqa: E402
from torchnas.testing.storage import JournalContract, PersistentJournalContract  # noqa: E402
from torchnas.testing.strategies import StrategyContract  # noqa: E402

__all__ = [
    "ExecutorContract",
    "JournalContract",
    "OneShotContract",
    "PersistentJournalContract",
    "SchedulerContract",
    "SpaceContract",
    "StrategyContract",
]
