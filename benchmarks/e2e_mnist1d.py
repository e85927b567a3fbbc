"""End to end on MNIST-1D: torchnas against Keras Tuner, same space, same time budget.

torchnas searches its built-in ``chain_cnn`` space with ``tn.ModelSearch`` (strategy ``auto``,
and any others named); Keras Tuner 1.4 searches the same space written as a Keras 3 model
builder (torch backend) with ``RandomSearch`` and ``BayesianOptimization``. The space, the data
split (``tn.data.load("mnist1d")``: 3,200 train, 800 validation, 1,000 test signals), the epochs,
the batch size and the training recipe (Adam, learning rate from the space decayed to 0 by a
per-step cosine, cross-entropy, batch norm with PyTorch's momentum and epsilon) are the same. Each
tool gets ``--budget`` seconds of wall clock: no trial starts after it, and a trial still training
then stops at the end of its epoch (torchnas records it PRUNED and does not rank it, unless no
trial completed; Keras Tuner ranks it with the epochs it had). Keras Tuner gets ``max_trials``
large and is stopped at the budget. Then each retrains its best architecture on train+val (same
epochs) and measures its test accuracy once. torch uses ``--threads`` threads for every tool
(``torch.set_num_threads``; default 1: on a machine shared with other jobs, more threads than
free cores made torch's training 2-4x slower here), and each framework fits one small model before
any clock starts.
Keras Tuner's BayesianOptimization draws its first ``3 x dimensions`` trials at random, from the
same seeded stream as RandomSearch: with few trials the two search the same architectures.

The space (torchnas's ``chain_cnn`` for a (1, 40) signal, 10 classes): activation relu/gelu;
1-4 conv layers, each with filters {24, 36, 48, 64}, kernel {3, 5, 7}, stride {1, 2}, "same"
padding, batch norm, the activation; flatten; 0-2 dense layers of 32-256 units (step 32) with the
activation; optional dropout 0.2; a linear classifier; learning rate log-uniform in [5e-4, 1e-2].
Differences that stay: each framework's default weight initialisation, and the score a trial is
ranked by (torchnas: the last epoch's validation accuracy; Keras Tuner: the best epoch's).

Timings depend on the machine's load: the load average is printed before and after.

    pip install keras keras-tuner   # or pip install -e '.[bench]'; keeps the torch you have
    python benchmarks/e2e_mnist1d.py [--budget 60] [--epochs 12] [--batch-size 128]
        [--threads N] [--strategies auto,...] [--tuners random,bayesian] [--seeds 1] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch
from _common import (
    fmt_mean_se,
    machine_note,
    mean_se,
    quiet,
    strategy_names,
    strategy_spec,
    table,
)

import torchnas as tn

TUNERS = ("random", "bayesian")


@dataclass
class Result:
    """One tool over seeds."""

    trials: list[int] = field(default_factory=list)
    cut: list[int] = field(default_factory=list)
    search_s: list[float] = field(default_factory=list)
    best_val: list[float] = field(default_factory=list)
    retrain_s: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)


def run_torchnas(strategy: str, data: tn.data.Data, args: argparse.Namespace,
                 seed: int) -> dict[str, float]:
    """Search with ``tn.ModelSearch`` for ``args.budget`` seconds, then retrain the best."""
    search = tn.ModelSearch(space="chain_cnn", data=data,
                            trainer=tn.Trainer(epochs=args.epochs, batch_size=args.batch_size),
                            objectives={"val_accuracy": "max"}, strategy=strategy_spec(strategy),
                            trials=None,
                            timeout=args.budget, storage=None, seed=seed, progress=False)
    start = time.perf_counter()
    study = search.run()
    search_s = time.perf_counter() - start
    states = [t.state for t in study.trials]
    done = states.count(tn.TrialState.COMPLETE)
    # nothing completed in the budget: retrain the best trial cut at the budget, by its last
    # validation accuracy (what Keras Tuner ranks such a trial by)
    cut = [t for t in study.trials if t.state is tn.TrialState.PRUNED and t.metrics]
    best = search.best_trial if done else max(cut, key=lambda t: t.metrics["val_accuracy"])
    start = time.perf_counter()
    search.best_model(retrain=True, trial=best)
    return {"trials": done, "cut": states.count(tn.TrialState.PRUNED), "search_s": search_s,
            "best_val": best.metrics["val_accuracy"], "retrain_s": time.perf_counter() - start,
            "test": float(search.test_accuracy or 0)}


def keras_arrays(data: tn.data.Data) -> dict[str, Any]:
    """The torchnas splits as channels-last numpy arrays (``(N, 40, 1)``) for Keras."""

    def pair(ds: Any) -> tuple[Any, Any]:
        x, y = ds.tensors[:2]
        return x.permute(0, 2, 1).contiguous().numpy(), y.numpy()

    assert data.test is not None
    return {"train": pair(data.train), "val": pair(data.val), "test": pair(data.test),
            "train_val": pair(data.train_val())}


def make_hypermodel(epochs: int) -> Any:
    """The chain_cnn space as a Keras Tuner HyperModel (layers and labels in torchnas's order)."""
    import keras
    import keras_tuner as kt
    from keras import layers

    class ChainCNN(kt.HyperModel):
        steps_per_epoch = 1  # set before building: the cosine decays over every step of a fit

        def build(self, hp: Any) -> Any:
            act = hp.Choice("activation", ["relu", "gelu"])
            inputs = keras.Input((40, 1))
            x = inputs
            for i in range(hp.Int("conv_layers", 1, 4)):
                x = layers.Conv1D(hp.Choice(f"filters_{i}", [24, 36, 48, 64]),
                                  hp.Choice(f"kernel_{i}", [3, 5, 7]),
                                  strides=hp.Choice(f"stride_{i}", [1, 2]), padding="same",
                                  use_bias=False)(x)
                x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
                x = layers.Activation(act)(x)
            x = layers.Flatten()(x)
            for i in range(hp.Int("dense_layers", 0, 2)):
                x = layers.Dense(hp.Int(f"units_{i}", 32, 256, step=32), activation=act)(x)
            if hp.Boolean("dropout"):
                x = layers.Dropout(0.2)(x)
            model = keras.Model(inputs, layers.Dense(10)(x))
            lr = hp.Float("lr", 5e-4, 1e-2, sampling="log")
            schedule = keras.optimizers.schedules.CosineDecay(
                lr, decay_steps=epochs * self.steps_per_epoch)
            model.compile(optimizer=keras.optimizers.Adam(schedule, epsilon=1e-8),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            return model

    return ChainCNN()


def run_keras_tuner(kind: str, arrays: dict[str, Any], args: argparse.Namespace,
                    seed: int) -> dict[str, float]:
    """Search with a Keras Tuner until ``args.budget`` seconds pass, then retrain the best."""
    import keras
    import keras_tuner as kt

    base = kt.RandomSearch if kind == "random" else kt.BayesianOptimization
    deadline = math.inf  # set when the clock starts

    class Timed(base):  # type: ignore[misc, valid-type]
        def pre_create_trial(self) -> None:  # no trial starts after the budget
            if time.monotonic() >= deadline:
                self.oracle.max_trials = max(1, len(self.oracle.trials))
            super().pre_create_trial()

    cut = [0]  # Keras Tuner deep-copies callbacks per trial: count in a shared cell

    class StopAtDeadline(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if time.monotonic() >= deadline and epoch + 1 < args.epochs:
                self.model.stop_training = True
                cut[0] += 1

    (x, y), val = arrays["train"], arrays["val"]
    hypermodel = make_hypermodel(args.epochs)
    hypermodel.steps_per_epoch = math.ceil(len(y) / args.batch_size)
    keras.utils.set_random_seed(seed)
    start, deadline = time.perf_counter(), time.monotonic() + args.budget
    with tempfile.TemporaryDirectory() as tmp:
        tuner = Timed(hypermodel, objective="val_accuracy", max_trials=100_000, seed=seed,
                      directory=tmp, project_name=kind, overwrite=True)
        tuner.search(x, y, validation_data=val, epochs=args.epochs, batch_size=args.batch_size,
                     callbacks=[StopAtDeadline()], verbose=0)
        search_s = time.perf_counter() - start
        trials = list(tuner.oracle.trials.values())
        best = tuner.oracle.get_best_trials(1)[0]
        best_hp = tuner.get_best_hyperparameters(1)[0]
    done = sum(t.status == "COMPLETED" for t in trials) - cut[0]
    start = time.perf_counter()
    (x_all, y_all), (x_test, y_test) = arrays["train_val"], arrays["test"]
    hypermodel.steps_per_epoch = math.ceil(len(y_all) / args.batch_size)
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(best_hp)
    model.fit(x_all, y_all, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    test = model.evaluate(x_test, y_test, batch_size=512, verbose=0, return_dict=True)
    return {"trials": done, "cut": len(trials) - done, "search_s": search_s,
            "best_val": float(best.score), "retrain_s": time.perf_counter() - start,
            "test": float(test["accuracy"])}


def warm_up(data: tn.data.Data, arrays: dict[str, Any], tuners: bool) -> None:
    """One short fit per framework before any clock starts (first-call costs, lazy imports)."""
    small = {"activation": "relu", "conv_layers": 1, "filters_0": 24, "kernel_0": 3,
             "stride_0": 1, "dense_layers": 0, "dropout": False, "lr": 1e-3}
    space = tn.spaces.create("chain_cnn", input_shape=data.input_shape,
                             num_classes=data.num_classes)
    tn.Trainer(epochs=1).fit(tn.build(space, small), data)
    if tuners:
        import keras_tuner as kt

        hypermodel = make_hypermodel(1)
        model = hypermodel.build(kt.HyperParameters())
        (x, y), val = arrays["train"], arrays["val"]
        model.fit(x, y, validation_data=val, epochs=1, batch_size=128, verbose=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="search seconds per tool")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, for every tool (default 1: see the docstring)")
    parser.add_argument("--strategies", default="auto",
                        help="comma list of torchnas strategies, 'name' or 'name(key=value, ...)'")
    parser.add_argument("--tuners", default="random,bayesian",
                        help="Keras Tuner tuners: random, bayesian (empty: none)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat with seeds 0..N-1")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 s budget, 2 epochs")
    args = parser.parse_args()
    if args.quick:
        args.budget, args.epochs = 8.0, 2
    quiet()
    torch.set_num_threads(args.threads)
    tools = [f"torchnas:{s}" for s in strategy_names(args.strategies)]
    tuners = [t.strip() for t in args.tuners.split(",") if t.strip()]
    if any(t not in TUNERS for t in tuners):
        raise SystemExit(f"--tuners: choose among {TUNERS}, got {tuners}")
    if tuners:
        try:
            import keras
            import keras_tuner as kt
        except ImportError:
            raise SystemExit("Keras Tuner runs need: pip install keras keras-tuner "
                             "(or pip install -e '.[bench]')") from None
        if keras.backend.backend() != "torch":
            raise SystemExit(f"KERAS_BACKEND is {keras.backend.backend()!r}; this needs 'torch'")
        tools += [f"keras-tuner:{t}" for t in tuners]
        print(f"Keras {keras.__version__} (backend torch), Keras Tuner {kt.__version__}")
    data = tn.data.load("mnist1d")
    arrays = keras_arrays(data) if tuners else {}
    print(f"MNIST-1D, chain_cnn, {args.budget:g} s per search, {args.epochs} epochs, batch "
          f"{args.batch_size}, torch {torch.__version__} with {torch.get_num_threads()} threads; "
          f"{args.seeds} seed(s)\nbefore: {machine_note()}", flush=True)
    warm_up(data, arrays, bool(tuners))
    results = {tool: Result() for tool in tools}
    for seed in range(args.seeds):
        for tool in tools:
            kind, _, name = tool.partition(":")
            out = (run_torchnas(name, data, args, seed) if kind == "torchnas"
                   else run_keras_tuner(name, arrays, args, seed))
            print(f"  seed {seed} {tool}: {out['trials']} trials (+{out['cut']} cut), "
                  f"search {out['search_s']:.1f} s, best val {100 * out['best_val']:.2f}%, "
                  f"test {100 * out['test']:.2f}%", flush=True)
            for key, value in out.items():
                getattr(results[tool], key).append(value)
    print(f"after: {machine_note()}\n")
    reference = mean_se(results[tools[0]].test)[0]
    rows = []
    for tool, r in results.items():
        diff = mean_se(r.test)[0] - reference
        rows.append([tool, fmt_mean_se(r.trials, 1), fmt_mean_se(r.cut, 1),
                     fmt_mean_se(r.search_s, 1), fmt_mean_se([100 * v for v in r.best_val]),
                     fmt_mean_se(r.retrain_s, 1), fmt_mean_se([100 * v for v in r.test]),
                     "-" if tool == tools[0] else f"{100 * diff:+.2f}"])
    print(table(["tool", "trials", "cut at budget", "search s", "best val acc %", "retrain s",
                 "test acc %", f"test - {tools[0]} (pp)"], rows))


if __name__ == "__main__":
    main()
