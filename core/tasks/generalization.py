"""`generalization`: predict a CNN's test accuracy from its weights. Metrics: Kendall τ and R²."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from sklearn.metrics import r2_score

from core.tasks.base import Task, TaskError
from core.training.data import GraphBatch


def kendall_tau(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Kendall rank correlation (scipy, τ-b)."""
    return float(kendalltau(predicted, actual).statistic)


class GeneralizationTask(Task):
    """Regress the `test_accuracy` column (sigmoid output, MSE)."""

    name = "generalization"
    primary_metric = "kendall_tau"
    greater_is_better = True

    def __init__(self, target_column: str = "test_accuracy"):
        self.target_column = target_column

    def options(self) -> dict[str, Any]:
        return {"target_column": self.target_column}

    def out_dim(self, table) -> int:
        if self.target_column not in table:
            raise TaskError(f"the zoo has no {self.target_column!r} column (is it a CNN zoo?)")
        return 1

    def targets(self, table, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(table[self.target_column].to_numpy()[rows], dtype=torch.float32)

    def loss(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return F.mse_loss(torch.sigmoid(output.float().squeeze(-1)), batch.targets)

    def predictions(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return torch.sigmoid(output.detach().float().squeeze(-1))

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, float]:
        p, t = predictions.numpy(), targets.numpy()
        return {"kendall_tau": kendall_tau(p, t), "r2": float(r2_score(t, p)), "mse": float(np.mean((p - t) ** 2))}
