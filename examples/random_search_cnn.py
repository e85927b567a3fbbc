"""A plain random search of a CNN's depth and widths on MNIST.

The space: 1 to 3 convolution blocks (filters 16, 32 or 64; kernel 3 or 5; 'same' padding,
batch norm, ReLU, 2x2 max pooling), then 1 or 2 dense layers (64, 128 or 256 units). The
search draws architectures uniformly at random, trains each, and hands back the best one's
trained model, which is then retrained on train+val.

    python examples/random_search_cnn.py                 # MNIST (downloaded once), 10 trials
                                                         #   of 1 epoch: ~8 min on 2 CPU cores
    python examples/random_search_cnn.py --small         # 8x8 digits (offline), 3 trials: seconds
    python examples/random_search_cnn.py --storage runs/cnn.db   # durable: a rerun resumes
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torch import nn

import torchnas as tn


def build(hp: tn.HP, input_shape: Sequence[int] = (1, 28, 28),
          num_classes: int = 10) -> nn.Module:
    """A CNN of the space for images of ``input_shape`` ``(channels, height, width)``.

    'same' padding keeps the size through each convolution; the pooling halves it while it
    is at least 2, so three blocks fit 8x8 digits (8 -> 4 -> 2 -> 1) as well as MNIST.
    """
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    for i in range(hp.int("conv_layers", 1, 3)):
        filters = hp.choice(f"filters_{i}", [16, 32, 64])  # filters_2 exists if conv_layers == 3
        kernel = hp.choice(f"kernel_{i}", [3, 5])
        layers += [nn.Conv2d(channels, filters, kernel, padding="same"),
                   nn.BatchNorm2d(filters), nn.ReLU()]
        if min(height, width) >= 2:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        channels = filters
    layers.append(nn.Flatten())
    features = channels * height * width
    for i in range(hp.int("dense_layers", 1, 2)):
        units = hp.choice(f"units_{i}", [64, 128, 256])
        layers += [nn.Linear(features, units), nn.ReLU()]
        features = units
    layers.append(nn.Linear(features, num_classes))
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
                        help="epochs per trial and for the retrain (default 1)")
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
    epochs = args.epochs if args.epochs is not None else 1
    if args.small:
        data = tn.data.load("digits", seed=args.seed)   # 1,797 8x8 images, no download
    else:
        data = tn.data.load("mnist", seed=args.seed)    # 60,000 + 10,000 28x28 images
    print(f"Data: {data}")

    search = tn.ModelSearch(
        space=build, data=data, strategy="random", trials=trials, seed=args.seed,
        space_kwargs={"input_shape": data.input_shape, "num_classes": data.num_classes},
        # one torch thread: on few cores that other programs share, more threads wait on
        # each other (here, 2 threads on 2 busy cores trained 10x slower than 1)
        trainer=tn.Trainer(epochs=epochs, batch_size=32 if args.small else 128, threads=1),
        objectives={"val_accuracy": "max"}, keep_models=1, storage=args.storage,
        name=f"random-cnn-{data.name}",
    )
    search.run()  # progress bar, then the leaderboard

    best = search.best_trial
    print(f"Best architecture (trial {best.number}, val accuracy "
          f"{best.metrics['val_accuracy']:.4f}): {best.arch}")
    [trained] = search.get_best_models(1)  # the trial's own trained model, eval mode
    print(tn.summary(trained, data))
    assert data.test is not None
    accuracy = tn.evaluation.evaluate(trained, data.test)["accuracy"]
    print(f"Trained model of the best trial: test accuracy {accuracy:.4f}")

    search.best_model(retrain=True)  # the same architecture trained again on train+val
    print(f"Retrained on train+val: test accuracy {search.test_metrics['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
