"""One plug-in pattern: a new strategy, scheduler, executor or one-shot method is one new file
plus one import line, and nothing under ``torchnas/`` changes.

Each test writes a toy plug-in of one kind into its own module (the one new file), imports it
(the one import line), uses it by name as a user would, and counts the files touched: the figure
of issue 13 ("files touched to add a strategy, a scheduler, an executor, a one-shot method").
The fixture unregisters the toy afterwards (``Registry.remove``).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import signals
from torch import nn

import torchnas as tn
from torchnas._util.registry import Registry

PACKAGE = Path(tn.__file__).parent

STRATEGY = '''
    """A toy strategy: trial n takes the n-th point of each decision's grid."""

    import torchnas as tn


    @tn.strategies.register("toy")
    class GridWalk(tn.strategies.Strategy):
        def __init__(self, points: int = 5) -> None:
            self.points = points

        def check(self) -> None:
            if not isinstance(self.points, int) or self.points < 2:
                raise tn.ConfigError(f"strategy 'toy': points must be an integer >= 2, "
                                     f"got {self.points!r}")

        def suggest(self, ctx, label, domain):
            grid = domain.grid(self.points)
            return grid[ctx.number % len(grid)]
'''

SCHEDULER = '''
    """A toy scheduler: stops a trial whose last report is below a threshold."""

    import torchnas as tn


    @tn.schedulers.register("toy")
    class Threshold(tn.schedulers.Scheduler):
        def __init__(self, *, threshold: float = 0.5) -> None:
            self.threshold = threshold

        def check(self) -> None:
            if not 0 <= self.threshold <= 1:
                raise tn.ConfigError(f"scheduler 'toy': threshold must be in [0, 1], "
                                     f"got {self.threshold!r}")

        def should_prune(self, trial, trials):
            _, metrics = trial.intermediate[-1]
            return metrics[self.metric] < self.threshold
'''

EXECUTOR = '''
    """A toy executor: one trial at a time in this process, through the study's ask and tell."""

    import torchnas as tn


    @tn.execution.register("toy")
    class OneByOne(tn.execution.Executor):
        def __init__(self, workers: int = 1) -> None:
            self.workers = workers

        def check(self) -> None:
            if self.workers != 1:
                raise tn.ConfigError(f"executor 'toy' runs one trial at a time, "
                                     f"got workers={self.workers!r}")

        def run(self, study, objective, plan):
            tally = tn.execution.Tally(study, plan)
            while tally.may_start(0):
                trial = study.ask()
                tally.finished(study.tell(trial, objective(trial.hp)))
'''

ONESHOT = '''
    """A toy one-shot method: no training, one random path through the supernet."""

    from dataclasses import dataclass

    import torchnas as tn


    @tn.oneshot.register("toy")
    @dataclass(kw_only=True, repr=False)
    class RandomPath(tn.oneshot.OneShot):
        draws: int = 1

        def check(self) -> None:
            super().check()
            if self.draws < 1:
                raise ValueError(f"toy: draws must be >= 1, got {self.draws!r}")

        def fit(self, run):
            for _ in range(self.draws):
                path = run.net.random_path(run.rng, self.exclude_zero)
            return path
'''

KINDS: dict[str, tuple[Registry[Any], str]] = {
    "strategy": (tn.strategies.REGISTRY, STRATEGY),
    "scheduler": (tn.schedulers.REGISTRY, SCHEDULER),
    "executor": (tn.execution.REGISTRY, EXECUTOR),
    "oneshot": (tn.oneshot.REGISTRY, ONESHOT),
}


def snapshot() -> dict[str, str]:
    """A hash of every file of the torchnas package (caches aside)."""
    return {str(p.relative_to(PACKAGE)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(PACKAGE.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


class Plugins:
    """Adds toy plug-ins, each as one new module, and counts the files that took."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.before = snapshot()
        self.added: list[tuple[Registry[Any], str]] = []

    def add(self, kind: str) -> None:
        registry, source = KINDS[kind]
        module = f"toy_{kind}_plugin"
        (self.folder / f"{module}.py").write_text(textwrap.dedent(source))  # the one new file
        importlib.import_module(module)  # the one import line
        self.added.append((registry, module))

    def touched(self) -> dict[str, int]:
        """New files, and files of torchnas added, removed or changed."""
        after = snapshot()
        changed = {k for k in {*self.before, *after} if self.before.get(k) != after.get(k)}
        return {"new files": len(list(self.folder.glob("*.py"))), "torchnas files": len(changed)}


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plugins]:
    monkeypatch.syspath_prepend(str(tmp_path))
    found = Plugins(tmp_path)
    yield found
    for registry, module in found.added:
        registry.remove("toy")
        sys.modules.pop(module, None)
        assert "toy" not in registry.available()


ONE_FILE = {"new files": 1, "torchnas files": 0}


def test_a_strategy_is_one_file(plugins: Plugins) -> None:
    plugins.add("strategy")
    assert "toy" in tn.strategies.available()
    study = tn.Study(objectives={"y": "max"}, strategy={"name": "toy", "points": 3})
    study.optimize(lambda hp: hp.float("x", 0.0, 1.0), trials=3)
    assert [t.arch["x"] for t in study.trials] == [0.0, 0.5, 1.0]
    strategy = tn.strategies.create("toy", points=4)
    assert strategy.name == "toy" and repr(strategy) == "GridWalk(points=4)"
    assert strategy.get_params() == {"points": 4}
    with pytest.raises(tn.ConfigError, match="points must be an integer >= 2"):
        tn.Study(objectives={"y": "max"}, strategy={"name": "toy", "points": 1})
    with pytest.raises(tn.ConfigError, match="unknown setting 'pionts'; did you mean 'points'"):
        tn.strategies.create("toy", pionts=3)
    assert plugins.touched() == ONE_FILE


def test_a_scheduler_is_one_file(plugins: Plugins) -> None:
    plugins.add("scheduler")
    assert "toy" in tn.schedulers.available()

    def objective(hp: tn.HP) -> float:
        x = hp.float("x", 0.0, 1.0)
        assert hp.trial is not None
        hp.trial.report(1, {"acc": x})
        return x

    study = tn.Study(objectives={"acc": "max"}, strategy="random",
                     scheduler={"name": "toy", "threshold": 0.5})
    study.optimize(objective, trials=12)
    states = {(t.arch["x"] < 0.5, t.state) for t in study.trials}
    assert states == {(True, tn.TrialState.PRUNED), (False, tn.TrialState.COMPLETE)}
    assert repr(tn.schedulers.create("toy", threshold=0.2)) == "Threshold(threshold=0.2)"
    with pytest.raises(tn.ConfigError, match=r"threshold must be in \[0, 1\], got 2"):
        tn.Study(objectives={"acc": "max"}, scheduler={"name": "toy", "threshold": 2})
    assert plugins.touched() == ONE_FILE


def test_an_executor_is_one_file(plugins: Plugins) -> None:
    plugins.add("executor")
    assert "toy" in tn.execution.available()
    study = tn.Study(objectives={"y": "max"}, strategy="random")
    study.optimize(lambda hp: hp.float("x", 0.0, 1.0), trials=3, executor="toy")
    assert [t.state for t in study.trials] == [tn.TrialState.COMPLETE] * 3
    assert repr(tn.execution.create("toy")) == "OneByOne()"
    with pytest.raises(tn.ConfigError, match="executor 'toy' runs one trial at a time"):
        study.optimize(lambda hp: 0.0, trials=1, workers=2, executor="toy")
    assert len(study.trials) == 3
    assert plugins.touched() == ONE_FILE


def conv_or_skip(hp: tn.HP) -> nn.Module:
    op = hp.op("op", {"skip": nn.Identity, "conv": lambda: nn.Conv1d(1, 1, 3, padding=1)})
    return nn.Sequential(op, nn.Flatten(), nn.Linear(16, 2))


def test_a_one_shot_method_is_one_file(plugins: Plugins) -> None:
    plugins.add("oneshot")
    assert "toy" in tn.oneshot.available() and tn.oneshot.is_method("toy")
    search = tn.ModelSearch(space=conv_or_skip, data=signals(256), progress=False,
                            strategy={"name": "toy", "epochs": 1, "draws": 2},
                            trainer=tn.Trainer(epochs=1))
    [trial] = search.run().trials
    assert trial.state is tn.TrialState.COMPLETE and trial.arch["op"] in ("skip", "conv")
    assert search.oneshot_result.method == "toy"
    assert repr(tn.oneshot.create("toy", draws=3)) == "RandomPath(draws=3)"
    with pytest.raises(tn.ConfigError, match="one-shot method 'toy': toy: draws must be >= 1"):
        tn.oneshot.create("toy", draws=0)
    with pytest.raises(tn.ConfigError, match="epochs must be an integer >= 1"):
        tn.oneshot.create("toy", epochs=0)  # the settings every method shares
    assert plugins.touched() == ONE_FILE


def test_every_kind_lists_and_creates_by_name() -> None:
    """The same three calls for every kind (spaces and datasets too)."""
    kinds: dict[str, Any] = {"strategies": tn.strategies, "schedulers": tn.schedulers,
                             "execution": tn.execution, "oneshot": tn.oneshot,
                             "spaces": tn.spaces, "data": tn.data}
    for kind, module in kinds.items():
        names = module.available()
        assert names and names == sorted(names), kind
    assert tn.spaces.list() == tn.spaces.available()
    for name in tn.schedulers.available():
        scheduler = tn.schedulers.create(name)
        assert tn.schedulers.resolve(tn.schedulers.resolve(name)[1])[0].get_params() == (
            scheduler.get_params())
    for name in tn.oneshot.available():
        method = tn.oneshot.create(name)
        assert type(tn.oneshot.resolve(tn.oneshot.resolve(method)[1])[0]) is type(method)
    assert repr(tn.execution.create("process", workers=2)) == "ProcessExecutor(workers=2)"
    assert repr(tn.oneshot.create("darts", epochs=3)) == "DARTS(epochs=3)"
    assert repr(tn.strategies.create("grid")) == "GridStrategy()"
    assert repr(tn.Trainer(lr=0.1)) == "Trainer(lr=0.1)"


def test_a_subclass_passing_kwargs_on_keeps_its_bases_settings() -> None:
    class Counting(tn.Trainer):
        def __init__(self, tag: str = "x", **kw: Any) -> None:
            super().__init__(**kw)
            self.tag = tag

    trainer = Counting(tag="y", epochs=2)
    params = trainer.get_params()
    assert params["tag"] == "y" and params["epochs"] == 2 and "lr" in params
    assert repr(trainer) == "Counting(tag='y', epochs=2)"
    trainer.check()
