"""Adding a model or a task is one file: a toy model and a toy task, defined only here and registered with
their decorators, train, evaluate and predict through the unchanged command line (README, "Extending")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter

from core.cli import main
from core.models import MODELS, MetaNetwork, ModelConfig, register_model
from core.models.base import graph_count, graph_index
from core.options import Option
from core.tasks import TASKS, Task, register_task


@dataclass
class MeanPoolConfig(ModelConfig):
    """Toy model hyper-parameters."""

    kind: ClassVar[str] = "mean-pool"


class MeanPool(MetaNetwork):
    """Mean of the encoded node features per graph → linear: invariant to every neuron permutation."""

    name: ClassVar[str] = "toy-mean-pool"
    symmetries: ClassVar[tuple[str, ...]] = ("permutation",)
    config_class: ClassVar[type] = MeanPoolConfig
    heads: ClassVar[tuple[str, ...]] = ("graph",)

    def __init__(self, config: MeanPoolConfig, out_dim: int, head: str = "graph"):
        super().__init__(config, out_dim, head)
        self.encode = nn.Linear(5, config.hidden)
        self.out = nn.Linear(config.hidden, out_dim)

    def forward(self, batch: Any) -> torch.Tensor:
        self.check_batch(batch)
        pooled = scatter(self.encode(batch.x).relu(), graph_index(batch), 0, dim_size=graph_count(batch), reduce="mean")
        return self.out(pooled)  # [B, out_dim]


class LabelResidue(Task):
    """The image label modulo `modulus`, from an INR's weights (cross-entropy, accuracy)."""

    name = "toy-label-residue"
    primary_metric = "accuracy"
    greater_is_better = True
    summary_metrics = ("accuracy",)
    cli_options = (Option("modulus", int, "classes: label modulo this (default 2)"),)

    def __init__(self, modulus: int = 2):
        self.modulus = modulus

    def options(self) -> dict[str, Any]:
        return {"modulus": self.modulus}

    def out_dim(self, table=None) -> int:
        return self.modulus

    def targets(self, table, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(table["label"].to_numpy()[rows] % self.modulus, dtype=torch.long)

    def loss(self, output: torch.Tensor, batch) -> torch.Tensor:
        return F.cross_entropy(output.float(), batch.targets)

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, float]:
        return {"accuracy": float((predictions.argmax(-1) == targets).float().mean())}

    def format_prediction(self, prediction: torch.Tensor) -> dict[str, Any]:
        return {"residue": int(prediction.argmax())}


@pytest.fixture()
def registered():
    """Register the toy model and task for one test, then remove them again."""
    register_model(MeanPool)
    register_task(LabelResidue)
    yield
    MODELS.pop(MeanPool.name)
    TASKS.pop(LabelResidue.name)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory) -> Path:
    from core.zoo import build_inr_zoo

    out = tmp_path_factory.mktemp("zoo") / "digits-tiny"
    build_inr_zoo(out, images="digits", count=24, hidden=(4,), steps=5, target_psnr=None, workers=1, progress=False)
    return out


def _cli_json(capsys, *args: str) -> Any:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_a_new_model_and_task_train_evaluate_and_predict_through_the_cli(registered, tiny_zoo: Path, tmp_path: Path,
                                                                          capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    usage = capsys.readouterr().out
    assert "toy-label-residue" in usage and "toy-mean-pool" in usage and "--modulus" in usage

    run = tmp_path / "run"
    metrics = _cli_json(capsys, "train", "toy-label-residue", "--model", "toy-mean-pool", "--zoo", str(tiny_zoo),
                        "--out", str(run), "--epochs", "1", "--hidden", "6", "--modulus", "3", "--batch-size", "8",
                        "--quiet")
    config = json.loads((run / "config.json").read_text())
    assert (config["task"], config["model"], config["task_options"]) == ("toy-label-residue", "toy-mean-pool",
                                                                         {"modulus": 3})
    assert config["model_config"]["hidden"] == 6 and config["augment"] is False  # the class's default
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0

    evaluated = _cli_json(capsys, "evaluate", str(run), "--json", "--device", "cpu")
    assert evaluated["accuracy"] == pytest.approx(metrics["test"]["accuracy"])

    from core.zoo import Zoo

    member = tmp_path / "member.pth"
    torch.save(Zoo.open(tiny_zoo).network(0).state_dict(), member)
    (row,) = _cli_json(capsys, "predict", str(run), str(member), "--json")
    assert set(row) == {"file", "residue"} and row["residue"] in (0, 1, 2)


def test_the_lists_of_names_come_from_the_registries(registered) -> None:
    """Benchmark defaults, learned-optimiser backbones and the zoo explorer's embedders follow the declarations."""
    from app.resources import embedding_tasks
    from core.bench import tasks as bench_tasks
    from core.l2o.optimizers import graph_backbones

    assert MeanPool.name in bench_tasks.default_models() and "nfn-np" not in bench_tasks.default_models()
    assert LabelResidue.name in bench_tasks.default_tasks() and "embed" not in bench_tasks.default_tasks()
    assert MeanPool.name not in graph_backbones()  # no params head
    assert {"ng-gnn", "scalegmn"} <= set(graph_backbones()) and "mlp" not in graph_backbones()  # fixed architecture
    assert embedding_tasks()[0] == "embed" and LabelResidue.name in embedding_tasks()
    assert "inr-edit" not in embedding_tasks()  # params head: no per-network vector


def test_the_toy_classes_are_gone_after_the_test() -> None:
    assert MeanPool.name not in MODELS and LabelResidue.name not in TASKS


def test_a_name_cannot_be_registered_twice() -> None:
    from core.models.base import ModelError
    from core.tasks import TaskError

    class Impostor(MeanPool):
        name: ClassVar[str] = "ng-gnn"

    class TaskImpostor(LabelResidue):
        name = "inr-classify"

    with pytest.raises(ModelError, match="already registered"):
        register_model(Impostor)
    with pytest.raises(TaskError, match="already registered"):
        register_task(TaskImpostor)


def test_benchmark_tables_report_each_task_s_declared_summary_metric() -> None:
    from core.bench.tasks import headline
    from core.tasks import EditTask, EmbedTask, GeneralizationTask

    assert headline(EditTask, {"mse": 0.1, "identity_mse": 0.3, "loss": 0.1}) == ("mse", 0.1, {"identity_mse": 0.3})
    assert headline(EmbedTask, {"knn_kendall_tau": 0.4, "loss": 1.0}) == ("knn_kendall_tau", 0.4, {})  # a CNN zoo
    assert headline(GeneralizationTask, {"kendall_tau": 0.5, "r2": 0.2}) == ("kendall_tau", 0.5, {})
