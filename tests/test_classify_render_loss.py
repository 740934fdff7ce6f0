"""`inr-classify --render-loss λ`: the head also predicts each INR's rendering, drawn from the batch's own
weights; predictions and metrics read only the logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from core.data import GraphSet, Group
from core.network import siren_architecture
from core.runs import load_run, train_run
from core.tasks import ClassifyTask, TaskError
from core.tasks.edit import render
from core.training import TrainConfig
from core.zoo import Zoo

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def _batch(n: int = 6):
    arch = siren_architecture(hidden=(8, 8))
    gen = torch.Generator().manual_seed(0)
    flat = 0.3 * torch.randn(n, arch.num_parameters, generator=gen)
    labels = torch.arange(n) % 3
    return next(GraphSet([Group(arch, flat, torch.arange(n), labels)]).batches(n)), arch, flat, labels


def test_the_loss_adds_the_rendering_error_of_the_batchs_own_inrs() -> None:
    batch, arch, flat, labels = _batch()
    task = ClassifyTask(num_classes=3, render_loss=2.5, render_size=5)
    assert task.out_dim() == 3 + 25
    logits = torch.randn(len(flat), 3, generator=torch.Generator().manual_seed(1))
    exact = render(arch, flat, 5)
    ce = F.cross_entropy(logits, labels)
    # the exact rendering costs nothing beyond the cross-entropy …
    torch.testing.assert_close(task.loss(torch.cat([logits, exact], 1), batch), ce)
    # … and any other prediction costs λ times its mean squared error
    guess = exact + 0.1
    torch.testing.assert_close(task.loss(torch.cat([logits, guess], 1), batch), ce + 2.5 * 0.01)
    # predictions are the class probabilities alone
    probs = task.predictions(torch.cat([logits, guess], 1), batch)
    torch.testing.assert_close(probs, logits.softmax(-1))


def test_without_the_option_the_task_is_unchanged() -> None:
    batch, _, flat, labels = _batch()
    task = ClassifyTask(num_classes=3)
    assert task.out_dim() == 3
    assert task.options() == {"label_column": "label", "num_classes": 3}  # saved configs keep their keys
    logits = torch.randn(len(flat), 3)
    torch.testing.assert_close(task.loss(logits, batch), F.cross_entropy(logits, labels))


def test_bad_weights_and_non_image_zoos_are_refused(tmp_path) -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(TaskError, match="render_loss"):
            ClassifyTask(render_loss=bad)
    with pytest.raises(TaskError, match="image INRs"):
        train_run("inr-classify", "ng-gnn", ASSETS / "zoos" / "cnn-digits", tmp_path / "run",
                  train=TrainConfig(epochs=1), task_options={"label_column": "test_accuracy", "render_loss": 1.0},
                  model_overrides={"hidden": 8, "layers": 1}, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_trained_with_it_records_the_option_and_predicts_classes(tmp_path) -> None:
    zoo = ASSETS / "zoos" / "digits-inr"
    metrics = train_run("inr-classify", "ng-gnn", zoo, tmp_path / "run", train=TrainConfig(epochs=1, batch_size=64),
                        task_options={"render_loss": 1.0}, model_overrides={"hidden": 8, "layers": 1},
                        progress=False)
    options = json.loads((tmp_path / "run" / "config.json").read_text())["task_options"]
    assert (options["render_loss"], options["render_size"]) == (1.0, 8)  # digits INRs are fitted at 8 × 8
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    run = load_run(tmp_path / "run")
    probs = run.predict([Zoo.open(zoo).network(0)], "cpu")
    assert probs.shape == (1, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(1))
