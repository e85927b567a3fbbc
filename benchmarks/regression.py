"""Regression on scikit-learn's diabetes: torchnas's ``task="regression"`` against Optuna's TPE
driving a hand-written PyTorch loop, with the same wall-clock budget, in the same run.

Both search the built-in ``mlp`` space (1-3 dense layers of 32-512 units in steps of 32, relu or
tanh, optional dropout of 0.25, a log-uniform learning rate in [1e-4, 1e-2]) on
``tn.data.load("diabetes")`` (442 patients: 283 train, 71 validation, 88 test; 10 features and
the target standardized with the training split's statistics), for ``--budget`` seconds of
search each, and pick the architecture of the lowest validation MSE:

- torchnas: ``tn.ModelSearch(space="mlp", trainer=tn.Trainer(task="regression", ...),
  timeout=budget)`` with its default strategy (``auto``), then ``best_model(retrain=True)``
  on train+val and ``search.test_metrics``.
- Optuna: ``TPESampler(seed)`` with its defaults over the same decisions
  (``trial.suggest_*``), each trial trained by a hand-written loop with the same recipe as the
  Trainer's (Adam, the trial's learning rate, a cosine schedule stepped per batch down to 0,
  ``--epochs`` epochs of batches of ``--batch-size``, MSE, shuffling and weights seeded), the
  best retrained on train+val by the same loop and tested once.

Test RMSE is reported in the target's units (disease progression a year later, 25 to 346; the
test target's standard deviation is about 77), beside two floors: the training mean and
scikit-learn's ``LinearRegression`` (ordinary least squares on the same split). Ratios are
torchnas over Optuna; the order of the two alternates with the seed. One torch thread each.

    python benchmarks/regression.py [--seeds 5] [--budget 60] [--epochs 30] [--batch-size 32]
        [--out benchmarks/results/regression_diabetes.json] [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import fmt_mean_se, machine_note, mean_se, quiet, ratio, table, write_result
from torch import nn

import torchnas as tn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def target_scale(seed: int) -> float:
    """The standard deviation the diabetes loader divided the targets by (its training
    split's), to give RMSE in the target's units."""
    raw = tn.data.load("diabetes", seed=seed, standardize_target=False)
    return float(raw.train.tensors[1].double().std(unbiased=False))


# -- torchnas -------------------------------------------------------------------------------------
def run_torchnas(data: tn.data.Data, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    trainer = tn.Trainer(task="regression", epochs=args.epochs, batch_size=args.batch_size,
                         threads=1, device="cpu")
    search = tn.ModelSearch(space="mlp", data=data, trainer=trainer, trials=None,
                            timeout=args.budget, seed=seed, progress=False, keep_models=1,
                            name=f"regression-{seed}")
    start = time.perf_counter()
    study = search.run()
    searched = time.perf_counter() - start
    search.best_model(retrain=True)
    best = search.best_trial
    return {"trials": sum(t.state.finished for t in study.trials), "search_s": searched,
            "total_s": time.perf_counter() - start, "val_mse": best.metrics["val_mse"],
            "arch": dict(best.arch), "test_mse": search.test_metrics["test_mse"],
            "test_r2": search.test_metrics["test_r2"]}


# -- Optuna and a hand-written loop ---------------------------------------------------------------
def mlp(params: dict[str, Any], features: int) -> nn.Module:
    """The ``mlp`` space's model of ``params`` (the same layers as ``tn.spaces.MLPSpace``)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = features
    for i in range(params["num_layers"]):
        layers += [nn.Linear(width, params[f"units_{i}"]), ACTIVATIONS[params["activation"]]()]
        width = params[f"units_{i}"]
    if params["dropout"]:
        layers.append(nn.Dropout(0.25))
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def suggest(trial: Any) -> dict[str, Any]:
    """The ``mlp`` space's decisions, in its order, as Optuna suggestions."""
    params: dict[str, Any] = {"num_layers": trial.suggest_int("num_layers", 1, 3)}
    for i in range(params["num_layers"]):
        params[f"units_{i}"] = trial.suggest_int(f"units_{i}", 32, 512, step=32)
        params["activation"] = trial.suggest_categorical("activation", ["relu", "tanh"])
    params["dropout"] = trial.suggest_categorical("dropout", [False, True])
    params["lr"] = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    return params


def train(params: dict[str, Any], x: torch.Tensor, y: torch.Tensor, seed: int,
          args: argparse.Namespace) -> nn.Module:
    """The hand-written loop: Adam, cosine per batch down to 0, MSE, seeded."""
    torch.manual_seed(seed)
    model = mlp(params, x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=params["lr"])
    steps = args.epochs * math.ceil(len(x) / args.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), args.batch_size):
            idx = order[i : i + args.batch_size]
            loss = nn.functional.mse_loss(model(x[idx]).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x).squeeze(1) - y) ** 2).mean())


def run_optuna(data: tn.data.Data, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    (xt, yt), (xv, yv) = data.train.tensors, data.val.tensors
    assert data.test is not None
    xs, ys = data.test.tensors

    def objective(trial: Any) -> float:
        return mse(train(suggest(trial), xt, yt, seed + trial.number, args), xv, yv)

    start = time.perf_counter()
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    with torch.random.fork_rng(devices=[]):
        study.optimize(objective, timeout=args.budget)
        searched = time.perf_counter() - start
        best = study.best_trial
        params = suggest(optuna.trial.FixedTrial(best.params))
        model = train(params, torch.cat([xt, xv]), torch.cat([yt, yv]), seed + best.number,
                      args)
    test = mse(model, xs, ys)
    return {"trials": len(study.trials), "search_s": searched,
            "total_s": time.perf_counter() - start, "val_mse": best.value,
            "arch": best.params, "test_mse": test,
            "test_r2": 1 - test * len(ys) / float(((ys - ys.mean()) ** 2).sum())}


# -- floors ---------------------------------------------------------------------------------------
def floors(data: tn.data.Data) -> dict[str, float]:
    """Test MSE (standardized) of the training mean and of least squares on train+val."""
    from sklearn.linear_model import LinearRegression

    assert data.test is not None
    x = torch.cat([data.train.tensors[0], data.val.tensors[0]]).numpy()
    y = torch.cat([data.train.tensors[1], data.val.tensors[1]]).numpy()
    xs, ys = (t.numpy() for t in data.test.tensors)
    linear = LinearRegression().fit(x, y).predict(xs)
    return {"mean_mse": float(np.mean((ys - data.train.tensors[1].numpy().mean()) ** 2)),
            "linear_mse": float(np.mean((ys - linear) ** 2))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60.0, help="search seconds per tool")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "regression_diabetes.json")
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 s, 5 epochs")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget, args.epochs = 1, 5.0, 5
    quiet()
    torch.set_num_threads(1)
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # torch's first optimizer imports dynamo
    tn.data.load("diabetes")  # and the first load scikit-learn: neither tool pays for them
    print(machine_note())
    print(f"torchnas 'auto' = {tn.strategies.create('auto').name}")
    rows: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        data = tn.data.load("diabetes", seed=seed)  # the split (and the standardization) per seed
        scale = target_scale(seed)
        runs: dict[str, dict[str, Any]] = {}
        tools = [("torchnas", run_torchnas), ("optuna:tpe", run_optuna)]
        for name, run in tools if seed % 2 == 0 else tools[::-1]:
            runs[name] = run(data, seed, args)
        base = floors(data)
        row = {"seed": seed, "scale": scale, **{f"{k}_rmse": math.sqrt(v) * scale
                                                 for k, v in base.items()}}
        for name, found in runs.items():
            found["test_rmse"] = math.sqrt(found["test_mse"]) * scale
            row[name] = found
        rows.append(row)
        print(f"seed {seed}: test RMSE torchnas {runs['torchnas']['test_rmse']:.2f} "
              f"({runs['torchnas']['trials']} trials), Optuna TPE "
              f"{runs['optuna:tpe']['test_rmse']:.2f} ({runs['optuna:tpe']['trials']} trials); "
              f"least squares {row['linear_mse_rmse']:.2f}, the mean {row['mean_mse_rmse']:.2f}",
              flush=True)
    print(report(rows))
    print(machine_note())
    write_result(args, {"rows": rows, "summary": summary(rows)})


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("torchnas", "optuna:tpe"):
        out[name] = {key: mean_se([r[name][key] for r in rows])
                     for key in ("test_rmse", "test_r2", "trials", "search_s", "total_s")}
    ratios = [r["torchnas"]["test_rmse"] / r["optuna:tpe"]["test_rmse"] for r in rows]
    out["rmse_ratio"] = mean_se(ratios)
    out["linear_rmse"] = mean_se([r["linear_mse_rmse"] for r in rows])
    out["mean_rmse"] = mean_se([r["mean_mse_rmse"] for r in rows])
    return out


def report(rows: list[dict[str, Any]]) -> str:
    body = []
    for name in ("torchnas", "optuna:tpe"):
        rmse = [r[name]["test_rmse"] for r in rows]
        body.append([name, fmt_mean_se(rmse), fmt_mean_se([r[name]["test_r2"] for r in rows], 3),
                     fmt_mean_se([r[name]["trials"] for r in rows], 1),
                     ratio(mean_se(rmse)[0], mean_se([r["optuna:tpe"]["test_rmse"]
                                                      for r in rows])[0])])
    for label, key in (("least squares", "linear_mse_rmse"), ("training mean", "mean_mse_rmse")):
        rmse = [r[key] for r in rows]
        body.append([label, fmt_mean_se(rmse), "", "",
                     ratio(mean_se(rmse)[0], mean_se([r["optuna:tpe"]["test_rmse"]
                                                      for r in rows])[0])])
    per_seed = [r["torchnas"]["test_rmse"] / r["optuna:tpe"]["test_rmse"] for r in rows]
    return (table(["pick", "test RMSE", "test R^2", "trials", "/ Optuna"], body)
            + f"\nper-seed ratio torchnas / Optuna: {fmt_mean_se(per_seed, 3)} "
            f"({sum(v < 1 for v in per_seed)} of {len(per_seed)} seeds below 1)")


if __name__ == "__main__":
    main()
