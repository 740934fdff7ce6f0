"""Tasks: small objects that say what to predict and how to score it; the Trainer runs them all.

    inr-classify    ClassifyTask        accuracy
    inr-edit        EditTask            MSE vs the identity baseline (dilate / erode / blur)
    generalization  GeneralizationTask  Kendall τ, R²
    embed           EmbedTask           contrastive loss, 1-NN accuracy
"""

from __future__ import annotations

from typing import Any

from core.tasks.base import Task, TaskError
from core.tasks.classify import ClassifyTask
from core.tasks.edit import EDITS, EditTask
from core.tasks.embed import EmbedTask
from core.tasks.generalization import GeneralizationTask, kendall_tau

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (ClassifyTask, EditTask, GeneralizationTask, EmbedTask)}


def build_task(name: str, **options: Any) -> Task:
    """Instantiate a task by name with its options."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name](**{k: v for k, v in options.items() if v is not None})


__all__ = ["EDITS", "TASKS", "ClassifyTask", "EditTask", "EmbedTask", "GeneralizationTask", "Task", "TaskError",
           "build_task", "kendall_tau"]
