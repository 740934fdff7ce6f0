"""Training pipeline: `GraphSet` batches, one `Trainer` for every task, run directories."""

from core.training.data import GraphBatch, GraphSet, Group, symmetry_augment
from core.training.trainer import Trainer, TrainConfig

__all__ = ["GraphBatch", "GraphSet", "Group", "TrainConfig", "Trainer", "symmetry_augment"]
