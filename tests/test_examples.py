"""The example programs of examples/, run as a user runs them.

Each runs with ``--small`` (scikit-learn's 8x8 digits, offline, 3 trials of 1 epoch) in a
subprocess whose working directory is a fresh folder; the output is checked step by step.
The MNIST path (28x28 images, a download) runs in-process on a few synthetic images in
place of MNIST, so its shapes and settings are checked without a network.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import torchnas as tn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: Both examples reach 0.77 to 0.90 test accuracy on digits with --small (seed 0); chance is 0.1.
MIN_ACCURACY = 0.5


def run_example(name: str, cwd: Path, *args: str) -> str:
    """Runs ``examples/<name> --small *args`` in ``cwd``; returns its stdout."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TORCHNAS_HOME": str(cwd.parent / "cache")}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--small", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def accuracies(pattern: str, out: str) -> list[float]:
    return [float(x) for x in re.findall(pattern + r" test accuracy (\d\.\d+)", out)]


@pytest.mark.slow
def test_keras_tuner_example(tmp_path: Path) -> None:
    work = tmp_path / "work"
    out = run_example("keras_tuner_mnist.py", work)
    # build_model(HyperParameters()).summary(), then best_model.summary()
    assert out.count("Trainable params") == 2, out
    assert "built with the default values {'units': 32, 'activation': 'relu'" in out
    assert "Search space: 4 labels" in out                     # tuner.search_space_summary()
    assert "Leaderboard of 'keras-tuner-digits' (3 complete)" in out  # tuner.results_summary()
    assert "Best models returned: 2" in out                    # tuner.get_best_models(2)
    best = accuracies(r"Best model #\d:", out)
    assert len(best) == 2 and min(best) > MIN_ACCURACY, out
    # tuner.get_best_hyperparameters(5): only 3 trials ran
    assert "Best hyperparameters (top 3):" in out
    hps = [ast.literal_eval(m) for m in re.findall(r"^  #\d: (\{.*\})$", out, re.MULTILINE)]
    assert len(hps) == 3
    for hp in hps:
        assert set(hp) == {"units", "activation", "dropout", "lr"}
        assert 32 <= hp["units"] <= 512 and hp["units"] % 32 == 0
        assert hp["activation"] in ("relu", "tanh") and 1e-4 <= hp["lr"] <= 1e-2
    refit = accuracies(r"Refit on train\+val:", out)                  # model.fit on all data
    assert len(refit) == 1 and refit[0] > MIN_ACCURACY, out
    assert not any(work.iterdir())  # a study in memory writes nothing to the working directory


@pytest.mark.slow
def test_random_search_cnn_example(tmp_path: Path) -> None:
    work = tmp_path / "work"
    out = run_example("random_search_cnn.py", work, "--storage", "runs/cnn.db")
    assert "Leaderboard of 'random-cnn-digits' (3 complete)" in out
    line = re.search(r"^Best architecture \(trial \d+, val accuracy [\d.]+\): (\{.*\})$", out,
                     re.MULTILINE)
    assert line, out
    arch = ast.literal_eval(line.group(1))
    assert 1 <= arch["conv_layers"] <= 3 and 1 <= arch["dense_layers"] <= 2
    assert all(arch[f"filters_{i}"] in (16, 32, 64) for i in range(arch["conv_layers"]))
    assert "Trainable params" in out
    trained = accuracies(r"Trained model of the best trial:", out)
    retrained = accuracies(r"Retrained on train\+val:", out)
    assert len(trained) == len(retrained) == 1, out
    assert min(trained + retrained) > MIN_ACCURACY, out
    assert (work / "runs" / "cnn.db").is_file()
    assert list((work / "runs" / "cnn.artifacts" / "random-cnn-digits").glob("trial-*.pt"))


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_mnist(name: str, **kwargs: Any) -> tn.data.Data:
    """A few random 28x28 images in place of MNIST (no download)."""
    assert name == "mnist"
    rng = np.random.default_rng(0)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.random((n, 1, 28, 28), dtype=np.float32), np.arange(n) % 10

    return tn.data.from_tensors(split(160), split(40), split(40), num_classes=10, name="mnist")


@pytest.mark.parametrize("name", ["keras_tuner_mnist", "random_search_cnn"])
def test_examples_mnist_path(name: str, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tn.data, "load", fake_mnist)
    assert load_example(name).main(["--trials", "2", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "Leaderboard of" in out and "(2 complete)" in out
    assert re.search(r"(Refit|Retrained) on train\+val: test accuracy \d\.\d+", out), out


@pytest.mark.parametrize("conv_layers, filters, kernel", [(1, 16, 3), (3, 64, 5)])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)])
def test_cnn_space_fits_both_image_sizes(shape: tuple[int, int, int], conv_layers: int,
                                         filters: int, kernel: int) -> None:
    build = load_example("random_search_cnn").build
    arch: dict[str, Any] = {"conv_layers": conv_layers, "dense_layers": 2,
                            "units_0": 256, "units_1": 64}
    for i in range(conv_layers):
        arch |= {f"filters_{i}": filters, f"kernel_{i}": kernel}
    model = tn.build(build, arch, input_shape=shape)
    assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_example_reports_library_errors(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A stored study rerun with other settings ends with torchnas's message, no traceback."""
    main = load_example("keras_tuner_mnist").main
    db = str(tmp_path / "kt.db")
    assert main(["--small", "--trials", "1", "--storage", db]) == 0
    capsys.readouterr()
    assert main(["--small", "--trials", "1", "--epochs", "2", "--storage", db]) == 1
    assert "error: " in (err := capsys.readouterr().err) and "trainer.epochs: 1 -> 2" in err


def test_example_rejects_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_example("random_search_cnn").main(["--trials", "0"])
    assert "--trials: must be at least 1" in capsys.readouterr().err
