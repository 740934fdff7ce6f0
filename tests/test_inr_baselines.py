"""The simple INR-classification baselines: they read a zoo, train on its train split and score its test split."""

import numpy as np
import pytest
import torch

from core.bench.inr_baselines import (
    flat_weight_logistic_regression,
    layer_statistics_classifier,
    pixel_nearest_neighbour,
    rendered_split,
    zoo_resolution,
)
from core.zoo.images import load_images

DIGITS = "assets/zoos/digits-inr"


@pytest.fixture
def zoo(digits_inr_zoo):
    return digits_inr_zoo


def test_renderings_are_the_fitted_images(zoo):
    images, labels = rendered_split(zoo, "test")
    rows = zoo.split_indices("test")
    x, y = load_images("digits")
    source = x[zoo.table["image_index"].to_numpy()[rows]]
    assert images.shape == (len(rows), 8, 8) and zoo_resolution(zoo) == 8
    assert np.array_equal(labels, y[zoo.table["image_index"].to_numpy()[rows]].numpy())
    psnr = -10 * torch.log10(((images - source) ** 2).flatten(1).mean(1))
    assert torch.allclose(psnr, torch.as_tensor(zoo.table["psnr"].to_numpy()[rows], dtype=psnr.dtype), atol=0.05)


def test_weight_baselines_give_accuracies(zoo):
    for baseline in (flat_weight_logistic_regression, layer_statistics_classifier):
        assert 0.0 <= baseline(zoo) <= 1.0


def test_bench_command_prints_every_baseline(capsys):
    import argparse
    import json

    from core.bench import inr_baselines

    parser = argparse.ArgumentParser()
    inr_baselines.add_arguments(parser)
    args = parser.parse_args(["--zoo", DIGITS, "--baselines", "pixel-logistic", "--json"])
    assert inr_baselines.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    # renderings of 8×8 digits are linearly separable to ~0.95
    assert set(out["results"]) == {"pixel-logistic"} and out["results"]["pixel-logistic"]["mean"] > 0.85


def test_pixel_nearest_neighbour_is_leave_one_out(zoo):
    images, labels = rendered_split(zoo, "test")
    d = torch.cdist(images.flatten(1).double(), images.flatten(1).double())
    d.fill_diagonal_(float("inf"))
    expected = float((labels[d.argmin(1).numpy()] == labels).mean())
    got = pixel_nearest_neighbour(zoo)
    assert got == pytest.approx(expected) and got > 0.8  # 1-NN on 8×8 digit renderings is strong
