"""Training: one `Trainer` for every task (batches come from `core.data`, run directories are `core.runs`)."""

from core.training.trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
