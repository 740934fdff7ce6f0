"""The MNIST-5k CNN zoo: the full Small-CNN-Zoo sweep, several checkpoints per run, splits by run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main
from core.zoo import Zoo, ZooError, build_cnn_zoo, small_cnn_architecture
from core.zoo.cnn import checkpoint_steps, init_cnn, sample_hyperparameters, train_cnns
from core.zoo.images import load_images


def _few_images(tmp_path: Path, source: str, count: int) -> Path:
    """The first `count` images of a bundled source as an .npz: fast builds of full-size CNNs."""
    x, y = load_images(source, limit=count)
    path = tmp_path / f"{source}-{count}.npz"
    np.savez(path, images=x.numpy(), labels=y.numpy())
    return path


@pytest.fixture(scope="module")
def mnist300(tmp_path_factory) -> Path:
    return _few_images(tmp_path_factory.mktemp("mnist"), "mnist5k", 300)


def test_mnist_zoo_stores_each_run_at_several_checkpoints(tmp_path: Path, mnist300: Path) -> None:
    images = mnist300
    zoo = build_cnn_zoo(tmp_path / "z", images=images, count=6, sweep="full", checkpoints=3, max_epochs=2,
                        train_eval_limit=100, workers=1, progress=False)
    t = zoo.table
    assert len(zoo) == 18 and {a.input_shape for a in zoo.architectures.values()} == {(1, 28, 28)}
    assert sorted(t["run_id"].unique()) == list(range(6))
    for _, run in t.groupby("run_id"):
        assert run["split"].nunique() == 1                      # no run straddles two splits
        assert list(run["checkpoint"]) == [0, 1, 2]
        assert run["step"].is_monotonic_increasing and run["step"].iloc[-1] == run["train_steps"].iloc[0]
        gaps = np.diff(run["epoch"].to_numpy())
        assert np.all(gaps > 0) if run["train_steps"].iloc[0] >= 3 else np.all(gaps >= 0)
        assert {"dropout", "init_distribution", "optimiser"} <= set(run.columns)
    # the snapshots of one run are different networks
    longest = t.loc[t["train_steps"].idxmax(), "run_id"]
    _, flat = zoo.flat(t.index[t["run_id"] == longest].to_numpy())
    assert not torch.equal(flat[0], flat[2])


def test_last_checkpoint_equals_an_uncheckpointed_run(tmp_path: Path) -> None:
    x, y = load_images("digits", limit=300)
    x = x[:, None]
    arch = small_cnn_architecture("relu", 8)
    rng = np.random.default_rng(3)
    hp = [sample_hyperparameters(rng, 250, 2, "full") for _ in range(3)]
    for h, rate in zip(hp, (0.0, 0.2, 0.5)):  # dropout on for some networks: its masks must be reproducible too
        h["dropout"] = rate
    init = torch.stack([init_cnn(arch, i, h["init_scale"], h["init_distribution"]) for i, h in enumerate(hp)])
    args = (arch, init, hp, [0, 1, 2], x[:250], y[:250], x[250:], y[250:])
    once = train_cnns(*args)
    snapped = train_cnns(*args, checkpoints=3)
    assert snapped["params"].shape == (9, init.shape[1])
    assert torch.equal(snapped["params"][2::3], once["params"])
    assert torch.equal(snapped["test_accuracy"][2::3], once["test_accuracy"])
    assert torch.equal(snapped["step"].view(3, 3), checkpoint_steps([h["train_steps"] for h in hp], 3))


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_init_distributions_share_one_standard_deviation(distribution: str) -> None:
    arch = small_cnn_architecture("relu", 28, channels=64)
    flat = init_cnn(arch, 0, 0.5, distribution)
    w = flat[:64 * 9]  # conv.0 weights, fan_in 9
    assert abs(float(w.std()) / (0.5 * (2 / 9) ** 0.5) - 1) < 0.12
    if distribution != "normal":
        assert float(w.abs().max()) <= 0.5 * (2 / 9) ** 0.5 * 2.28  # bounded: √3 (uniform), 2/0.88 (truncated)


def test_basic_sweep_keeps_its_stream_and_fingerprint(tmp_path: Path) -> None:
    basic = sample_hyperparameters(np.random.default_rng(5), 1000, 16)
    full = sample_hyperparameters(np.random.default_rng(5), 1000, 16, "full")
    assert "dropout" not in basic and "init_distribution" not in basic
    images = _few_images(tmp_path, "digits", 200)
    zoo = build_cnn_zoo(tmp_path / "b", images=images, count=2, max_epochs=1, workers=1, progress=False)
    assert not {"sweep", "checkpoints"} & set(zoo.manifest["generator"]["options"])
    assert "run_id" not in zoo.table
    assert full["init_distribution"] in ("normal", "uniform", "truncated_normal")


def test_cli_builds_a_checkpointed_zoo_and_refuses_bad_options(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    images = str(_few_images(tmp_path, "digits", 200))
    assert main(["zoo", "build", "cnn", "--images", images, "--count", "3", "--max-epochs", "1", "--sweep", "full",
                 "--checkpoints", "2", "--workers", "1", "--out", str(out)]) == 0
    zoo = Zoo.open(out)
    assert len(zoo) == 6 and zoo.manifest["generator"]["options"]["checkpoints"] == 2
    with pytest.raises(ZooError, match="checkpoints"):
        build_cnn_zoo(tmp_path / "bad", images="digits", count=2, checkpoints=0, progress=False)
    with pytest.raises(ZooError, match="sweep"):
        build_cnn_zoo(tmp_path / "bad", images="digits", count=2, sweep="huge", progress=False)


def test_bench_zoo_measures_a_checkpointed_cnn_zoo(mnist300: Path, capsys) -> None:
    import argparse
    import json

    from core.bench import zoo as bench_zoo

    parser = argparse.ArgumentParser()
    bench_zoo.add_arguments(parser)
    images = str(mnist300)
    args = parser.parse_args(["--inrs", "0", "--cnns", "2", "--cnn-images", images, "--cnn-sweep", "full",
                              "--cnn-checkpoints", "3", "--cnn-max-epochs", "1", "--workers", "1", "--json"])
    assert bench_zoo.run(args) == 0
    cnn = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cnn"]
    assert cnn["count"] == 6 and cnn["runs"] == 2
    assert cnn["projected_10000_s"] == pytest.approx(10000 * cnn["seconds"] / 6)


def test_full_sweep_draws_the_documented_ranges() -> None:
    """The full sweep's ranges (module docstring); its training length does not shrink with the fraction."""
    rng = np.random.default_rng(0)
    draws = [sample_hyperparameters(rng, 4000, 3, "full") for _ in range(600)]
    for h in draws:
        low, high = (5e-3, 0.3) if h["optimiser"] == "sgd" else (5e-4, 5e-2)
        assert low <= h["lr"] <= high and 1e-8 <= h["weight_decay"] <= 1e-2
        assert 0.1 <= h["train_fraction"] <= 1.0 and 0.2 <= h["init_scale"] <= 3.2 and 0.0 <= h["dropout"] <= 0.5
        assert h["train_steps"] == h["epochs"] * 4000 // 32 and h["epochs"] in (1, 2, 3)
    assert {h["optimiser"] for h in draws} == {"adam", "rmsprop", "sgd"}
    assert 0.4 < np.mean([h["dropout"] == 0 for h in draws]) < 0.6
    assert {h["epochs"] for h in draws if h["train_fraction"] < 0.2} == {1, 2, 3}


def test_full_sweep_zoo_is_identical_when_rebuilt(tmp_path: Path, mnist300: Path) -> None:
    """Same options → the same zoo, byte for byte (dropout masks, chunking by dropout included)."""
    kwargs = dict(images=mnist300, count=5, sweep="full", checkpoints=2, max_epochs=1, train_eval_limit=50,
                  chunk_size=2, workers=1, progress=False)
    a, b = build_cnn_zoo(tmp_path / "a", **kwargs), build_cnn_zoo(tmp_path / "b", **kwargs)
    assert (a.table["dropout"] > 0).any() and (a.table["dropout"] == 0).any()
    assert a.table.equals(b.table)
    for group in a.architectures:
        name = f"params-{group}.safetensors"
        assert (a.dir / name).read_bytes() == (b.dir / name).read_bytes()
    assert a.manifest["generator"]["options"]["sweep_version"] == 2
