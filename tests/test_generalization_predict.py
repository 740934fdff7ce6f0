"""`predict` on a CNN checkpoint with a generalization run: accuracy ± ensemble spread, nearest zoo networks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.io.export import save_network
from core.runs import load_run, train_run
from core.training.trainer import TrainConfig
from core.zoo import build_cnn_zoo
from core.zoo.images import load_images


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, list[Path], Path]:
    d = tmp_path_factory.mktemp("predict")
    x, y = load_images("digits", limit=100)
    np.savez(d / "digits.npz", images=x.numpy(), labels=y.numpy())
    zoo = build_cnn_zoo(d / "zoo", images=d / "digits.npz", count=16, max_epochs=1, workers=1, progress=False)
    dirs = []
    for seed in (0, 1):
        train_run("generalization", "ng-gnn", zoo.dir, d / f"run{seed}", progress=False,
                  train=TrainConfig(epochs=1, batch_size=8, seed=seed), model_overrides={"hidden": 8, "layers": 1})
        dirs.append(d / f"run{seed}")
    member = d / "net3.safetensors"
    save_network(zoo.network(3), member)
    return zoo.dir, dirs, member


def test_predict_reports_the_ensemble_mean_spread_and_nearest_networks(runs, capsys) -> None:
    zoo, (run0, run1), member = runs
    assert main(["predict", str(run0), str(member), "--ensemble", str(run1), "--neighbours", "3", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    from core.io import load_network

    net = load_network(member)
    each = [float(load_run(r).predict([net])[0]) for r in (run0, run1)]
    assert row["predicted_accuracy"] == pytest.approx(np.mean(each), abs=1e-6)
    assert row["ensemble_std"] == pytest.approx(np.std(each), abs=1e-6) and row["ensemble_size"] == 2
    mse = json.loads((run0 / "metrics.json").read_text())["test"]["mse"]
    assert row["test_rmse"] == pytest.approx(mse ** 0.5)
    nearest = row["nearest"]
    assert len(nearest) == 3 and nearest[0]["index"] == 3 and nearest[0]["distance"] == pytest.approx(0, abs=1e-4)
    assert [n["distance"] for n in nearest] == sorted(n["distance"] for n in nearest)


def test_predict_prints_a_readable_report(runs, capsys) -> None:
    _, (run0, _), member = runs
    assert main(["predict", str(run0), str(member), "--neighbours", "2"]) == 0
    out = capsys.readouterr().out
    assert "predicted test accuracy" in out and "test-split RMSE" in out and "±" not in out
    assert out.count("nearest zoo network") == 2


def test_nearest_networks_of_an_unseen_architecture_are_ranked_not_tied(runs, tmp_path: Path, capsys) -> None:
    """A network deeper and wider than every zoo network differs in features constant over the zoo (depth, width …);
    they keep their own units, so its distances stay ordered (divided by a zero spread they were all ~1e8 and tied)."""
    import torch

    from core.network.spec import Network
    from core.zoo import Zoo, small_cnn_architecture

    zoo, (run0, _), member = runs
    arch = small_cnn_architecture("relu", 8, channels=6, layers=4)
    assert arch not in Zoo.open(zoo).architectures.values()
    other = tmp_path / "other.safetensors"
    save_network(Network.from_flat(arch, torch.randn(arch.num_parameters, generator=torch.Generator().manual_seed(0))
                                   * 0.3), other)
    assert main(["predict", str(run0), str(other), str(member), "--neighbours", "4", "--json"]) == 0
    unseen, seen = json.loads(capsys.readouterr().out)
    assert unseen["architecture_in_zoo"] is False and seen["architecture_in_zoo"] is True
    distances = [n["distance"] for n in unseen["nearest"]]
    assert max(distances) < 100 and len(set(np.round(distances, 6))) == 4
    assert main(["predict", str(run0), str(other), "--neighbours", "1"]) == 0
    assert "not among the run's zoo's" in capsys.readouterr().out


def test_an_ensemble_member_of_another_task_is_refused_by_name(runs, tmp_path: Path, capsys) -> None:
    zoo, (run0, _), member = runs
    other = tmp_path / "embed"
    train_run("embed", "ng-gnn", zoo, other, progress=False, train=TrainConfig(epochs=1, batch_size=8),
              model_overrides={"hidden": 8, "layers": 1})
    assert main(["predict", str(run0), str(member), "--ensemble", str(other)]) != 0
    err = capsys.readouterr().err
    assert "its task is embed; an ensemble needs runs of one task" in err and "internal error" not in err
    # and --ensemble on a run of another task is refused, not silently ignored
    assert main(["predict", str(other), str(member), "--ensemble", str(run0)]) != 0
    err = capsys.readouterr().err
    assert "its task is embed; an ensemble needs runs of one task" in err, err
