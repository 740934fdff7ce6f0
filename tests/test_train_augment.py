"""`train --augment SPEC`: INR weight transforms applied to training batches, recorded in the run's config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.network.spec import unflatten_params
from core.runs import resolve_augment, train_run
from core.tasks import TaskError
from core.training.trainer import TrainConfig
from core.zoo import Zoo
from core.zoo.inr_augment import NG_PRESET, AugmentError, INRAugment
from tests.zoo_helpers import tiny_digits_inr_zoo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    return tiny_digits_inr_zoo(tmp_path_factory.mktemp("zoo") / "digits", 30)


def test_resolve_augment():
    assert resolve_augment(None, True) == (True, None) and resolve_augment(None, False) == (False, None)
    assert resolve_augment(True, False) == (True, None) and resolve_augment(False, True) == (False, None)
    assert resolve_augment("ng", False) == (False, NG_PRESET)
    assert resolve_augment("ng", True) == (True, NG_PRESET)  # the model's default symmetry transforms stay
    assert resolve_augment("symmetry,translate=0.1", False) == (True, INRAugment(translate=0.1))
    assert resolve_augment("symmetry", False) == (True, None)
    assert resolve_augment("none", False) == (False, None)
    assert resolve_augment("ng,nosymmetry", True) == (False, NG_PRESET)  # mlp with weight transforms only
    assert resolve_augment("nosymmetry", True) == (False, None)
    with pytest.raises(AugmentError, match="both"):
        resolve_augment("symmetry,nosymmetry", False)
    with pytest.raises(AugmentError):
        resolve_augment("ng,sheer=2", False)


def test_training_batches_are_augmented_and_the_settings_recorded(zoo, tmp_path, monkeypatch):
    calls = []
    original = INRAugment.__call__

    def spy(self, architecture, flat, generator=None):
        out = original(self, architecture, flat, generator)
        calls.append((flat.shape[0], bool(torch.equal(out, flat))))
        return out

    monkeypatch.setattr(INRAugment, "__call__", spy)
    cfg = TrainConfig(epochs=2, batch_size=8, patience=0)
    metrics = train_run("inr-classify", "ng-gnn", zoo, tmp_path / "run", train=cfg, augment="ng",
                        model_overrides={"hidden": 8, "layers": 1}, progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["inr_augment"] == NG_PRESET.to_dict() and config["augment"] is False
    n_train = 24  # 30 images split 0.8 / 0.1 / 0.1
    batches = [c for c in calls if c[0] > 1]  # calls[0] is the one-network check before training
    assert len(batches) == 2 * -(-n_train // 8) and sum(c[0] for c in batches) == 2 * n_train
    assert not any(unchanged for _, unchanged in batches)
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0


def test_function_changing_transforms_are_refused_where_targets_would_go_stale(zoo, tmp_path):
    """Contrastive embed's positives are the stored networks' images (it has its own --views): refused before
    anything is written."""
    with pytest.raises(TaskError, match="targets stale"):
        train_run("embed", "ng-gnn", zoo, tmp_path / "embed", train=TrainConfig(epochs=1), augment="noise=0.1",
                  model_overrides={"hidden": 8, "layers": 1}, progress=False)
    assert not (tmp_path / "embed" / "config.json").exists()


def test_augmented_edit_batches_get_targets_drawn_from_the_transformed_inrs(zoo):
    """inr-edit with function-changing transforms: each augmented batch's source and target are the edit of the
    transformed INR's own rendering (the stored ones belong to the untransformed INR); unaugmented batches keep the
    stored ones."""
    from core.data import graph_set_from_networks
    from core.tasks import build_task
    from core.tasks.edit import apply_edit, render

    task = build_task("inr-edit", edit="dilate", resolution=8)
    opened = Zoo.open(zoo)
    data = graph_set_from_networks([opened.network(i) for i in range(8)], task, grid_size=1)
    augment = INRAugment(translate=0.25, rotate=45.0)
    batch = next(data.batches(8, augment=augment, generator=torch.Generator().manual_seed(0)))
    assert batch.augmented
    source, target = task.source_and_target(batch)
    expected_source = render(batch.architecture, batch.flat.float(), 8)
    torch.testing.assert_close(source, expected_source)
    torch.testing.assert_close(target, apply_edit(expected_source.view(-1, 8, 8), "dilate").view(8, -1))
    assert (target - batch.extras["target"]).abs().max() > 0.05  # the stored target is the untransformed INR's

    plain = next(data.batches(8))
    assert not plain.augmented
    stored_source, stored_target = task.source_and_target(plain)
    assert stored_source is plain.extras["source"] and stored_target is plain.extras["target"]


def test_symmetry_transforms_keep_the_stored_edit_targets(zoo):
    """Permutations and sign flips keep each INR's function: such batches are not marked augmented, and their stored
    renderings equal the transformed INRs' own (so not redrawing them is exact). A chain with one function-changing
    step is marked."""
    from core.data import graph_set_from_networks, keeps_function, symmetry_augment
    from core.runs import _chain
    from core.tasks import build_task
    from core.tasks.edit import render

    task = build_task("inr-edit", edit="dilate", resolution=8)
    opened = Zoo.open(zoo)
    data = graph_set_from_networks([opened.network(i) for i in range(8)], task, grid_size=1)
    symmetry = symmetry_augment()
    batch = next(data.batches(8, augment=symmetry, generator=torch.Generator().manual_seed(0)))
    assert not batch.augmented
    assert not torch.allclose(batch.flat, next(data.batches(8)).flat)  # the weights did move
    source, _ = task.source_and_target(batch)
    assert source is batch.extras["source"]
    torch.testing.assert_close(render(batch.architecture, batch.flat.float(), 8), source, atol=1e-5, rtol=0)

    assert keeps_function(None) and keeps_function(symmetry) and keeps_function(INRAugment())
    assert not keeps_function(INRAugment(noise=0.1)) and not keeps_function(lambda a, f, g: f)
    assert not keeps_function(_chain([INRAugment(noise=0.1), symmetry])) and keeps_function(_chain([symmetry] * 2))
    chained = next(data.batches(8, augment=_chain([INRAugment(noise=0.1), symmetry]),
                                generator=torch.Generator().manual_seed(0)))
    assert chained.augmented


def test_an_editor_trains_with_function_changing_transforms(zoo, tmp_path):
    """`train inr-edit --augment ng`: runs end to end, records the transforms, scores unaugmented test INRs, and the
    run edits networks like any editor."""
    from core.runs import load_run

    metrics = train_run("inr-edit", "ng-gnn", zoo, tmp_path / "edit", train=TrainConfig(epochs=1, batch_size=8),
                        augment="ng", model_overrides={"hidden": 8, "layers": 1}, progress=False)
    config = json.loads((tmp_path / "edit" / "config.json").read_text())
    assert config["inr_augment"] == NG_PRESET.to_dict()
    assert metrics["test"]["identity_mse"] > 0 and np.isfinite(metrics["test"]["mse"])
    network = Zoo.open(zoo).network(0)
    [result] = load_run(tmp_path / "edit").edit([network])
    assert result["edited"].shape == result["target"].shape and np.isfinite(result["mse"])


def test_embed_views_are_refused_upfront_on_networks_that_are_not_inrs(tmp_path):
    """`embed --views` on a CNN zoo: the clear AugmentError before anything is written, not at the first batch."""
    cnn_zoo = Path(__file__).resolve().parents[1] / "assets" / "zoos" / "cnn-digits"
    with pytest.raises(AugmentError, match="coordinate"):
        train_run("embed", "ng-gnn", cnn_zoo, tmp_path / "embed", train=TrainConfig(epochs=1),
                  task_options={"views": "ng"}, model_overrides={"hidden": 8, "layers": 1}, progress=False)
    assert not (tmp_path / "embed").exists()


def test_cli_augment_values():
    from core.cli import train_cmd

    p = argparse.ArgumentParser()
    train_cmd.add_augment_arguments(p)
    assert p.parse_args([]).augment is None
    assert p.parse_args(["--augment"]).augment is True
    assert p.parse_args(["--augment", "ng,noise=0.05"]).augment == "ng,noise=0.05"
    assert p.parse_args(["--no-augment"]).augment is False


@pytest.mark.parametrize(("model", "symmetry"), [("nfn-np", False), ("mlp", True), ("ng-gnn", False)])
def test_default_symmetry_augmentation_per_model(zoo, tmp_path, model, symmetry):
    """nfn-np trains without symmetry transforms unless asked (they gain it nothing); mlp keeps them."""
    train_run("inr-classify", model, zoo, tmp_path / model, progress=False, train=TrainConfig(epochs=1, batch_size=8),
              model_overrides={"hidden": 8})
    config = json.loads((tmp_path / model / "config.json").read_text())
    assert config["augment"] is symmetry and config["inr_augment"] is None
    assert config["symmetry_kinds"] == (["permutation", "sign"] if symmetry else None)


def _sorted_magnitudes(arch, flat: torch.Tensor) -> list[torch.Tensor]:
    """Each parameter tensor's magnitudes, sorted per network: what permutations and sign flips leave unchanged."""
    return [v.abs().flatten(1).sort(-1).values for v in unflatten_params(arch, flat).values()]


def _check_training_transforms_keep_magnitudes(arch, flat: torch.Tensor, left_out: str) -> None:
    """Training augmentation moves the networks but keeps every magnitude; the left-out kind changes some."""
    from core.data import symmetry_augment
    from core.symmetry import apply_to_flat, random_element

    moved = symmetry_augment()(arch, flat, torch.Generator().manual_seed(0))
    assert not torch.equal(moved, flat)
    for after, before in zip(_sorted_magnitudes(arch, moved), _sorted_magnitudes(arch, flat)):
        torch.testing.assert_close(after, before)
    other = apply_to_flat(arch, flat, random_element(arch, kinds=(left_out,), batch=len(flat),
                                                     generator=torch.Generator().manual_seed(0)))
    assert any(not torch.allclose(after, before)
               for after, before in zip(_sorted_magnitudes(arch, other), _sorted_magnitudes(arch, flat)))


def test_training_symmetry_transforms_keep_the_zoos_biases_without_phase_shifts(zoo):
    """Permutations and sign flips only reorder and negate a sine INR's weights and biases; the periodic bias shifts
    that are also exact symmetries (kind 'phase') are left out of training augmentation: they move biases out of the
    zoo's distribution."""
    arch, flat = next(iter(Zoo.open(zoo).first_of_each_group()))
    _check_training_transforms_keep_magnitudes(arch, flat.double().repeat(16, 1), "phase")


def test_training_symmetry_transforms_keep_relu_weight_magnitudes():
    """On a ReLU CNN, training augmentation only permutes weights (ReLU admits no sign flips): every layer keeps its
    multiset of magnitudes. The positive neuron scalings that are also exact symmetries (kind 'scale', up to 100×)
    are left out: they move weights out of any trained zoo's distribution."""
    from core.zoo import small_cnn_architecture

    arch = small_cnn_architecture("relu", 8, channels=4)
    flat = torch.randn(16, arch.num_parameters, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _check_training_transforms_keep_magnitudes(arch, flat, "scale")


def test_contrastive_copy_of_a_relu_network_is_more_than_a_permutation():
    """The embed task's second copy keeps positive scales: a ReLU network admits no sign flips, so a permutation alone
    would give every graph model two identical inputs."""
    from core.tasks import build_task
    from core.zoo import small_cnn_architecture

    arch = small_cnn_architecture("relu", 8, channels=4)
    flat = torch.randn(8, arch.num_parameters, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    second = build_task("embed")._augment(arch, flat, torch.Generator().manual_seed(0))
    assert any(not torch.allclose(after, before)
               for after, before in zip(_sorted_magnitudes(arch, second), _sorted_magnitudes(arch, flat)))
