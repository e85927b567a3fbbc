"""torchnas.integrations.hf with the real transformers on the CPU: a tiny BERT (built from a
config, no download) reports every epoch's evaluation into a real Study under ``val_`` names,
a pruned trial stops training, an evaluation without the objective stops the search."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

import torchnas as tn

transformers = pytest.importorskip("transformers")
tnh = pytest.importorskip("torchnas.integrations.hf")

PRUNED, COMPLETE, FAILED = tn.TrialState.PRUNED, tn.TrialState.COMPLETE, tn.TrialState.FAILED
VOCAB, LENGTH = 16, 6


def tiny_bert(hp: tn.HP) -> Any:
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=hp.choice("hidden", [8, 16]), num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=16, max_position_embeddings=LENGTH,
        num_labels=2)
    return transformers.BertForSequenceClassification(config)


def tokens(n: int = 64) -> tn.data.Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, VOCAB, (n, LENGTH), generator=g)
    y = (x[:, 0] >= VOCAB // 2).long()
    return tn.data.from_tensors((x[:48], y[:48]), (x[48:], y[48:]), num_classes=2)


class PruneAt(tn.schedulers.Scheduler):
    """Prunes every trial but the first at its first report."""

    name = "prune_at_1"

    def should_prune(self, trial: tn.FrozenTrial, trials: Mapping[int, tn.FrozenTrial]) -> bool:
        return trial.number > 0


def test_every_evaluation_is_reported_with_val_names_and_pruning_stops_training() -> None:
    data = tokens()
    study = tn.Study(objectives={"val_accuracy": "max"}, strategy="random", scheduler=PruneAt(),
                     seed=0)
    steps: list[int] = []

    def objective(hp: tn.HP) -> dict[str, float]:
        model = tiny_bert(hp)
        result = tnh.fit(model, data, hp, hp.trial, max_epochs=3, batch_size=16)
        steps.append(hp.trial.number)
        return result

    study.optimize(objective, trials=2)
    first, second = study.trials
    assert first.state is COMPLETE, first.error
    assert [s for s, _ in first.intermediate] == [1, 2, 3]
    assert set(first.intermediate[0][1]) == {"val_loss", "val_accuracy"}  # no speed, no epoch
    assert {"val_loss", "val_accuracy", "train_loss"} == set(first.metrics)
    assert second.state is PRUNED and [s for s, _ in second.intermediate] == [1]
    assert steps == [0]  # fit raised TrialPruned in the second trial


def test_the_callback_in_your_own_train_fn(tmp_path: Path) -> None:
    """The pattern docs/integrations.md shows: your Trainer, the callback, raise_if_pruned."""
    data = tokens()
    study = tn.Study(objectives={"val_loss": "min"}, strategy="random")

    def objective(hp: tn.HP) -> dict[str, float]:
        callback = tnh.TorchnasHFCallback(hp.trial, ["val_loss"])
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path), num_train_epochs=2, eval_strategy="epoch", save_strategy="no",
            report_to=[], use_cpu=True, disable_tqdm=True,
            learning_rate=hp.float("lr", 1e-4, 1e-2, log=True))
        trainer = transformers.Trainer(model=tiny_bert(hp), args=args, train_dataset=data.train,
                                       eval_dataset=data.val, data_collator=tnh.token_collator,
                                       callbacks=[callback])
        trainer.train()
        callback.raise_if_pruned()
        return callback.metrics

    study.optimize(objective, trials=1)
    (trial,) = study.trials
    assert trial.state is COMPLETE, trial.error
    assert [s for s, _ in trial.intermediate] == [1, 2] and "val_loss" in trial.metrics


def test_an_evaluation_without_the_objective_stops_the_search() -> None:
    data = tokens()
    study = tn.Study(objectives={"val_f1": "max"}, strategy="random")

    def objective(hp: tn.HP) -> dict[str, float]:
        return tnh.fit(tiny_bert(hp), data, hp, hp.trial, max_epochs=2, batch_size=16)

    with pytest.raises(tn.ConfigError) as info:
        study.optimize(objective, trials=3)
    assert type(info.value).__name__ == "TrainFnError"
    assert str(info.value) == (
        "the model BertForSequenceClassification's evaluation logged val_accuracy, val_loss; "
        "the search's objectives need val_f1: compute_metrics returning {'f1': ...} "
        "(reported as val_f1)")
    assert [t.state for t in study.trials] == [FAILED]


def test_val_metrics_names() -> None:
    evaluation = {"eval_loss": 0.5, "eval_accuracy": torch.tensor(0.75), "eval_runtime": 0.1,
                  "eval_samples_per_second": 9.0, "eval_steps_per_second": 1.0, "epoch": 1.0,
                  "test_loss": 0.2}
    assert tnh.val_metrics(evaluation) == {"val_loss": 0.5, "val_accuracy": 0.75,
                                           "test_loss": 0.2}
