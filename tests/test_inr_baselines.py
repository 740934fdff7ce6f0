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


def test_baselines_score_the_test_zoo_when_one_is_given(tmp_path, monkeypatch, capsys):
    """`--test-zoo` (e.g. a `zoo refit` of the test images): train on the zoo's train split, score the other's test."""
    import argparse
    import json

    from core.bench import inr_baselines
    from core.zoo import Zoo, ZooError, refit_held_out
    from tests.zoo_helpers import tiny_digits_inr_zoo

    src = Zoo.open(tiny_digits_inr_zoo(tmp_path / "src", 40))
    refit = refit_held_out(src.dir, tmp_path / "refit", "test", views=3, seed=7, workers=1, progress=False)
    assert pixel_nearest_neighbour(src, test_zoo=refit) == pytest.approx(pixel_nearest_neighbour(refit))
    read = []
    real = {"rendered": inr_baselines.rendered_split, "weights": inr_baselines._weights_split}
    monkeypatch.setattr(inr_baselines, "rendered_split", lambda z, s, *a: read.append((z, s)) or real["rendered"](z, s))
    monkeypatch.setattr(inr_baselines, "_weights_split", lambda z, s: read.append((z, s)) or real["weights"](z, s))
    for name, baseline in inr_baselines.INR_CLASSIFICATION_BASELINES.items():
        read.clear()
        assert 0.0 <= baseline(src, 0, refit) <= 1.0
        assert ((refit, "test") in read) and (src, "test") not in read, name
        assert name == "pixel-1nn" or (src, "train") in read
    parser = argparse.ArgumentParser()
    inr_baselines.add_arguments(parser)
    args = parser.parse_args(["--zoo", str(src.dir), "--test-zoo", str(refit.dir), "--baselines", "pixel-1nn",
                              "--json"])
    assert inr_baselines.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test_zoo"] == str(refit.dir)
    assert out["results"]["pixel-1nn"]["mean"] == pytest.approx(pixel_nearest_neighbour(refit))

    val = refit_held_out(src.dir, tmp_path / "val-refit", "val", views=1, seed=8, workers=1, progress=False)
    with pytest.raises(ZooError, match="no test split"):
        inr_baselines.run(parser.parse_args(["--zoo", str(src.dir), "--test-zoo", str(val.dir)]))
