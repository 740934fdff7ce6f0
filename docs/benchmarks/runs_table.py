"""Print a Markdown table of finished run directories (the rows of docs/benchmarks/tasks.md's INR sections).

    python docs/benchmarks/runs_table.py runs/b/mnist-*

One row per run: task, model, probes, augmentation, zoo, seed, the headline test metric, the epoch of the best
validation score / epochs run / the epoch budget, and the median seconds per epoch (from log.csv).
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

NG_PRESET = {"translate": 0.25, "rotate": 45.0, "scale": 0.2, "noise": 0.1, "dropout": 0.01}  # --augment ng
HEADLINE = {"inr-classify": "accuracy", "inr-edit": "mse", "embed": "knn_accuracy", "generalization": "kendall_tau"}


def row(run: Path) -> str:
    """One Markdown row for a run directory."""
    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    task = config["task"]
    task_text = f"{task} ({config['task_options']['edit']})" if task == "inr-edit" else task
    test = metrics["test"]
    value = test.get(HEADLINE.get(task, ""), float("nan"))
    if task == "inr-edit":
        value_text = f"{value:.4f} (identity {test['identity_mse']:.4f}, ratio {test['mse_ratio']:.3f})"
    else:
        value_text = f"{value:.3f}"
    with open(run / "log.csv") as f:
        log = list(csv.DictReader(f))
    score_key = next((k for k in log[0] if k.startswith("val_") and k != "val_loss"), "val_loss") if log else None
    scores = [float(r[score_key]) for r in log] if score_key else []
    best = metrics.get("training", {}).get("best_epoch")  # the Trainer's own record: 0 = the untrained model
    if best is None:
        best = (scores.index(min(scores) if task == "inr-edit" or score_key == "val_loss" else max(scores)) + 1
                if scores else 0)
    seconds = statistics.median(float(r["seconds"]) for r in log) if log else float("nan")
    model = config["model_config"]
    inr_augment = config.get("inr_augment") or {}
    # runs before symmetry_kinds was recorded drew every admitted kind, sine phase shifts included; runs of
    # 2026-12-04 before the second change drew ReLU positive scales too
    kinds = config.get("symmetry_kinds")
    symmetry = "symmetry+phase" if not kinds else "symmetry+scale" if "scale" in kinds else "symmetry"
    parts = [f"{k}={v:g}" for k, v in sorted(inr_augment.items())] + ([symmetry] if config.get("augment") else [])
    augment_text = ",".join(parts) or "none"
    if inr_augment == NG_PRESET:
        augment_text = augment_text.replace(",".join(f"{k}={v:g}" for k, v in sorted(NG_PRESET.items())), "ng")
    return (f"| {task_text} | {config['model']} | {model.get('probes', 0)} | {augment_text} "
            f"| {Path(config['zoo']).name} | {config['train']['seed']} | {value_text} "
            f"| {best} / {len(log)} / {config['train']['epochs']} | {seconds:.1f} |")


def main(paths: list[str]) -> None:
    """Print the table for the run directories given on the command line."""
    print("| task | model | probes | augmentation | zoo | seed | test metric | best / run / budget epochs | s/epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        run = Path(path)
        if (run / "metrics.json").exists():
            print(row(run))


if __name__ == "__main__":
    main(sys.argv[1:])
