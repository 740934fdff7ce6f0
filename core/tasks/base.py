"""The `Task` protocol: what differs between tasks (targets, loss, metrics, head); the loop is the Trainer's."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from core.errors import WeightSpaceError
from core.training.data import GraphBatch


class TaskError(WeightSpaceError, ValueError):
    """A task cannot run on the given zoo / run / file."""


class Task(ABC):
    """Base class. Subclasses set the class attributes and implement `out_dim`, `loss`, `metrics`."""

    name: ClassVar[str] = "base"
    head: ClassVar[str] = "graph"  # which model head the task uses: "graph" or "params"
    primary_metric: ClassVar[str] = "loss"
    greater_is_better: ClassVar[bool] = False

    def options(self) -> dict[str, Any]:
        """Task options, serialised into the run's config.json (constructor keyword arguments)."""
        return {}

    @abstractmethod
    def out_dim(self, table) -> int:
        """Output width of the model's graph head for this zoo."""

    def targets(self, table, rows: np.ndarray) -> torch.Tensor | None:
        """Per-network targets for the given table rows."""
        return None

    def extras(self, architecture, flat: torch.Tensor, table, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Extra per-network tensors the loss needs (e.g. target images); computed once per split."""
        return {}

    def step(self, model: torch.nn.Module, batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, per-network predictions) for one batch. Default: one forward pass, `loss`, `predictions`."""
        output = model(batch.graph)
        return self.loss(output, batch), self.predictions(output, batch)

    def predict_step(self, model: torch.nn.Module, batch: GraphBatch) -> torch.Tensor:
        """Per-network predictions only (no targets needed)."""
        return self.predictions(model(batch.graph), batch)

    @abstractmethod
    def loss(self, output: Any, batch: GraphBatch) -> torch.Tensor:
        """Training loss of one batch from the model output."""

    def predictions(self, output: Any, batch: GraphBatch) -> torch.Tensor:
        """What `metrics` needs per network (detached); default: the output itself."""
        return output.detach()

    @abstractmethod
    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, float]:
        """The task's metrics from all predictions and targets of a split."""
