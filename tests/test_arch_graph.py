"""A trial's network as a graph: captured when the trial runs (fx trace and shape propagation,
forward hooks as the fallback), stored beside the study as JSON, read back without running any
code, and drawn with matplotlib."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.evaluation._cost import params
from torchnas.evaluation._graph import model_graph
from torchnas.report._arch import arch_figsize, arch_graph, arch_layout, plot_arch
from torchnas.space import HP, FixedSource
from torchnas.space import builtin as spaces
from torchnas.storage._artifacts import ArtifactStore


def chain() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


class TwoBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joined = self.a(x) + self.b(x)
        return self.head(torch.cat([joined, self.a(x)], dim=1))  # ``a`` called twice


class DataDependent(nn.Module):
    """fx cannot trace a branch on the data's values."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(5, 7)
        self.second = nn.Linear(7, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        if h.sum() > 1e9:
            h = h * 2
        return self.second(torch.relu(h))


def incoming(graph: dict, node: int) -> list[int]:
    return [s for s, d in graph["edges"] if d == node]


def test_a_chain_gives_a_chain_with_shapes_and_parameters() -> None:
    model = chain()
    graph = model_graph(model, torch.zeros(1, 1, 8, 8))
    assert graph is not None and graph["method"] == "fx"
    kinds = [n["kind"] for n in graph["nodes"]]
    assert kinds == ["input", "Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear"]
    assert graph["edges"] == [[i, i + 1] for i in range(5)]
    assert graph["inputs"] == [0] and graph["outputs"] == [5]
    assert [n["shape"] for n in graph["nodes"]] == [
        [1, 1, 8, 8], [1, 4, 8, 8], [1, 4, 8, 8], [1, 4, 8, 8], [1, 256], [1, 10]]
    assert [n["params"] for n in graph["nodes"]] == [0, 40, 8, 0, 0, 2570]
    assert sum(n["params"] for n in graph["nodes"]) == params(model) == graph["total_params"]
    assert graph["nodes"][1]["label"] == "Conv2d 3x3, 1→4"
    assert graph["nodes"][5]["label"] == "Linear 256→10"
    json.dumps(graph)  # plain JSON


def test_branches_join_in_a_node_with_two_inputs() -> None:
    model = TwoBranches()
    graph = model_graph(model, torch.zeros(2, 6))
    assert graph is not None
    add = next(n for n in graph["nodes"] if n["kind"] == "add")
    cat = next(n for n in graph["nodes"] if n["kind"] == "cat")
    assert len(incoming(graph, add["id"])) == 2 and len(incoming(graph, cat["id"])) == 2
    assert cat["shape"] == [2, 16]
    # a module called twice is two nodes, its parameters counted once
    assert sum(n["name"] == "a" for n in graph["nodes"]) == 2
    assert sum(n["params"] for n in graph["nodes"]) == params(model)


def test_a_cell_shows_its_chosen_operations_and_the_sums() -> None:
    ops = ["conv_3x3", "skip", "avg_pool_3x3", "none", "conv_1x1", "skip"]
    edges = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    arch = {f"cell/edge_{j}_{i}": op for (j, i), op in zip(edges, ops, strict=True)}
    space = spaces.create("cell", input_shape=(1, 8, 8), num_classes=10, stages=1)
    model = space(HP(FixedSource(arch)))
    graph = model_graph(model, torch.zeros(1, 1, 8, 8))
    assert graph is not None and graph["method"] == "fx"
    labels = [n["label"] for n in graph["nodes"]]
    assert "Zero" in labels and "Identity" in labels and "AvgPool2d 3x3" in labels
    joins = [n for n in graph["nodes"] if n["kind"] == "add"]
    # node 2 sums two edges, node 3 three (``sum``'s ``0 +`` is not drawn)
    assert [len(incoming(graph, n["id"])) for n in joins] == [2, 2, 2]
    assert sum(n["params"] for n in graph["nodes"]) == params(model)


def test_an_untraceable_model_falls_back_to_a_chain_of_its_layers() -> None:
    model = DataDependent()
    graph = model_graph(model, torch.zeros(1, 5))
    assert graph is not None and graph["method"] == "hooks"
    assert "fx could not trace" in graph["note"]
    assert [(n["kind"], n["shape"]) for n in graph["nodes"]] == [
        ("input", [1, 5]), ("Linear", [1, 7]), ("Linear", [1, 2])]
    assert graph["edges"] == [[0, 1], [1, 2]] and graph["outputs"] == [2]
    assert sum(n["params"] for n in graph["nodes"]) == params(model)


def test_shapes_come_from_the_sample_where_the_meta_device_cannot_give_them(
        caplog: pytest.LogCaptureFixture) -> None:
    class ReadsAValue(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * x.max().item()  # a meta tensor holds no value

    with caplog.at_level(logging.DEBUG, logger="torchnas"):
        graph = model_graph(ReadsAValue(), torch.zeros(2, 3))
    assert "meta device failed" in caplog.text
    assert graph is not None and graph["method"] == "fx"
    assert [(n["kind"], n["shape"]) for n in graph["nodes"]] == [
        ("input", [2, 3]), ("Linear", [2, 4]), ("max", []), ("mul", [2, 4])]


def test_capture_leaves_the_model_and_the_random_streams_alone() -> None:
    model = chain().train()
    model[2].eval()  # a mixed mode is restored as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    example = torch.randn(1, 1, 8, 8)
    state = torch.random.get_rng_state()
    assert model_graph(model, example) is not None
    assert torch.equal(torch.random.get_rng_state(), state)
    assert [m.training for m in model.modules()] == [True, True, True, False, True, True]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch norm stats too


def test_a_failing_capture_returns_none(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no forward today")

    with caplog.at_level(logging.DEBUG, logger="torchnas"):
        assert model_graph(Broken(), torch.zeros(1, 3)) is None
    assert "not captured" in caplog.text


def test_a_large_graph_is_cut_with_a_note() -> None:
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(20)])
    graph = model_graph(model, torch.zeros(1, 4), max_nodes=8)
    assert graph is not None and len(graph["nodes"]) == 8
    assert all(s < 8 and d < 8 for s, d in graph["edges"])
    assert graph["note"] == "21 nodes: the first 8 are kept"


def test_token_inputs_are_traced() -> None:
    model = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(8 * 12, 4))
    graph = model_graph(model, torch.zeros(1, 12, dtype=torch.long))
    assert graph is not None
    assert [n["label"] for n in graph["nodes"]][1:] == ["Embedding 50x8", "Flatten",
                                                        "Linear 96→4"]
    assert graph["nodes"][1]["shape"] == [1, 12, 8]


def test_plot_arch_draws_a_box_per_node_and_an_arrow_per_edge() -> None:
    graph = model_graph(TwoBranches(), torch.zeros(1, 6))
    assert graph is not None
    ax = plot_arch(graph, title="two branches")
    boxes = [p for p in ax.patches if str(p.get_gid()).startswith("node-")]
    arrows = [p for p in ax.patches if str(p.get_gid()).startswith("edge-")]
    assert len(boxes) == len(graph["nodes"]) and len(arrows) == len(graph["edges"])
    assert type(ax.figure).__name__ == "Figure"  # a bare figure: no pyplot state
    assert tuple(ax.figure.get_size_inches()) == pytest.approx(arch_figsize(graph))
    texts = [t.get_text() for t in ax.texts]
    assert "Linear 6→8" in texts and any("params" in t for t in texts)
    ax.figure.canvas.draw()  # renders with Agg
    # rows: the input first, every edge goes down
    pos = arch_layout(graph)
    assert pos[graph["inputs"][0]][0] == 0
    assert all(pos[s][0] < pos[d][0] for s, d in graph["edges"])


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tn.Study]:
    db = tmp_path_factory.mktemp("arch") / "s.db"
    study = tn.ModelSearch(space="mlp", data="digits", trainer=tn.Trainer(epochs=1), trials=3,
                           keep_models=1, storage=db, progress=False, seed=3).run()
    return db, study


def test_a_search_records_every_trials_graph(searched: tuple[Path, tn.Study]) -> None:
    db, study = searched
    reading = tn.load_study(db, read_only=True)
    store = ArtifactStore(db.with_name("s.artifacts") / study.name)
    assert len(store.kept()) == 1  # keep_models=1 dropped the other weights, not the graphs
    for t in reading.trials:
        graph = arch_graph(reading, t.number)
        assert graph["nodes"][0]["shape"] == [1, 1, 8, 8]  # one digits sample
        assert graph["nodes"][-1]["shape"] == [1, 10]
        assert graph["total_params"] == t.metrics["params"]
        assert graph == store.load_graph(t.number)
    ax = plot_arch(reading, 0)
    assert ax.get_title().startswith("trial 0\n")
    with pytest.raises(ValueError, match=r"study '.*' has no trial 7 \(trials: 0\.\.2\)"):
        arch_graph(reading, 7)
    store.graph_path(1).unlink()
    with pytest.raises(ValueError, match=r"trial 1 of study '.*' has no recorded graph"):
        arch_graph(reading, 1)


def test_a_study_in_memory_has_no_graphs_to_read() -> None:
    study = tn.Study("m", objectives={"x": "max"})
    with pytest.raises(ValueError, match="not stored in an SQLite file"):
        arch_graph(study, 0)


def test_a_failing_capture_does_not_fail_the_trial(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ArtifactStore, "save_graph", broken)
    db = tmp_path / "s.db"
    study = tn.ModelSearch(space="mlp", data="digits", objectives={"params": "min"},
                           trials=2, storage=db, progress=False).run()
    assert [t.state for t in study.trials] == [tn.TrialState.COMPLETE] * 2
    with pytest.raises(ValueError, match="has no recorded graph"):
        arch_graph(tn.load_study(db, read_only=True), 0)
