"""High-level l2o entry points used by the CLI and the benchmark: build, meta-train + save, evaluate a run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from core.l2o.evaluate import compare, loss_curves_png, markdown_table
from core.l2o.meta import MetaConfig, meta_train, tune_lr
from core.l2o.optimizers import (
    Adam,
    FunctionalOptimizer,
    GraphOptimizer,
    LearnedRule,
    PerParamOptimizer,
    SGDMomentum,
    graph_backbones,
)
from core.l2o.problems import EVAL_SPECS, L2OError, ProblemSpec
from core.l2o.store import load_optimizer, read_meta, save_optimizer


def learned_optimizers() -> list[str]:
    """Names `make_optimizer` accepts: every registered graph backbone (`graph_backbones`) and "per-param"."""
    return [*graph_backbones(), "per-param"]


def make_optimizer(name: str, lr: float = 1e-2, hidden: int = 16, layers: int = 2) -> LearnedRule:
    """A fresh learned optimiser: "per-param" (coordinate-wise MLP) or a graph backbone (e.g. ng-gnn, scalegmn)."""
    if name == "per-param":
        return PerParamOptimizer(hidden=max(hidden, 32), lr=lr)
    if name in graph_backbones():
        return GraphOptimizer(name, hidden=hidden, layers=layers, lr=lr)
    raise L2OError(f"unknown learned optimiser {name!r}; choose one of {', '.join(learned_optimizers())}")


def tune_baselines(config: MetaConfig, log: Callable[[str], None] | None = None) -> dict:
    """Tuned Adam and SGD+momentum learning rates on the meta-training problems (meta-objective, `horizon` steps)."""
    out = {}
    for kind in ("adam", "sgdm"):
        best, scores = tune_lr(kind, config.specs, steps=config.horizon, networks=config.networks)
        out[kind] = {"lr": best, "scores": {str(k): v for k, v in scores.items()}}
        if log:
            log(f"tuned {kind}: lr={best:g} ({', '.join(f'{k:g}: {v:.3f}' for k, v in scores.items())})")
    return out


def train_optimizer(name: str, out: str | Path, config: MetaConfig, *, hidden: int = 16, layers: int = 2,
                    baselines: dict | None = None, log: Callable[[str], None] | None = None) -> LearnedRule:
    """Tune the baselines (unless given), meta-train learned optimiser `name` starting at the tuned Adam rate,
    save it to `out`."""
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    baselines = baselines or tune_baselines(config, log)
    opt = make_optimizer(name, lr=baselines["adam"]["lr"], hidden=hidden, layers=layers)
    every = max(1, config.meta_steps // 10)

    def _log(step: int, loss: float) -> None:
        if log and (step % every == 0 or step == config.meta_steps - 1):
            lr = float(opt.log_lr.detach().exp())
            log(f"meta-step {step:4d}  meta-loss {loss:.4f}  lr {lr:.4g}  ({time.perf_counter() - t0:.0f}s)")

    history = meta_train(opt, config, _log)
    save_optimizer(opt, out, extra={"meta_config": config.to_dict(), "baselines": baselines, "history": history,
                                    "train_seconds": time.perf_counter() - t0, "name": name})
    return opt


def baseline_optimizers(baselines: dict) -> dict[str, FunctionalOptimizer]:
    """Adam and SGD+momentum at their tuned rates."""
    return {f"adam (lr {baselines['adam']['lr']:g})": Adam(baselines["adam"]["lr"]),
            f"sgdm (lr {baselines['sgdm']['lr']:g})": SGDMomentum(baselines["sgdm"]["lr"])}


def evaluate_runs(runs: Sequence[str | Path], out: str | Path | None = None,
                  specs: Sequence[ProblemSpec] = EVAL_SPECS, steps: Sequence[int] = (50, 200), networks: int = 5,
                  log: Callable[[str], None] | None = None) -> dict:
    """Compare saved learned optimisers with the tuned baselines (from the first run) on held-out problems.

    Writes `table.md`, `report.json` and `loss_curves.png` into `out` when given; returns the report.
    """
    if not runs:
        raise L2OError("give at least one learned-optimiser run directory")
    metas = [read_meta(r) for r in runs]
    baselines = metas[0].get("baselines")
    if not baselines:
        raise L2OError(f"{runs[0]} has no tuned baselines in its metadata")
    opts = baseline_optimizers(baselines)
    for r, m in zip(runs, metas):
        opts[m.get("name") or Path(r).name] = load_optimizer(r)
    report = compare(opts, specs, steps, networks, log=log)
    report["baselines"] = baselines
    if out is not None:
        write_report(report, out)
    return report


def write_report(report: dict, out: str | Path) -> dict[str, Path]:
    """Write table.md, report.json, loss_curves.png and loss_curves.html into `out`."""
    import json

    from core.io.atomic import write_text
    from core.l2o.evaluate import loss_curves_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "table.md", "json": out / "report.json", "png": out / "loss_curves.png",
             "html": out / "loss_curves.html"}
    write_text(paths["table"], markdown_table(report) + "\n")
    write_text(paths["json"], json.dumps(report, indent=1, default=str))
    loss_curves_png(report, paths["png"])
    loss_curves_html(report, paths["html"])
    return paths
