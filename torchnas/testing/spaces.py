"""The contract every built-in space keeps (timm's ``test_models.py``, for spaces).

Subclass :class:`SpaceContract` in a test module and give it a ``make`` fixture returning a
function ``make(input_shape=..., num_classes=...)`` that builds the space function; each check
runs for 1-D signals ``(C, L)``, flat vectors ``(L,)`` and images ``(C, H, W)`` (the fixture
``input_shape``) and for two and ten classes (``num_classes``); a subclass may narrow either.
:func:`registered` lists ``tn.spaces.available()`` to run it over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.space import HP, FixedSource

__all__ = ["CLASSES", "SHAPES", "MakeSpace", "SpaceContract", "by_name", "registered"]

MakeSpace = Callable[..., Callable[[HP], nn.Module]]
"""``make(input_shape=..., num_classes=...)``: a space function (the fixture ``make``)."""

SHAPES = [(1, 40), (40,), (1, 8, 8), (3, 16, 16)]
CLASSES = [2, 10]
SAMPLES = 10


def registered() -> list[str]:
    """The names of ``tn.spaces.available()``."""
    return tn.spaces.available()


def by_name(name: str) -> MakeSpace:
    """A ``make`` for the built-in space ``name``."""
    return lambda **kw: tn.spaces.create(name, **kw)


def sampled(space: Callable[[HP], nn.Module], n: int = SAMPLES, seed: int = 0,
            ) -> list[tuple[dict[str, Any], nn.Module]]:
    """``n`` architectures drawn by the random strategy of a real study, with their models."""
    study = tn.Study(strategy="random", seed=seed, objectives={"val_accuracy": "max"})
    out = []
    for _ in range(n):
        trial = study.ask()
        model = space(trial.hp)
        out.append((trial.arch, model))
        study.tell(trial, 0.5)
    assert [t.arch for t in study.trials] == [a for a, _ in out]
    return out


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def registered_name(space: Any) -> str | None:
    """The name ``space`` is registered under (``None``: not a built-in space)."""
    name = getattr(type(space), "name", None)
    if isinstance(name, str) and name in tn.spaces.available() and (
            type(tn.spaces.create(name, input_shape=(1, 40), num_classes=2)) is type(space)):
        return name
    return None


class SpaceContract:
    """What every built-in space promises.

    A subclass provides the fixture ``make`` (see the module). The checks: ``explore`` finds a
    finite structure, whose default architecture builds and ``hp.scale`` (a width multiplier)
    narrows without changing the architecture; sampled architectures are plain JSON dicts whose
    models classify (train and eval mode, right output shape) and rebuild identically from the
    architecture; a saved model loads with identical outputs; bad shapes and class counts are
    :class:`~torchnas.SpaceError`.
    """

    @pytest.fixture
    def make(self) -> MakeSpace:
        raise NotImplementedError("give the contract a `make` fixture: (input_shape=..., "
                                  "num_classes=...) -> space function")

    @pytest.fixture(params=SHAPES, ids=lambda s: "x".join(map(str, s)))
    def input_shape(self, request: pytest.FixtureRequest) -> tuple[int, ...]:
        shape: tuple[int, ...] = request.param
        return shape

    @pytest.fixture(params=CLASSES, ids=lambda k: f"{k}cls")
    def num_classes(self, request: pytest.FixtureRequest) -> int:
        classes: int = request.param
        return classes

    def test_explore_finds_a_finite_structure_whose_default_builds_and_narrows(
            self, make: MakeSpace, input_shape: tuple[int, ...], num_classes: int) -> None:
        space = make(input_shape=input_shape, num_classes=num_classes)
        info = tn.explore(space, seed=0)
        assert info.labels and info.runs > 0 and not info.errors
        assert info.discrete_size is not None and info.discrete_size > 1
        summary = info.summary()
        for label in info.labels:
            assert label in summary
        assert "Size:" in summary
        # every label at its default builds; hp.scale (a width multiplier) narrows that model
        arch = {label: i.domain.default for label, i in info.labels.items()}
        full, narrow = HP(FixedSource(arch)), HP(FixedSource(arch))
        narrow.width = 0.5
        wide_model, narrow_model = space(full), space(narrow)
        assert full.arch == narrow.arch and full.arch.items() <= arch.items()
        assert params(narrow_model) < 0.6 * params(wide_model), "hp.scale changed nothing"
        x = torch.randn(2, *input_shape)
        with torch.no_grad():
            assert wide_model.eval()(x).shape == narrow_model.eval()(x).shape == (2, num_classes)

    def test_sampled_models_classify_and_rebuild(self, make: MakeSpace,
                                                 input_shape: tuple[int, ...],
                                                 num_classes: int) -> None:
        space = make(input_shape=input_shape, num_classes=num_classes)
        labels = set(tn.explore(space).labels)
        archs = sampled(space)
        assert len({tn.arch_key(a) for a, _ in archs}) > 1, "the strategy drew one architecture"
        x = torch.randn(3, *input_shape)
        for arch, model in archs:
            assert set(arch) <= labels
            assert json.loads(json.dumps(arch)) == arch  # a plain JSON dict
            model.train()
            assert model(x).shape == (3, num_classes)
            model.eval()
            with torch.no_grad():
                out = model(x[:1])
            assert out.shape == (1, num_classes) and torch.isfinite(out).all()
            again = tn.build(space, arch)
            assert {k: v.shape for k, v in again.state_dict().items()} == {
                k: v.shape for k, v in model.state_dict().items()
            }
            assert type(again) is type(model)
            assert [type(m) for m in again.modules()] == [type(m) for m in model.modules()]

    def test_models_export_and_load_with_identical_outputs(
            self, make: MakeSpace, input_shape: tuple[int, ...], num_classes: int,
            tmp_path: Path) -> None:
        space = make(input_shape=input_shape, num_classes=num_classes)
        name = registered_name(space)
        if name is None:
            pytest.skip("tn.load_model rebuilds registered spaces only")
        x = torch.randn(4, *input_shape)
        for i, (arch, model) in enumerate(sampled(space, seed=1)):
            with torch.no_grad():
                model.train()(x)  # moves batch-norm running statistics off their initial values
            model.eval()
            path = tn.save_model(tmp_path / f"m{i}.pt", model, arch, space=name,
                                 space_kwargs={"input_shape": list(input_shape),
                                               "num_classes": num_classes})
            loaded = tn.load_model(path)
            assert not loaded.training
            with torch.no_grad():
                assert torch.equal(loaded(x), model(x))

    def test_bad_shapes_are_space_errors(self, make: MakeSpace) -> None:
        with pytest.raises(tn.SpaceError, match="num_classes"):
            tn.explore(make(input_shape=(1, 40), num_classes=1))
        with pytest.raises(tn.SpaceError, match="input_shape"):
            tn.explore(make(input_shape=(), num_classes=10))
        with pytest.raises(tn.SpaceError, match="input_shape"):
            tn.explore(make(input_shape=(1, 0), num_classes=10))
