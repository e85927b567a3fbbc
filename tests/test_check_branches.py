"""``ModelSearch.check()`` runs a model of every branch: every value of every decision, the
conditional ones included, is met by some model run on the data; a branch that breaks is named.
Inputs a built-in space would misread (channels last, images without their channel axis) and
proxies that cannot score models of integer inputs are refused before any trial."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import torch
from torch import nn

import torchnas as tn
from torchnas.search._checks import probe_model
from torchnas.space import cover_values, explore

G = torch.Generator().manual_seed(0)
SIGNALS = torch.randn(48, 1, 16, generator=G)
LABELS = torch.arange(48) % 3


def signals() -> tn.data.Data:
    return tn.data.from_tensors((SIGNALS[:36], LABELS[:36]), (SIGNALS[36:], LABELS[36:]),
                                name="signals")


def search(space: Any, data: tn.data.Data | None = None, **kw: Any) -> tn.ModelSearch:
    kw.setdefault("trials", 1)
    return tn.ModelSearch(space=space, data=data or signals(), trainer=tn.Trainer(epochs=1),
                          progress=False, **kw)


# -- spaces with a bug in one branch ------------------------------------------------------------
def kernel_bug(hp: tn.HP) -> nn.Module:
    """Breaks only with kernel_size=5 (no padding: the dense layer gets too few features)."""
    k = hp.choice("kernel_size", [3, 5, 7])
    width = hp.choice("width", [4, 8])
    hp.float("lr", 1e-4, 1e-2, log=True)
    conv = nn.Conv1d(1, width, k, padding=0 if k == 5 else k // 2)
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(width * 16, 3))


def layers(hp: tn.HP, bug: bool) -> nn.Module:
    body: list[nn.Module] = []
    channels = 1
    for i in range(hp.int("conv_layers", 1, 4)):  # filters_3 exists only with 4 layers
        c = hp.choice(f"filters_{i}", [24, 36, 48, 64])
        body += [nn.Conv1d(channels, c, hp.choice(f"kernel_{i}", [3, 5]), padding="same"),
                 nn.ReLU()]
        channels = c + 1 if bug and i == 3 and c == 64 else c  # the next layer gets it wrong
    body += [nn.Conv1d(channels, 8, 1), nn.AdaptiveAvgPool1d(1), nn.Flatten()]
    if hp.bool("dropout"):
        body.append(nn.Dropout(0.1))
    return nn.Sequential(*body, nn.Linear(8, 3))


def conditional_bug(hp: tn.HP) -> nn.Module:
    """Breaks only when the conditional filters_3 exists with the value 64."""
    return layers(hp, bug=True)


def conditional_ok(hp: tn.HP) -> nn.Module:
    return layers(hp, bug=False)


class Branches(nn.Module):
    def __init__(self, op: nn.Module, pick: tn.space.InputChoice) -> None:
        super().__init__()
        self.op, self.pick = op, pick
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.op(x)
        return self.head(self.pick([y, x, torch.cat([x, x], dim=-1)]))


def op_bug(hp: tn.HP) -> nn.Module:
    """Every op keeps the shape but ``pool``."""
    op = hp.op("cell/op", {"conv": lambda: nn.Conv1d(1, 1, 3, padding=1), "skip": nn.Identity,
                           "pool": lambda: nn.AvgPool1d(2)})
    hp.inputs("cell/node", 2)  # both inputs fit
    return Branches(op, tn.space.InputChoice(3, [0]))


def input_bug(hp: tn.HP) -> nn.Module:
    """Input 2 (twice as long) never fits the head."""
    return Branches(nn.Identity(), hp.inputs("cell/node", 3))


def wrong_head(hp: tn.HP) -> nn.Module:
    outputs = 5 if hp.choice("head", ["narrow", "wide"]) == "wide" else 3
    return nn.Sequential(nn.Flatten(), nn.Linear(16, outputs))


@pytest.mark.parametrize(("space", "message"), [
    (kernel_bug, r"fails on a batch of 'signals' shaped \(2, 1, 16\) \(torch.float32\) with "
                 r"kernel_size=5 \(decisions \{'kernel_size': 5, .*\}\): RuntimeError: "),
    (conditional_bug, r"fails on .* with conv_layers=4, filters_3=64 \(decisions .*'filters_3':"
                      r" 64.*\): RuntimeError"),
    (op_bug, r"fails on .* with cell/op='pool' \(decisions \{'cell/op': 'pool', 'cell/node': "
             r"\[\d\]\}\): RuntimeError"),
    (input_bug, r"fails on .* with cell/node=\[2\] \(decisions \{'cell/node': \[2\]\}\)"),
    (wrong_head, r"output \(2, 5\) with head='wide' \(decisions \{'head': 'wide'\}\); "
                 r"'signals' needs \(batch, 3\) logits"),
])
def test_a_bug_in_one_branch_fails_check_naming_that_branch(space: Any, message: str) -> None:
    with pytest.raises(tn.SpaceError, match=message) as caught:
        search(space).check()
    assert caught.value.__cause__ is not None or "output" in str(caught.value)


def test_the_default_architecture_of_each_buggy_space_is_fine() -> None:
    """What check() used to run (each label's default) passes: only other branches break."""
    for space in (kernel_bug, conditional_bug, op_bug, input_bug, wrong_head):
        info = explore(space)
        model = tn.build(space, {k: i.domain.default for k, i in info.labels.items()},
                         strict=False)
        with torch.no_grad():
            assert model.eval()(SIGNALS[:2]).shape == (2, 3)


def test_a_correct_conditional_space_meets_every_value_of_every_label() -> None:
    info = search(conditional_ok).check()
    coverage = info.coverage
    assert coverage is not None and coverage.complete
    assert set(coverage.targets) == set(info.labels) and "filters_3" in info.labels
    for label, i in info.labels.items():
        wanted = {json.dumps(v) for v in i.domain.values()}  # all small: every value
        assert wanted <= coverage.met[label], label
    met, total = coverage.counts
    assert met == total == 4 + 4 * (4 + 2) + 2
    assert coverage.runs <= 12  # steered to the branches: far fewer than the cap (64)
    assert "Checked:" in info.summary()


def test_values_never_met_within_the_cap_are_named_in_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    info = explore(conditional_ok)
    with caplog.at_level(logging.WARNING, logger="torchnas"):
        coverage = probe_model(conditional_ok, info, signals(), max_models=2)
    assert coverage.runs == 2 and not coverage.complete
    missing = coverage.missing()
    assert missing and all(v in cover_values(info.labels[k].domain)
                           for k, vs in missing.items() for v in vs)
    assert "never met" in caplog.text and next(iter(missing)) in caplog.text


def test_builtin_spaces_meet_every_value_on_each_kind_of_input() -> None:
    data = {"digits": tn.data.load("digits"), "signals": signals()}
    for bundle in data.values():
        for name in tn.spaces.list():
            info = search(name, bundle).check()
            assert info.coverage is not None and info.coverage.complete, (name, bundle.name)
            assert info.coverage.runs <= 16


# -- inputs a built-in space would misread ------------------------------------------------------
def images(shape: tuple[int, ...]) -> tn.data.Data:
    x = torch.rand(40, *shape, generator=G)
    return tn.data.from_tensors((x[:30], LABELS[:30]), (x[30:], LABELS[30:40]), name="pics")


@pytest.mark.parametrize("space", ["chain_cnn", "mobile", "cell"])
def test_channels_last_images_are_refused_with_the_permutation(space: str) -> None:
    with pytest.raises(tn.DataError, match=r"input_shape \(16, 16, 1\) looks channels-last.*"
                                           r"read as 16 channels.*x\.permute\(0, 3, 1, 2\), "
                                           r"shaped \(1, 16, 16\)"):
        search(space, images((16, 16, 1))).check()
    with pytest.raises(tn.DataError, match=r"\(12, 12, 3\) looks channels-last"):
        search(space, images((12, 12, 3))).check()
    with pytest.raises(tn.DataError, match=r"\(40, 1\) looks channels-last.*transpose\(1, 2\)"):
        search(space, images((40, 1))).check()


def test_channels_first_images_and_flat_inputs_pass() -> None:
    for shape in [(1, 16, 16), (3, 12, 12), (3, 4, 4), (40,)]:
        search("chain_cnn", images(shape)).check()
    search("mlp", images((16, 16, 1))).check()  # an MLP flattens: the layout does not matter


def test_square_images_without_a_channel_axis_warn() -> None:
    with pytest.warns(UserWarning, match=r"input_shape \(16, 16\) is read as a 1-D signal of "
                                         r"16 channels and length 16.*x\.unsqueeze\(1\)"):
        search("chain_cnn", images((16, 16))).check()


# -- zero-cost proxies on integer inputs --------------------------------------------------------
TOKENS = torch.randint(0, 50, (48, 12), generator=G)


def tokens() -> tn.data.Data:
    return tn.data.from_tensors((TOKENS[:36], LABELS[:36]), (TOKENS[36:], LABELS[36:]),
                                name="tokens")


def embedding_space(hp: tn.HP) -> nn.Module:
    dim = hp.choice("dim", [4, 8])
    return nn.Sequential(nn.Embedding(50, dim), nn.Flatten(), nn.Linear(12 * dim, 16),
                         nn.ReLU(), nn.Linear(16, 3))


@pytest.mark.parametrize("name", ["synflow", "jacob_cov"])
def test_proxies_that_need_float_inputs_are_refused_on_tokens(name: str) -> None:
    with pytest.raises(tn.ConfigError, match=rf"proxy '{name}' \(an objective\) needs float "
                                             rf"inputs.*'tokens' are torch.int64"):
        search(embedding_space, tokens(), objectives={name: "max"}).check()
    with pytest.raises(tn.ConfigError, match=rf"proxy '{name}' \(the warm start\)"):
        search(embedding_space, tokens(), warm_start={"proxy": name, "samples": 2}).run()
    with pytest.raises(ValueError, match=rf"proxy '{name}' needs float inputs"):
        tn.metrics.proxy(name, embedding_space(tn.HP(tn.space.FixedSource({"dim": 4}))),
                         TOKENS[:4], LABELS[:4])


def test_proxies_that_score_token_models_still_do() -> None:
    s = search(embedding_space, tokens(), objectives={"snip": "max"},
               warm_start={"proxy": "naswot", "samples": 2}, trials=2)
    study = s.run()
    assert [t.state for t in study.trials] == [tn.TrialState.COMPLETE] * 2
    assert all(t.metrics["snip"] > 0 for t in study.trials)
