"""Tasks: small objects that say what to predict and how to score it; the Trainer runs them all.

    inr-classify    ClassifyTask        accuracy
    inr-edit        EditTask            MSE vs the identity baseline (dilate / erode / blur)
    generalization  GeneralizationTask  Kendall τ, R²
    embed           EmbedTask           contrastive loss, 1-NN accuracy

A task registers itself with `@register_task`; every module of this package is imported here, so a new
task is one new file (see README, "Extending").
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from core.tasks.base import TASKS, Task, TaskError, register_task, task_names

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from core.tasks.classify import ClassifyTask  # noqa: E402  (re-exports; registered by the loop above)
from core.tasks.edit import EDITS, EditTask, edit_mse  # noqa: E402
from core.tasks.embed import EmbedTask  # noqa: E402
from core.tasks.generalization import GeneralizationTask, kendall_tau  # noqa: E402


def build_task(name: str, **options: Any) -> Task:
    """Instantiate a task by name with its options."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name](**{k: v for k, v in options.items() if v is not None})


__all__ = ["EDITS", "TASKS", "ClassifyTask", "EditTask", "EmbedTask", "GeneralizationTask", "Task", "TaskError",
           "build_task", "edit_mse", "kendall_tau", "register_task", "task_names"]
