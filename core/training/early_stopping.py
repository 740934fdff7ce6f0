"""Early stopping on a smoothed validation score.

A metric that swings between epochs (nfn's validation accuracy moves by ±0.05 on the bundled MNIST zoo) ends a
run on one unlucky epoch while the training loss still falls. Patience is therefore counted on the mean of the
last `window` scores, s̄ₜ = mean(s_{t-window+1} … s_t); the run stops after `patience` epochs in which s̄ has not
beaten its best. `window = 1` is the plain rule. Which model is *kept* is not decided here: the Trainer keeps the
best raw epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.tasks.base import TaskError


@dataclass
class EarlyStopping:
    """Counts epochs without improvement of the `window`-epoch mean score; `patience = 0` never stops."""

    patience: int
    window: int = 1
    greater_is_better: bool = True
    scores: list[float] = field(default_factory=list)  # every score seen, the untrained model's first if given
    best: float | None = None  # best smoothed score so far
    bad_epochs: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise TaskError(f"the early-stopping window must be ≥ 1 epoch (got {self.window})")
        if self.patience < 0:
            raise TaskError(f"patience must be ≥ 0 (got {self.patience})")

    @property
    def smoothed(self) -> float:
        """Mean of the last `window` scores (fewer at the start)."""
        recent = self.scores[-self.window:]
        return sum(recent) / len(recent)

    def better(self, score: float, than: float | None) -> bool:
        """Whether `score` beats `than` in this metric's direction (anything beats None)."""
        return than is None or (score > than if self.greater_is_better else score < than)

    def update(self, score: float) -> bool:
        """Record one epoch's score; True when the run should stop."""
        self.scores.append(float(score))
        value = self.smoothed
        if self.better(value, self.best):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        """Whether `patience` epochs have passed without improvement."""
        return bool(self.patience) and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """Plain values (checkpoints load with weights_only=True)."""
        return {"scores": list(self.scores), "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.scores = [float(s) for s in state["scores"]]
        self.best, self.bad_epochs = state["best"], int(state["bad_epochs"])
