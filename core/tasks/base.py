"""The `Task` protocol: what differs between tasks (targets, loss, metrics, head, CLI options, how a
prediction reads); the loop is the Trainer's, the run directory is `core.runs`'."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

import numpy as np
import torch

from core.errors import WeightSpaceError
from core.options import Option, names_where, register_by_name

if TYPE_CHECKING:
    from core.data import GraphBatch


class TaskError(WeightSpaceError, ValueError):
    """A task cannot run on the given zoo / run / file."""


class Task(ABC):
    """Base class. Subclasses set the class attributes and implement `out_dim`, `loss`, `metrics`."""

    name: ClassVar[str] = "base"
    head: ClassVar[str] = "graph"  # which model head the task uses: "graph" or "params"
    primary_metric: ClassVar[str] = "loss"  # early stopping on the validation split
    greater_is_better: ClassVar[bool] = False
    summary_metrics: ClassVar[tuple[str, ...]] = ()  # what tables report: the first one the metrics hold, then context
    cli_options: ClassVar[tuple[Option, ...]] = ()  # constructor arguments offered by `python -m core train`
    zoo_kind: ClassVar[str] = "inr"  # the bundled zoo kind the benchmark trains it on: "inr" or "cnn"
    benchmark: ClassVar[bool] = True  # part of `bench tasks` by default
    predict_command: ClassVar[str] = "predict"  # the CLI command that applies a run of this task to files
    embedding: ClassVar[bool] = False  # its predictions are embeddings made for comparing networks (zoo explorer)
    # the mean of several runs' predictions is a prediction of the same kind (class probabilities, a predicted
    # value): `evaluate --ensemble` may average them
    ensemble_mean: ClassVar[bool] = False
    # weight transforms that change the function are allowed: targets stay valid, or are redrawn from the batch.
    # Read on the task instance, so a task may decide from its options (embed: a property, for its function objective)
    function_augmentation: ClassVar[bool] = False
    # the model reads each network's canonical form under this rule (`train --canonical`, a name in
    # core.symmetry.canonical.CANONICAL_RULES; None: raw parameters; set on the instance from the run's config)
    canonical: str | None = None
    # the per-network score whose mean over a split is one of its metrics (`network_scores`; `compare` pairs runs
    # on it) and whether more is better; None: the task's metrics do not split into per-network terms
    network_score: ClassVar[str | None] = None
    network_score_greater_is_better: ClassVar[bool] = True

    def options(self) -> dict[str, Any]:
        """Task options, serialised into the run's config.json (constructor keyword arguments)."""
        return {}

    def model_input(self, architecture: Any, flat: torch.Tensor) -> torch.Tensor:
        """The parameters [B, P] as the model reads them: canonical forms (one per symmetry orbit) when the run
        canonicalises, else as they are. Applied after any augmentation, so the model only sees canonical forms."""
        if not self.canonical:
            return flat
        from core.symmetry.canonical import canonicalize_flat

        return canonicalize_flat(architecture, flat, self.canonical)

    def adapt_to_zoo(self, zoo: Any) -> None:
        """Fill options that the training zoo decides (called before `out_dim`); nothing by default."""

    def check_zoo(self, zoo: Any) -> None:
        """Refuse, before training starts, a zoo whose networks the task cannot use; nothing by default."""

    def check_zoo_for_model(self, zoo: Any, model: Any) -> None:
        """Refuse, before training starts, a zoo whose networks the built `model` cannot read; nothing by default."""

    @abstractmethod
    def out_dim(self, table: Any = None) -> int:
        """Output width of the model's graph head: from the zoo's table, or (table None) from the options alone."""

    def targets(self, table: Any, rows: np.ndarray) -> torch.Tensor | None:
        """Per-network targets for the given table rows."""
        return None

    def extras(self, architecture: Any, flat: torch.Tensor, table: Any, rows: np.ndarray) -> dict[str, torch.Tensor]:
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

    def embedding_of(self, output: torch.Tensor) -> torch.Tensor:
        """The per-network vector that `embed`, its cache and the Zoo explorer show (graph-level heads only);
        default: the model's output as it is."""
        return output.detach().float()

    @abstractmethod
    def metrics(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, Any]:
        """The task's metrics from all predictions and targets of a split."""

    def network_scores(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> np.ndarray:
        """Per network, the score named `network_score` (its mean over a split is that metric)."""
        raise TaskError(f"{self.name} has no per-network score to compare runs on")

    def format_prediction(self, prediction: torch.Tensor) -> dict[str, Any]:
        """One network's prediction as JSON fields (what `python -m core predict` prints)."""
        return {"prediction": [float(v) for v in prediction.reshape(-1)]}


TASKS: dict[str, type[Task]] = {}
T = TypeVar("T", bound=type[Task])


def register_task(cls: T) -> T:
    """Class decorator: make a Task available by its `name` (CLI, run loading, benchmark)."""
    return register_by_name(TASKS, cls, TaskError, "task")


def task_names(where: Callable[[type[Task]], bool] = lambda cls: True) -> list[str]:
    """Names of the registered tasks whose class satisfies `where`, in registration order."""
    return names_where(TASKS, where)
