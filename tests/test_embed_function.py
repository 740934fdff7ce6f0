"""`embed --objective function`: embeddings whose cosine similarities reproduce the correlations of the INRs'
renderings, learned from the weights alone (no labels, no views)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from core.data import GraphSet, Group
from core.models import build_model
from core.network import siren_architecture
from core.runs import train_run
from core.tasks import EmbedTask, TaskError
from core.tasks.edit import render
from core.tasks.embed import function_similarity_loss
from core.training import TrainConfig, Trainer

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_the_loss_is_zero_exactly_when_the_embedding_reproduces_the_correlations() -> None:
    images = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    exact = F.normalize(images - images.mean(1, keepdim=True), dim=-1) * 3.0  # any positive scale: cosines only
    assert function_similarity_loss(exact, images) < 1e-10
    other = torch.randn(6, 16, generator=torch.Generator().manual_seed(1))
    assert function_similarity_loss(other, images) > 0.05
    # a constant rendering has no correlation with anything; the loss stays finite
    images[0] = 0.7
    assert torch.isfinite(function_similarity_loss(other, images))


def _two_prototype_inrs(n: int = 32) -> tuple[GraphSet, torch.Tensor]:
    """SIRENs near one of two random prototypes (label = which one): two clusters of functions."""
    arch = siren_architecture(hidden=(8, 8))
    gen = torch.Generator().manual_seed(3)
    prototypes = torch.randn(2, arch.num_parameters, generator=gen) * 0.3
    labels = torch.arange(n) % 2
    flat = prototypes[labels] + 0.03 * torch.randn(n, arch.num_parameters, generator=gen)
    return GraphSet([Group(arch, flat, torch.arange(n), labels)]), flat


def test_training_reproduces_the_functions_geometry() -> None:
    data, flat = _two_prototype_inrs()
    task = EmbedTask(dim=8, objective="function", resolution=8)
    torch.manual_seed(0)
    model = build_model("ng-gnn", out_dim=8, edge_dim=1, hidden=16, layers=2)
    trainer = Trainer(task, model, TrainConfig(epochs=25, batch_size=16, lr=5e-3, patience=0), progress=False)
    before = trainer.evaluate(data)["loss"]
    trainer.fit(data)
    after = trainer.evaluate(data)
    assert after["loss"] < 0.5 * before
    assert after["knn_accuracy"] == 1.0
    # the loss is measured against the INRs' own renderings at the task's resolution
    batch = next(data.batches(len(flat)))
    model.eval()
    with torch.no_grad():
        loss, z = task.step(model, batch)
        expected = function_similarity_loss(model(batch.graph), render(batch.architecture, batch.flat, 8))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(len(z)))


def test_function_changing_transforms_redraw_the_targets_from_the_transformed_inrs() -> None:
    """With `train --augment SPEC` the loss compares the transformed INRs' own renderings (the stored INRs'
    renderings would be stale targets): a translated, rotated batch's loss equals the loss against its renderings and
    not the loss against the untransformed ones."""
    from core.zoo.inr_augment import INRAugment

    data, flat = _two_prototype_inrs(8)
    task = EmbedTask(dim=8, objective="function", resolution=8)
    assert task.function_augmentation and not EmbedTask().function_augmentation
    torch.manual_seed(0)
    model = build_model("ng-gnn", out_dim=8, edge_dim=1, hidden=16, layers=2).eval()
    augment = INRAugment(translate=0.25, rotate=45.0)
    batch = next(data.batches(8, augment=augment, generator=torch.Generator().manual_seed(0)))
    assert batch.augmented and not torch.equal(batch.flat, flat)
    with torch.no_grad():
        loss, _ = task.step(model, batch)
        z = model(batch.graph)
        transformed = function_similarity_loss(z, render(batch.architecture, batch.flat, 8))
        stored = function_similarity_loss(z, render(batch.architecture, flat, 8))
    torch.testing.assert_close(loss, transformed)
    assert (loss - stored).abs() > 1e-4


def test_a_function_embedding_trains_with_weight_transforms_and_records_them(tmp_path) -> None:
    metrics = train_run("embed", "ng-gnn", ASSETS / "zoos" / "digits-inr", tmp_path / "run",
                        train=TrainConfig(epochs=1, batch_size=64), task_options={"objective": "function"},
                        model_overrides={"hidden": 8, "layers": 1}, augment="ng", progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["inr_augment"]["translate"] == 0.25 and config["inr_augment"]["rotate"] == 45.0
    assert 0.0 <= metrics["test"]["knn_accuracy"] <= 1.0


def test_options_round_trip_and_bad_combinations_are_refused() -> None:
    task = EmbedTask(objective="function", resolution=28)
    again = EmbedTask(**task.options())
    assert (again.objective, again.resolution) == ("function", 28)
    assert EmbedTask().objective == "contrastive"  # runs saved before the option keep their loss
    with pytest.raises(TaskError, match="objective"):
        EmbedTask(objective="triplet")
    with pytest.raises(TaskError, match="views"):
        EmbedTask(objective="function", views="ng")


def test_cnn_zoos_are_refused_before_anything_is_written(tmp_path) -> None:
    with pytest.raises(TaskError, match="INRs"):
        train_run("embed", "ng-gnn", ASSETS / "zoos" / "cnn-digits", tmp_path / "run", train=TrainConfig(epochs=1),
                  task_options={"objective": "function"}, model_overrides={"hidden": 8, "layers": 1},
                  progress=False)
    assert not (tmp_path / "run").exists()


def test_the_resolution_comes_from_the_zoo(tmp_path) -> None:
    metrics = train_run("embed", "ng-gnn", ASSETS / "zoos" / "digits-inr", tmp_path / "run",
                        train=TrainConfig(epochs=1, batch_size=64), task_options={"objective": "function"},
                        model_overrides={"hidden": 8, "layers": 1}, progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task_options"]["objective"] == "function"
    assert config["task_options"]["resolution"] == 8  # scikit-learn digits are 8 × 8
    assert 0.0 <= metrics["test"]["knn_accuracy"] <= 1.0


def test_the_cli_notes_when_the_function_objective_runs_without_probes(tmp_path, capsys) -> None:
    from core.cli import main

    common = ["train", "embed", "--zoo", str(ASSETS / "zoos" / "digits-inr"), "--model", "ng-gnn", "--objective",
              "function", "--hidden", "8", "--layers", "1", "--epochs", "1", "--batch-size", "64", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "bare")]) == 0
    assert "without probe features rarely learns" in capsys.readouterr().err
    assert main([*common, "--probes", "2", "--out", str(tmp_path / "probed")]) == 0
    assert "probe features" not in capsys.readouterr().err
