"""`generalization`: predict a CNN's test accuracy from its weights. Metrics: Kendall τ and R²."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from core.tasks.base import Task, TaskError, register_task

if TYPE_CHECKING:
    from core.data import GraphBatch


def kendall_tau(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Kendall rank correlation (scipy, τ-b)."""
    from scipy.stats import kendalltau

    return float(kendalltau(predicted, actual).statistic)


@register_task
class GeneralizationTask(Task):
    """Regress the `test_accuracy` column (sigmoid output, MSE)."""

    name = "generalization"
    primary_metric = "kendall_tau"
    greater_is_better = True
    summary_metrics = ("kendall_tau",)
    zoo_kind = "cnn"

    def __init__(self, target_column: str = "test_accuracy"):
        self.target_column = target_column

    def options(self) -> dict[str, Any]:
        return {"target_column": self.target_column}

    def out_dim(self, table=None) -> int:
        if table is not None and self.target_column not in table:
            raise TaskError(f"the zoo has no {self.target_column!r} column (is it a CNN zoo?)")
        return 1

    def targets(self, table, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(table[self.target_column].to_numpy()[rows], dtype=torch.float32)

    def loss(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return F.mse_loss(torch.sigmoid(output.float().squeeze(-1)), batch.targets)

    def predictions(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return torch.sigmoid(output.detach().float().squeeze(-1))

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, float]:
        from sklearn.metrics import r2_score

        p, t = predictions.numpy(), targets.numpy()
        return {"kendall_tau": kendall_tau(p, t), "r2": float(r2_score(t, p)), "mse": float(np.mean((p - t) ** 2))}

    def format_prediction(self, prediction: torch.Tensor) -> dict[str, Any]:
        return {"predicted_accuracy": float(prediction)}
