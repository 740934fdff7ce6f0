"""Generalisation prediction on cnn-mnist with different symmetry transforms in training (docs/benchmarks/tasks.md,
"Symmetry augmentation and ReLU scales"). Usage: python docs/benchmarks/relu_scale_augment.py SETTING SEED OUT

SETTING: none | permsign (the default `--augment` kinds) | wide (plus positive scales 10**U(-2, 2)) | narrow (plus
positive scales 10**U(-0.3, 0.3)). Prints the test Kendall τ and R²."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import core.runs  # noqa: E402
import core.symmetry  # noqa: E402
from core.training.trainer import TrainConfig  # noqa: E402


def main(setting: str, seed: int, out: str) -> None:
    """Train ng-gnn + 16 probes (the bundled generalisation run's settings) with the chosen transforms."""
    if setting not in ("none", "permsign", "wide", "narrow"):
        raise SystemExit(f"unknown setting {setting!r}")
    if setting in ("wide", "narrow"):
        core.runs.AUGMENT_KINDS = ("permutation", "sign", "scale")
    if setting == "narrow":
        core.symmetry.random_element = functools.partial(core.symmetry.random_element, log10_range=0.3)
    train = TrainConfig(epochs=20, patience=10, batch_size=32, lr=3e-3, seed=seed)
    metrics = core.runs.train_run("generalization", "ng-gnn", "assets/zoos/cnn-mnist", out, train=train,
                                  augment=setting != "none", progress=False, overwrite=True,
                                  model_overrides={"hidden": 32, "layers": 3, "probes": 16})
    print(out, json.dumps({k: metrics["test"][k] for k in ("kendall_tau", "r2")}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
