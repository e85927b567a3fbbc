"""Keras Tuner's "Getting started" tutorial, end to end, in torchnas.

Each step names the Keras Tuner call it mirrors
(https://keras.io/keras_tuner/getting_started/): a `build(hp)` MLP on MNIST, the search space
summary, a random search, the two best trained models, the results summary, the best
hyperparameters, and the best architecture refit on all the training data (train+val).

    python examples/keras_tuner_mnist.py                 # MNIST (downloaded once), 10 trials
                                                         #   of 2 epochs: ~2 min on 2 CPU cores
    python examples/keras_tuner_mnist.py --small         # 8x8 digits (offline), 3 trials: seconds
    python examples/keras_tuner_mnist.py --storage runs/kt.db   # durable: a rerun resumes
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import torch
from torch import nn

import torchnas as tn


# keras_tuner: def build_model(hp): ... (a Keras Sequential model, compiled with Adam(lr))
def build(hp: tn.HP, input_shape: Sequence[int] = (1, 28, 28)) -> nn.Module:
    """The tutorial's model: Flatten, one Dense layer, optional Dropout, a 10-way output.

    ``input_shape`` is the shape of one sample (Keras infers it; PyTorch layers need it).
    """
    units = hp.int("units", 32, 512, step=32)                    # hp.Int("units", 32, 512, step=32)
    activation = hp.choice("activation", ["relu", "tanh"])        # hp.Choice("activation", [...])
    layers: list[nn.Module] = [
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), units),
        nn.ReLU() if activation == "relu" else nn.Tanh(),
    ]
    if hp.bool("dropout"):                                        # hp.Boolean("dropout")
        layers.append(nn.Dropout(0.25))
    layers.append(nn.Linear(units, 10))  # logits: the Trainer's loss is the cross-entropy
    # hp.Float("lr", 1e-4, 1e-2, sampling="log"): the Trainer reads `lr` from the architecture
    hp.float("lr", 1e-4, 1e-2, log=True)
    return nn.Sequential(*layers)


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true",
                        help="offline 8x8 digits (scikit-learn) and tiny settings, for CI")
    parser.add_argument("--trials", type=positive, default=None,
                        help="architectures to try (default 10; 3 with --small)")
    parser.add_argument("--epochs", type=positive, default=None,
                        help="epochs per trial and for the refit (default 2; 1 with --small)")
    parser.add_argument("--storage", default=None,
                        help="SQLite file of the study (default: in memory)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except tn.TorchnasError as exc:  # bad settings, a failed download: the message says why
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    trials = args.trials if args.trials is not None else (3 if args.small else 10)
    epochs = args.epochs if args.epochs is not None else (1 if args.small else 2)

    # keras.datasets.mnist.load_data(); 10,000 of the 60,000 training images validate
    if args.small:
        data = tn.data.load("digits", seed=args.seed)   # 1,797 8x8 images, no download
    else:
        data = tn.data.load("mnist", val_fraction=1 / 6, seed=args.seed)
    print(f"Data: {data}")

    # build_model(keras_tuner.HyperParameters()): build one model with the default values
    defaults = tn.HP(tn.space.FixedSource({}, missing="default"))
    model = build(defaults, data.input_shape)
    print(f"A model of the space, built with the default values {defaults.arch}:")
    print(tn.summary(model, data))

    # keras_tuner.RandomSearch(hypermodel=build_model, objective="val_accuracy",
    #                          max_trials=..., executions_per_trial=..., directory=...)
    search = tn.ModelSearch(
        space=build, space_kwargs={"input_shape": data.input_shape}, data=data,
        # model.compile(optimizer=Adam(lr)) + tuner.search(..., epochs=2, batch_size=32), with
        # Keras's constant learning rate. One torch thread: a model this small trains fastest
        # on one, and on cores that other programs share more threads wait on each other.
        trainer=tn.Trainer(epochs=epochs, batch_size=32, lr_schedule="constant", threads=1),
        objectives={"val_accuracy": "max"}, strategy="random", trials=trials,
        executions_per_trial=1, keep_models=3, storage=args.storage, seed=args.seed,
        name=f"keras-tuner-{data.name}",
    )

    # tuner.search_space_summary()
    print(search.check().summary())

    # tuner.search(x_train, y_train, epochs=2, validation_data=(x_val, y_val));
    # run() draws a progress bar and ends with the leaderboard: tuner.results_summary()
    # (search.leaderboard() prints it again at any time)
    search.run()

    # models = tuner.get_best_models(num_models=2); best_model = models[0]; best_model.summary()
    models = search.get_best_models(2)
    print(f"Best models returned: {len(models)}")
    print("Summary of the best model:")
    print(tn.summary(models[0], data))
    assert data.test is not None
    for rank, trained in enumerate(models, 1):
        # best_model.evaluate(x_test, y_test)
        accuracy = tn.evaluation.evaluate(trained, data.test)["accuracy"]
        print(f"Best model #{rank}: test accuracy {accuracy:.4f}")

    # best_hps = tuner.get_best_hyperparameters(5)
    best_hps = search.get_best_hyperparameters(5)
    print(f"Best hyperparameters (top {len(best_hps)}):")
    for rank, hps in enumerate(best_hps, 1):
        print(f"  #{rank}: {hps}")

    # model = build_model(best_hps[0]); model.fit(x_all, y_all, epochs=...): the best
    # architecture retrained on train+val, then measured on the test split once
    refit = search.best_model(retrain=True)
    print(f"Refit on train+val: test accuracy {search.test_metrics['test_accuracy']:.4f}, "
          f"test loss {search.test_metrics['test_loss']:.4f}")
    with torch.no_grad():
        x, _ = data.test[0]
        device = next(refit.parameters()).device
        prediction = refit(x.unsqueeze(0).to(device)).argmax(1).item()
    print(f"The refit model classifies the first test image as {prediction}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
