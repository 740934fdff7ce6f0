"""Generalisation prediction across architectures: the Wild Park split, group metrics, the baselines, the bench."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from core.baselines import FlatMLP, StatNNAny, architecture_free_statistics
from core.tasks.generalization import cross_architecture_zoos, group_metrics
from core.zoo import build_cnn_zoo, small_cnn_architecture, wild_architecture
from core.zoo.images import load_images


@pytest.fixture(scope="module")
def zoos(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("gen")
    x, y = load_images("digits", limit=100)
    np.savez(d / "digits.npz", images=x.numpy(), labels=y.numpy())
    base = build_cnn_zoo(d / "base", images=d / "digits.npz", count=6, max_epochs=1, sweep="full", checkpoints=2,
                         workers=1, progress=False)
    wild = build_cnn_zoo(d / "wild", images=d / "digits.npz", count=12, wild=True, nets_per_arch=2, max_epochs=1,
                         workers=1, progress=False)
    return base.dir, wild.dir


def test_group_metrics_match_scipy_within_each_group() -> None:
    rng = np.random.default_rng(0)
    actual = rng.random(40)
    predicted = actual + rng.normal(0, 0.3, 40)
    groups = np.repeat(["a", "b"], 20)
    m = group_metrics(predicted, actual, groups)
    within = [kendalltau(predicted[groups == g], actual[groups == g]).statistic for g in "ab"]
    assert m["kendall_tau"] == pytest.approx(kendalltau(predicted, actual).statistic)
    assert m["tau_within"] == pytest.approx(np.mean(within)) and m["groups"] == 2
    assert group_metrics(actual, actual, groups)["r2_within"] == pytest.approx(1.0)


def test_metrics_of_one_network_are_nan_without_library_warnings() -> None:
    """A validation split of one network (a tiny zoo) has no τ or R²: NaN, without scipy's or sklearn's warnings;
    two or more networks give the libraries' values."""
    import warnings

    from sklearn.metrics import r2_score

    from core.tasks.generalization import GeneralizationTask, kendall_tau, r_squared

    task = GeneralizationTask()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = task.metrics(torch.tensor([0.4]), torch.tensor([0.7]))
    assert np.isnan(one["kendall_tau"]) and np.isnan(one["r2"]) and one["mse"] == pytest.approx(0.09)
    predicted, actual = np.array([0.1, 0.5, 0.3]), np.array([0.2, 0.6, 0.1])
    assert kendall_tau(predicted, actual) == pytest.approx(kendalltau(predicted, actual).statistic)
    assert r_squared(predicted, actual) == pytest.approx(r2_score(actual, predicted))


def test_unseen_architectures_never_enter_the_training_zoo(zoos, tmp_path: Path) -> None:
    base, wild = zoos
    train, unseen = cross_architecture_zoos(base, wild, tmp_path, holdout=0.34, seed=1)
    assert len(unseen.architectures) == 2 and not set(unseen.architectures) & set(train.architectures)
    assert len(train) + len(unseen) == 12 + 12
    assert set(unseen.table["split"]) == {"test"}
    # the base zoo's runs keep their one split each; the composed zoo points back to its source rows
    runs = train.table[train.table["group"].str.startswith("base-")]
    assert (runs.groupby("run_id")["split"].nunique() == 1).all()
    _, flat = train.flat([0])
    from core.zoo import Zoo

    source = Zoo.open(base)
    _, original = source.flat([int(train.table.loc[0, "source_index"])])
    assert torch.equal(flat, original)


def test_architecture_free_statistics_have_one_length_for_any_cnn() -> None:
    rng = np.random.default_rng(0)
    archs = [small_cnn_architecture("relu", 8), *(wild_architecture(rng, 8) for _ in range(4))]
    shapes = {architecture_free_statistics(a, torch.randn(3, a.num_parameters)).shape for a in archs}
    assert len(shapes) == 1 and next(iter(shapes))[0] == 3


def test_statnn_any_and_flat_mlp_learn_a_planted_signal() -> None:
    rng = np.random.default_rng(0)
    arch = small_cnn_architecture("tanh", 8)
    scale = torch.as_tensor(rng.uniform(0.1, 2.0, 200), dtype=torch.float32)
    flat = torch.randn(200, arch.num_parameters) * scale[:, None]  # the target: a function of the weight scale
    target = np.tanh(scale.numpy())
    tr, te = slice(0, 150), slice(150, 200)
    any_model = StatNNAny(0, max_iter=60).fit_groups([(arch, flat[tr])], target[tr])
    assert kendalltau(any_model.predict_groups([(arch, flat[te])]), target[te]).statistic > 0.8
    mlp = FlatMLP(0, hidden=(32,), max_iter=50).fit(flat[tr], target[tr])
    assert np.isfinite(mlp.predict(flat[te])).all()


def test_bench_reports_tau_on_unseen_architectures(zoos, tmp_path: Path) -> None:
    from core.bench import tasks as bench

    base, wild = zoos
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--tasks", "generalization", "--models", "ng-gnn", "--cnn-zoo", str(base),
                              "--wild-zoo", str(wild), "--holdout-archs", "0.34", "--epochs", "1", "--hidden", "8",
                              "--layers", "1", "--out", str(tmp_path / "bench")])
    assert bench.run(args) == 0
    import json

    results = json.loads((tmp_path / "bench" / "results.json").read_text())["results"]
    by_model = {r["model"]: r for r in results}
    row = by_model["ng-gnn"]  # on a zoo this small the test split holds a handful of networks: τ may be undefined
    assert -1 <= row["kendall_tau_unseen"] <= 1 and np.isfinite(row["r2_unseen"]), row
    assert {"value", "r2", "tau_within", "tau_within_unseen"} <= set(row)
    # statnn's trees may predict one constant on a zoo this small (τ undefined): its row must still be there
    assert {"kendall_tau_unseen", "r2_unseen"} <= set(by_model["statnn (architecture-free features)"])
    table = (tmp_path / "bench" / "table.md").read_text()
    assert "τ unseen" in table and "statnn (architecture-free features)" in table


def test_bench_runs_cnn_probe_features_with_early_stopping(zoos, tmp_path: Path) -> None:
    """`--probes N` reaches the generalization task's graph models (rows 'MODEL + N probes'); --patience is kept."""
    import json

    from core.bench import tasks as bench

    base, wild = zoos
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--tasks", "generalization", "--models", "ng-gnn", "--cnn-zoo", str(base), "--wild-zoo",
                              str(wild), "--probes", "4", "--patience", "1", "--epochs", "1", "--hidden", "8",
                              "--layers", "1", "--no-references", "--first-seed", "2",
                              "--out", str(tmp_path / "bench")])
    assert bench.run(args) == 0
    models = {r["model"] for r in json.loads((tmp_path / "bench" / "results.json").read_text())["results"]}
    assert models == {"ng-gnn + 4 probes"}  # no plain ng-gnn row, and --no-references: no statnn row
    config = json.loads((tmp_path / "bench" / "runs" / "generalization-ng-gnn-p4-s2" / "config.json").read_text())
    assert config["model_config"]["probes"] == 4 and config["train"]["patience"] == 1 and config["train"]["seed"] == 2



def test_bench_trains_a_fixed_architecture_model_once_per_group(tmp_path: Path) -> None:
    """nfn-hnp reads one architecture: on a zoo of two (relu, tanh) the bench trains one per group and pools their
    test predictions into one row; each run sees only its group's networks."""
    import json

    from core.bench import tasks as bench
    from core.zoo import Zoo
    from core.zoo.store import write_zoo

    gen = torch.Generator().manual_seed(0)
    archs = {fn: small_cnn_architecture(fn, 8, channels=3) for fn in ("relu", "tanh")}
    groups, rows, splits = {}, [], {}
    for g, (fn, arch) in enumerate(archs.items()):
        index = list(range(12 * g, 12 * g + 12))
        groups[fn] = (index, torch.randn(12, arch.num_parameters, generator=gen))
        rows += [{"index": i, "group": fn, "test_accuracy": float(torch.rand(1, generator=gen))} for i in index]
        splits.update({i: "train" if k < 8 else "val" if k < 10 else "test" for k, i in enumerate(index)})
    write_zoo(tmp_path / "zoo", generator="test", options={}, architectures=archs, groups=groups, rows=rows,
              splits_by_index=splits)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--tasks", "generalization", "--models", "nfn-hnp", "--cnn-zoo", str(tmp_path / "zoo"),
                              "--epochs", "1", "--hidden", "4", "--layers", "1", "--no-references",
                              "--out", str(tmp_path / "b")])
    assert bench.run(args) == 0
    (row,) = json.loads((tmp_path / "b" / "results.json").read_text())["results"]
    assert row["model"] == "nfn-hnp (one per architecture group)" and "error" not in row, row
    assert -1 <= row["value"] <= 1 and np.isfinite(row["r2"])  # pooled over the 4 test networks of both groups
    for group in archs:
        config = json.loads((tmp_path / "b" / "runs" / "generalization-nfn-hnp-s0" / group / "config.json").read_text())
        assert list(Zoo.open(config["zoo"]).architectures) == [group]
