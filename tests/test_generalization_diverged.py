"""Networks that diverged in training (weights ~1e13, inf, NaN) in a generalisation zoo: listed, refused by
`train`, dropped and recorded by `bench tasks`, never read as NaN."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from core.tasks.base import TaskError
from core.tasks.generalization import GeneralizationTask, unusable_networks, without_unusable_networks
from core.zoo import Zoo, small_cnn_architecture
from core.zoo.store import write_zoo

DIVERGED = {3: 1e13, 5: float("nan"), 7: float("inf")}  # zoo index → what its weights hold


def write_relu_zoo(out: Path, count: int, edit: Callable[[torch.Tensor], None]) -> Path:
    """`count` random relu CNNs on 8×8 inputs (target: a function of the weight scale; splits 70 / 15 / 15 %), after
    `edit` changed their flat weights [count, P] in place."""
    arch = small_cnn_architecture("relu", 8, channels=4)
    gen = torch.Generator().manual_seed(0)
    scale = torch.rand(count, generator=gen) + 0.2
    flat = torch.randn(count, arch.num_parameters, generator=gen) * scale[:, None]
    edit(flat)
    rows = [{"index": i, "group": "relu", "test_accuracy": float(torch.sigmoid(scale[i] * 2 - 1))}
            for i in range(count)]
    splits = {i: "train" if i < 0.7 * count else "val" if i < 0.85 * count else "test" for i in range(count)}
    write_zoo(out, generator="test-relu", options={}, architectures={"relu": arch},
              groups={"relu": (list(range(count)), flat)}, rows=rows, splits_by_index=splits)
    return out


@pytest.fixture(scope="module")
def diverged_zoo(tmp_path_factory) -> Path:
    """40 random relu CNNs; networks 3, 5, 7 diverged."""
    def diverge(flat: torch.Tensor) -> None:
        flat[3] *= DIVERGED[3]
        flat[5, 10] = DIVERGED[5]
        flat[7, -1] = DIVERGED[7]

    return write_relu_zoo(tmp_path_factory.mktemp("diverged") / "zoo", 40, diverge)


def test_unusable_networks_lists_every_diverged_network_with_its_reason(diverged_zoo: Path) -> None:
    found = unusable_networks(Zoo.open(diverged_zoo), probes=4)
    assert [d["index"] for d in found] == sorted(DIVERGED)
    reasons = {d["index"]: d["reason"] for d in found}
    assert reasons[5] == reasons[7] == "non-finite weights" and reasons[3].startswith("weights up to")


def test_unusable_networks_of_some_rows_checks_only_those(diverged_zoo: Path) -> None:
    zoo = Zoo.open(diverged_zoo)
    rows = np.flatnonzero(zoo.table["index"].isin([2, 3, 4, 7]).to_numpy())
    assert [d["index"] for d in unusable_networks(zoo, probes=4, rows=rows)] == [3, 7]


def test_probe_activations_beyond_float32_are_found_even_with_moderate_weights(tmp_path: Path) -> None:
    """Weights of 1e3 (below the limit) through three relu convs and a linear layer: activations ~1e12."""
    arch = small_cnn_architecture("relu", 8, channels=4)
    flat = torch.full((2, arch.num_parameters), 1e3)
    flat[0] = 0.1
    rows = [{"index": i, "group": "relu", "test_accuracy": 0.5} for i in (0, 1)]
    write_zoo(tmp_path / "z", generator="test", options={}, architectures={"relu": arch},
              groups={"relu": ([0, 1], flat)}, rows=rows, splits_by_index={0: "train", 1: "test"})
    zoo = Zoo.open(tmp_path / "z")
    assert unusable_networks(zoo) == []  # its weights alone are fine
    found = unusable_networks(zoo, probes=3)
    assert [d["index"] for d in found] == [1] and found[0]["reason"].startswith("probe activations up to")


def test_training_refuses_a_zoo_with_diverged_networks_naming_them(diverged_zoo: Path, tmp_path: Path) -> None:
    """`train generalization` refuses it before anything is written."""
    from core.runs import train_run

    with pytest.raises(TaskError, match=r"3 network\(s\) that diverged.*relu#3.*relu#5.*relu#7.*bench tasks"):
        train_run("generalization", "ng-gnn", diverged_zoo, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_predictions_that_are_not_finite_raise_instead_of_a_nan_metric() -> None:
    with pytest.raises(TaskError, match="1 of 3 predictions are not finite"):
        GeneralizationTask().metrics(torch.tensor([0.1, float("nan"), 0.3]), torch.tensor([0.1, 0.2, 0.3]))


def test_dropping_keeps_every_other_network_and_its_split(diverged_zoo: Path, tmp_path: Path, capsys) -> None:
    kept, dropped = without_unusable_networks(diverged_zoo, tmp_path / "usable", probes=4, label="--cnn-zoo")
    assert [d["index"] for d in dropped] == sorted(DIVERGED)
    warning = capsys.readouterr().out
    assert "dropping 3 of 40 networks" in warning and "relu#3" in warning
    original = Zoo.open(diverged_zoo)
    assert len(kept) == 37 and sorted(set(kept.table["source_index"])) == [i for i in range(40) if i not in DIVERGED]
    assert list(kept.table["split"]) == [original.table["split"][i] for i in kept.table["source_index"]]
    _, flat = kept.flat(np.arange(len(kept)))
    assert torch.isfinite(flat).all()
    same, none = without_unusable_networks(tmp_path / "usable", tmp_path / "again")
    assert none == [] and same.dir == kept.dir  # a clean zoo is used as it is, not copied


def test_bench_drops_diverged_networks_and_records_them(diverged_zoo: Path, tmp_path: Path) -> None:
    from core.bench import tasks as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--tasks", "generalization", "--models", "ng-gnn", "--cnn-zoo", str(diverged_zoo),
                              "--probes", "4", "--epochs", "1", "--hidden", "8", "--layers", "1", "--no-references",
                              "--out", str(tmp_path / "bench")])
    assert bench.run(args) == 0
    report = json.loads((tmp_path / "bench" / "results.json").read_text())
    row = report["results"][0]
    assert "error" not in row and np.isfinite(row["value"]) and np.isfinite(row["r2"]), row
    assert [d["index"] for d in report["dropped_networks"]["cnn_zoo"]] == sorted(DIVERGED)
    assert "Dropped from every row" in (tmp_path / "bench" / "table.md").read_text()
