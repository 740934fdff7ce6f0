"""Replay early-stopping rules on finished runs (docs/benchmarks/inr_learning.md, "Canonical inputs on the K = 2
zoo …"). Usage: python docs/benchmarks/replay_stopping.py RUN [RUN …]

Training is deterministic for a seed, so a run stopped by another rule follows the same epochs up to its stop: the
replay reads each run's validation scores from log.csv, finds where each rule (patience, `--stop-window`) would have
stopped and which epoch it would have kept (the best raw score, as the Trainer does), and prints the run's test
score where the kept epoch is the run's own (otherwise that model was never evaluated: "?"). A replay is exact only
for rules that stop no later than the run did. One input is missing from log.csv: the Trainer also counts the
untrained model's validation score before epoch 1. It is kept only where no epoch beats it (best epoch 0: the
replay prints "?"), and with `--stop-window 1` it changes nothing (the first epoch that beats it resets the count);
with a window it enters the first smoothed means only, so a replayed windowed rule may differ from a real one in its
first epochs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.training.early_stopping import EarlyStopping  # noqa: E402

RULES = [(10, 1), (15, 1), (20, 1), (6, 3), (10, 3), (10, 5)]  # (patience, window)


def replay(scores: list[float], patience: int, window: int) -> tuple[int | None, int]:
    """(epoch the rule stops at, or None if it never stops within `scores`; epoch it keeps by then), epochs from 1,
    for validation scores (higher is better)."""
    stopping = EarlyStopping(patience, window)
    stop = None
    for epoch, score in enumerate(scores, 1):
        if stopping.update(score):
            stop = epoch
            break
    last = stop or len(scores)
    kept = max(range(1, last + 1), key=lambda e: (scores[e - 1], -e))  # the first epoch of the best score
    return stop, kept


def main(paths: list[str]) -> None:
    """Print one line per run and rule."""
    for path in map(Path, paths):
        rows = list(csv.DictReader((path / "log.csv").open()))
        column = next(k for k in rows[0] if k.startswith("val_") and k != "val_loss")
        scores = [float(r[column]) for r in rows]
        metrics = json.loads((path / "metrics.json").read_text())
        budget = json.loads((path / "config.json").read_text())["train"]["epochs"]
        own, test = metrics["training"]["best_epoch"], metrics["test"][column[4:]]
        print(f"{path.name}: ran {len(scores)} of {budget} epochs, kept {own}, test {column[4:]} {test:.3f}")
        for patience, window in RULES:
            stop, kept = replay(scores, patience, window)
            if stop is None and len(scores) < budget:  # the run itself stopped earlier than this rule would
                print(f"  patience {patience:>2}, window {window}: runs past the log's {len(scores)} epochs: unknown")
                continue
            shown = f"{test:.3f}" if kept == own else "?"
            print(f"  patience {patience:>2}, window {window}: stops at {stop or len(scores)}, keeps {kept}, "
                  f"test {shown}")


if __name__ == "__main__":
    main(sys.argv[1:])
