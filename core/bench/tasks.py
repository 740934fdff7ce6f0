"""Every model on every task: test metric (mean ± std over seeds), seconds per epoch, parameters.

Writes results.json and table.md under --out. Includes the `statnn` baseline for generalisation and a
render-and-classify reference for INR classification (decode every INR to pixels, train a small CNN on
them: the ceiling of what the weights can tell).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "zoos"


def default_tasks() -> list[str]:
    """The registered tasks that declare `benchmark = True`."""
    from core.tasks import task_names

    return task_names(lambda task: task.benchmark)


def default_models() -> list[str]:
    """The registered models that declare `benchmark = True`."""
    from core.models import model_names

    return model_names(lambda model: model.benchmark)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mnist = ASSETS / "mnist5k-inr"
    default_inr = mnist if (mnist / "manifest.json").exists() else ASSETS / "digits-inr"
    parser.add_argument("--inr-zoo", default=str(default_inr), help="the zoo of the tasks that read INRs")
    parser.add_argument("--cnn-zoo", default=str(ASSETS / "cnn-digits"), help="the zoo of the tasks that read CNNs")
    parser.add_argument("--tasks", nargs="+", default=None, help="default: the registered tasks with benchmark = True")
    parser.add_argument("--models", nargs="+", default=None,
                        help="default: the registered models with benchmark = True")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--probes", type=int, default=0, help="INR probe features for the graph models (INR tasks)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", default="runs/bench-tasks")
    parser.add_argument("--json", action="store_true")


def _statnn(zoo_dir: str, seed: int) -> float:
    from core.baselines import StatNN
    from core.tasks import kendall_tau
    from core.zoo import Zoo

    zoo = Zoo.open(zoo_dir)
    predicted, actual = [], []
    for group in zoo.architectures:
        in_group = np.flatnonzero(zoo.table["group"].to_numpy() == group)
        rows = {s: np.intersect1d(zoo.split_indices(s), in_group) for s in ("train", "test")}
        if len(rows["train"]) < 5 or len(rows["test"]) < 3:
            continue
        arch, train = zoo.flat(rows["train"])
        _, test = zoo.flat(rows["test"])
        model = StatNN(seed).fit(arch, train, zoo.table["test_accuracy"].to_numpy()[rows["train"]])
        predicted.append(model.predict(arch, test))  # one model per architecture group, τ over the whole split
        actual.append(zoo.table["test_accuracy"].to_numpy()[rows["test"]])
    return kendall_tau(np.concatenate(predicted), np.concatenate(actual)) if predicted else float("nan")


def _render_and_classify(zoo_dir: str, seed: int, epochs: int = 15) -> float:
    """Accuracy of a small CNN trained on the INRs' own renderings (train split → test split)."""
    import torch.nn.functional as F
    from torch import nn

    from core.tasks.edit import render
    from core.zoo import Zoo

    zoo = Zoo.open(zoo_dir)
    res = int(zoo.manifest.get("source", {}).get("image_shape", [28])[0])
    data = {}
    for split in ("train", "test"):
        rows = zoo.split_indices(split)
        arch, flat = zoo.flat(rows)
        with torch.no_grad():
            images = torch.cat([render(arch, flat[i:i + 256].float(), res) for i in range(0, len(rows), 256)])
        data[split] = (images.view(-1, 1, res, res), torch.as_tensor(zoo.table["label"].to_numpy()[rows]))
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, int(zoo.table["label"].max()) + 1))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x, y = data["train"]
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    xt, yt = data["test"]
    with torch.no_grad():
        return float((net(xt).argmax(1) == yt).float().mean())


def headline(task, metrics: dict) -> tuple[str, float, dict[str, float]]:
    """(metric name, value, context metrics) a table reports for a task: its first summary metric present."""
    names = [m for m in task.summary_metrics if m in metrics] or [task.primary_metric]
    return names[0], metrics[names[0]], {m: metrics[m] for m in names[1:]}


def run(args: argparse.Namespace) -> int:
    from core.bench.machine import machine_info
    from core.models import model_class
    from core.runs import train_run
    from core.tasks import TASKS
    from core.training.trainer import TrainConfig

    args.tasks, args.models = args.tasks or default_tasks(), args.models or default_models()
    out = Path(args.out)
    results: list[dict] = []
    zoo_for = {"inr": args.inr_zoo, "cnn": args.cnn_zoo}
    for task in args.tasks:
        task_cls = TASKS[task]
        for model in args.models:
            for seed in range(args.seeds):
                cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, patience=0)
                started = time.perf_counter()
                overrides = {"hidden": args.hidden, "layers": args.layers}
                probes = any(o.name == "probes" for o in model_class(model).options())
                if args.probes and task_cls.zoo_kind == "inr" and probes:
                    overrides["probes"] = args.probes
                try:
                    metrics = train_run(task, model, zoo_for[task_cls.zoo_kind],
                                        out / "runs" / f"{task}-{model}-s{seed}", train=cfg,
                                        model_overrides=overrides, overwrite=True, progress=False)
                except Exception as exc:  # report and go on: one model failing must not hide the others
                    results.append({"task": task, "model": model, "seed": seed, "error": str(exc).splitlines()[0]})
                    continue
                metric, value, context = headline(task_cls, metrics["test"])
                row = {"task": task, "model": model, "seed": seed, "metric": metric, "value": value, **context,
                       "seconds_per_epoch": metrics["training"]["seconds_per_epoch"],
                       "parameters": metrics["training"]["parameters"], "wall_s": time.perf_counter() - started}
                results.append(row)
                print(json.dumps(row), flush=True)
        results += reference_rows(task, args)
    report = {"config": vars(args), "machine": machine_info(), "results": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "table.md").write_text(markdown_table(results, args))
    print(markdown_table(results, args))
    return 0


def reference_rows(task: str, args: argparse.Namespace) -> list[dict]:
    """Non-metanetwork references of a task: statnn for generalisation, a CNN on the renderings for INR classes."""
    rows = []
    if task == "generalization":
        for seed in range(args.seeds):
            rows.append({"task": task, "model": "statnn", "seed": seed, "metric": "kendall_tau",
                         "value": _statnn(args.cnn_zoo, seed), "seconds_per_epoch": 0.0, "parameters": 0})
    if task == "inr-classify":
        for seed in range(args.seeds):
            rows.append({"task": task, "model": "render-and-classify (CNN on pixels)", "seed": seed,
                         "metric": "accuracy", "value": _render_and_classify(args.inr_zoo, seed),
                         "seconds_per_epoch": 0.0, "parameters": 0})
    return rows


ROW_FIELDS = ("task", "model", "seed", "metric", "value", "seconds_per_epoch", "parameters", "wall_s")


def markdown_table(results: list[dict], args: argparse.Namespace) -> str:
    """Mean ± std per (task, model)."""
    lines = [f"Test-split metrics, {args.seeds} seed(s), {args.epochs} epochs, hidden {args.hidden}, "
             f"{args.layers} layers, "
             f"{args.probes} probes "
             f"(INR zoo: {Path(args.inr_zoo).name}, CNN zoo: {Path(args.cnn_zoo).name}).", "",
             "| task | model | metric | mean ± std | s/epoch | parameters |", "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["task"], r["model"]) for r in results))
    for task, model in keys:
        rows = [r for r in results if r["task"] == task and r["model"] == model]
        ok = [r for r in rows if "value" in r]
        if not ok:
            lines.append(f"| {task} | {model} | — | failed: {rows[0]['error'][:60]} | | |")
            continue
        v = np.array([r["value"] for r in ok])
        context = [k for k in ok[0] if k not in ROW_FIELDS]  # a task's context metrics, e.g. identity_mse
        metric = ok[0]["metric"] + "".join(f" ({k} {np.mean([r[k] for r in ok]):.4f})" for k in context)
        lines.append(f"| {task} | {model} | {metric} | {v.mean():.4f} ± {v.std():.4f} | "
                     f"{np.mean([r['seconds_per_epoch'] for r in ok]):.1f} | {ok[0]['parameters']:,} |")
    return "\n".join(lines) + "\n"
