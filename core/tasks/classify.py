"""`inr-classify`: the class of the image an INR stores, from its weights. Metric: accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from core.tasks.base import Task, TaskError, register_task

if TYPE_CHECKING:
    from core.data import GraphBatch


@register_task
class ClassifyTask(Task):
    """Cross-entropy on the zoo's `label` column; predictions are class probabilities."""

    name = "inr-classify"
    primary_metric = "accuracy"
    greater_is_better = True
    summary_metrics = ("accuracy",)
    function_augmentation = True  # a translated, rotated or noisy digit is still the same digit

    def __init__(self, label_column: str = "label", num_classes: int | None = None):
        self.label_column = label_column
        self.num_classes = num_classes

    def options(self) -> dict[str, Any]:
        return {"label_column": self.label_column, "num_classes": self.num_classes}

    def out_dim(self, table=None) -> int:
        if table is None:
            if self.num_classes is None:
                raise TaskError("inr-classify needs num_classes (or a zoo table to count the classes)")
            return self.num_classes
        if self.label_column not in table:
            raise TaskError(f"the zoo has no {self.label_column!r} column to classify")
        if self.num_classes is None:
            self.num_classes = int(table[self.label_column].max()) + 1
        return self.num_classes

    def targets(self, table, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(table[self.label_column].to_numpy()[rows], dtype=torch.long)

    def loss(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return F.cross_entropy(output.float(), batch.targets)

    def predictions(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return output.detach().float().softmax(-1)

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, Any]:
        from sklearn.metrics import accuracy_score, confusion_matrix

        y_pred = predictions.argmax(-1).numpy()
        y_true = targets.numpy()
        labels = list(range(predictions.shape[1]))
        return {"accuracy": float(accuracy_score(y_true, y_pred)),
                "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist()}

    def format_prediction(self, prediction: torch.Tensor) -> dict[str, Any]:
        return {"predicted_class": int(prediction.argmax()), "probabilities": [round(float(v), 6) for v in prediction]}
