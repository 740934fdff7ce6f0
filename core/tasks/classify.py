"""`inr-classify`: the class of the image an INR stores, from its weights. Metric: accuracy.

`render_loss` λ > 0 adds an auxiliary target: the graph head also outputs the INR's rendering (s × s values,
s the zoo's fitted resolution), and the loss is CE(logits, label) + λ · MSE(predicted, rendered). The rendering
is drawn from the batch's own (possibly augmented) weights at each step, so it is never stale and needs no data
beyond the weights; predictions, metrics and `predict` use only the logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from core.options import Option
from core.tasks.base import Task, TaskError, register_task

if TYPE_CHECKING:
    from core.data import GraphBatch


@register_task
class ClassifyTask(Task):
    """Cross-entropy on the zoo's `label` column; predictions are class probabilities."""

    ensemble_mean = True
    name = "inr-classify"
    primary_metric = "accuracy"
    greater_is_better = True
    summary_metrics = ("accuracy",)
    network_score = "accuracy"  # 1 where the predicted class is right
    function_augmentation = True  # a translated, rotated or noisy digit is still the same digit

    cli_options = (Option("render_loss", float, "weight of an auxiliary loss: the head also predicts each INR's "
                                                "rendering, drawn from its weights (image INRs; default 0: off)"),)

    def __init__(self, label_column: str = "label", num_classes: int | None = None, render_loss: float = 0.0,
                 render_size: int | None = None):
        if not (render_loss >= 0.0 and render_loss < float("inf")):
            raise TaskError(f"render_loss must be a finite number ≥ 0, got {render_loss}")
        self.label_column = label_column
        self.num_classes = num_classes
        self.render_loss = float(render_loss)
        self.render_size = render_size

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"label_column": self.label_column, "num_classes": self.num_classes}
        if self.render_loss:  # only then, so configs of runs without it stay as they were
            options.update(render_loss=self.render_loss, render_size=self.render_size)
        return options

    def adapt_to_zoo(self, zoo: Any) -> None:
        """The auxiliary rendering is drawn at the resolution the INRs were fitted at (28 when the zoo does not say)."""
        from core.tasks.edit import DEFAULT_RESOLUTION, fitted_resolution

        if self.render_loss:
            self.render_size = self.render_size or fitted_resolution(zoo) or DEFAULT_RESOLUTION

    def check_zoo(self, zoo: Any) -> None:
        """The auxiliary rendering needs 2-D image INRs: refuse other zoos before training starts."""
        from core.tasks.edit import check_image_inr_zoo

        if self.render_loss:
            check_image_inr_zoo(zoo, "inr-classify --render-loss")

    @property
    def render_side(self) -> int:
        """Side of the auxiliary rendering: the zoo's fitted resolution, 28 (MNIST's) before a zoo says."""
        from core.tasks.edit import DEFAULT_RESOLUTION

        return self.render_size or DEFAULT_RESOLUTION

    def _render_outputs(self) -> int:
        return self.render_side ** 2 if self.render_loss else 0

    def out_dim(self, table=None) -> int:
        if table is None:
            if self.num_classes is None:
                raise TaskError("inr-classify needs num_classes (or a zoo table to count the classes)")
            return self.num_classes + self._render_outputs()
        if self.label_column not in table:
            raise TaskError(f"the zoo has no {self.label_column!r} column to classify")
        if self.num_classes is None:
            self.num_classes = int(table[self.label_column].max()) + 1
        return self.num_classes + self._render_outputs()

    def targets(self, table, rows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(table[self.label_column].to_numpy()[rows], dtype=torch.long)

    def _logits(self, output: torch.Tensor) -> torch.Tensor:
        return output[:, :self.num_classes] if self.render_loss else output

    def loss(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        loss = F.cross_entropy(self._logits(output).float(), batch.targets)
        if self.render_loss:
            from core.tasks.edit import render

            with torch.no_grad():  # the target: the batch's INRs drawn on the grid (after any augmentation)
                target = render(batch.architecture, batch.flat.float(), self.render_side)
            loss = loss + self.render_loss * F.mse_loss(output[:, self.num_classes:].float(), target)
        return loss

    def predictions(self, output: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        return self._logits(output).detach().float().softmax(-1)

    def embedding_of(self, output: torch.Tensor) -> torch.Tensor:
        # the logits: the rendering head's pixels (--render-loss) are a training target, not a representation
        return self._logits(output).detach().float()

    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, Any]:
        from sklearn.metrics import accuracy_score, confusion_matrix

        y_pred = predictions.argmax(-1).numpy()
        y_true = targets.numpy()
        labels = list(range(predictions.shape[1]))
        return {"accuracy": float(accuracy_score(y_true, y_pred)),
                "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist()}

    def network_scores(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> np.ndarray:
        """1.0 where the most probable class is the label, else 0.0."""
        return (predictions.argmax(-1) == targets).double().numpy()

    def format_prediction(self, prediction: torch.Tensor) -> dict[str, Any]:
        return {"predicted_class": int(prediction.argmax()), "probabilities": [round(float(v), 6) for v in prediction]}
