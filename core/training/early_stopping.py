"""Early stopping on a smoothed validation score.

A metric that swings between epochs (nfn's validation accuracy moves by ±0.05 on the bundled MNIST zoo) ends a
run on one unlucky epoch while the training loss still falls. Patience is therefore counted on the mean of the
last `window` scores too, s̄ₜ = mean(s_{t-window+1} … s_t): the run stops after `patience` epochs in which neither
s̄ nor the single score s has beaten its best. A new best single epoch always resets the count, so a window never
stops a run earlier than the plain rule (`window = 1`) would; before 2026-12-05 it could (a run whose last epoch
was its best stopped there because the mean had not improved). Which model is *kept* is not decided here: the
Trainer keeps the best raw epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.tasks.base import TaskError


@dataclass
class EarlyStopping:
    """Counts epochs that improve neither the best score nor the best `window`-epoch mean; `patience = 0` never
    stops."""

    patience: int
    window: int = 1
    greater_is_better: bool = True
    scores: list[float] = field(default_factory=list)  # every score seen, the untrained model's first if given
    best: float | None = None  # best smoothed score so far
    best_raw: float | None = None  # best single score so far
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
        improved = False
        if self.better(value, self.best):
            self.best, improved = value, True
        if self.better(score, self.best_raw):
            self.best_raw, improved = float(score), True
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        """Whether `patience` epochs have passed without improvement."""
        return bool(self.patience) and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """Plain values (checkpoints load with weights_only=True)."""
        return {"scores": list(self.scores), "best": self.best, "best_raw": self.best_raw,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (states saved before `best_raw` existed: the best of their scores,
        or their smoothed best where no scores were kept, as with the plain rule)."""
        self.scores = [float(s) for s in state["scores"]]
        self.best, self.bad_epochs = state["best"], int(state["bad_epochs"])
        best_raw = state.get("best_raw")
        if best_raw is None:
            best_raw = self.best
            for s in self.scores:
                best_raw = s if self.better(s, best_raw) else best_raw
        self.best_raw = best_raw
