"""Editing baselines that only remap output intensity: the weight edit renders what it claims, the fits are exact."""

import argparse
import json

import pytest
import torch

from core.bench import inr_edit_baselines
from core.bench.inr_edit_baselines import (
    affine_output_edit,
    best_last_layer,
    fit_affine,
    fit_pointwise_map,
    output_affine,
    per_image_affine,
)
from core.errors import ArchitectureError
from core.network.spec import Activation, Architecture, Linear
from core.tasks.edit import best_affine_per_image, intensity_only_mse, render

DIGITS = "assets/zoos/digits-inr"


@pytest.fixture
def zoo(digits_inr_zoo):
    return digits_inr_zoo


def test_affine_output_edit_renders_a_times_f_plus_b(zoo):
    architecture, flat = zoo.flat(zoo.split_indices("test")[:16])
    flat = flat.double()
    g = torch.Generator().manual_seed(0)
    for a, b in ((0.5, -0.1), (2.0, 0.3), (-1.0, 0.0), *torch.randn(3, 2, generator=g, dtype=torch.float64).tolist()):
        edited = affine_output_edit(architecture, flat, a, b)
        assert torch.allclose(render(architecture, edited, 8), a * render(architecture, flat, 8) + b, atol=1e-12)
        # only the last layer's weight and bias change
        changed = (edited != flat).any(0).nonzero().flatten()
        assert changed.numel() and changed.min() >= flat.shape[1] - (16 + 1)
    assert torch.equal(affine_output_edit(architecture, flat, 1.0, 0.0), flat)


def test_affine_output_edit_refuses_networks_it_cannot_edit():
    architecture = Architecture(ops=(Linear("a", 2, 4), Activation("sine", w0=30.0), Linear("b", 4, 1),
                                     Activation("tanh")), input_shape=(2,))
    with pytest.raises(ArchitectureError, match="ends in a linear layer"):
        affine_output_edit(architecture, torch.zeros(1, architecture.num_parameters), 2.0, 0.0)
    no_bias = Architecture(ops=(Linear("a", 2, 4), Activation("sine", w0=30.0), Linear("b", 4, 1, bias=False)),
                           input_shape=(2,))
    with pytest.raises(ArchitectureError, match="bias"):
        affine_output_edit(no_bias, torch.zeros(1, no_bias.num_parameters), 2.0, 0.0)


def test_best_last_layer_recovers_any_last_layer_and_nothing_beyond(zoo):
    architecture, flat = zoo.flat(zoo.split_indices("test")[:8])
    other = flat.double().clone()
    other[:, -17:] = torch.randn(8, 17, generator=torch.Generator().manual_seed(3), dtype=torch.float64)  # 16 + bias
    target = render(architecture, other, 8)
    assert torch.allclose(best_last_layer(architecture, flat, target), target, atol=1e-8)
    # a change of an earlier layer is not a last-layer edit: the fit misses it
    moved = flat.double().clone()
    moved[:, :32] *= 1.5  # the first layer's weights
    target = render(architecture, moved, 8)
    assert ((best_last_layer(architecture, flat, target) - target) ** 2).mean() > 1e-4


def test_fits_recover_affine_and_pointwise_targets():
    images = torch.rand(50, 64, generator=torch.Generator().manual_seed(1))
    assert fit_affine(images, 2 * images - 0.3) == pytest.approx((2.0, -0.3), abs=1e-6)
    scale = torch.linspace(0.5, 1.5, 50)[:, None]
    assert torch.allclose(best_affine_per_image(images, scale * images + 0.1), scale * images + 0.1, atol=1e-6)
    one = images[:1].view(1, 8, 8)  # one image, as the editor's results hold it
    assert float(intensity_only_mse(one, 3 * one + 1)[0]) == pytest.approx(0, abs=1e-10)
    target = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(2))
    assert 0 < float(intensity_only_mse(one, target)[0]) <= float(((one - target) ** 2).mean())
    mapping = fit_pointwise_map(images, images ** 2, bins=256)
    assert ((mapping(images) - images ** 2) ** 2).mean() < 1e-4 < ((images - images ** 2) ** 2).mean()


def test_the_oracle_bounds_the_weight_edit_and_both_beat_identity_on_erosion(zoo):
    oracle, weights = per_image_affine(zoo, "erode"), output_affine(zoo, "erode")
    assert 0 < oracle <= weights + 1e-4 < 1


def test_bench_command_prints_every_baseline_per_edit(capsys):
    parser = argparse.ArgumentParser()
    inr_edit_baselines.add_arguments(parser)
    assert inr_edit_baselines.run(parser.parse_args(["--zoo", DIGITS, "--edits", "dilate", "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["mse_ratio"]) == {"dilate"}
    assert set(out["mse_ratio"]["dilate"]) == {"output-affine", "per-image-affine", "pointwise-map", "last-layer"}
    assert all(0 < r < 1 for r in out["mse_ratio"]["dilate"].values())
