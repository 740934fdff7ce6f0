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

from core.paths import BUNDLED_ZOOS


def default_tasks() -> list[str]:
    """The registered tasks that declare `benchmark = True`."""
    from core.tasks import task_names

    return task_names(lambda task: task.benchmark)


def default_models() -> list[str]:
    """The registered models that declare `benchmark = True`."""
    from core.models import model_names

    return model_names(lambda model: model.benchmark)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mnist = BUNDLED_ZOOS / "mnist5k-inr"
    default_inr = mnist if (mnist / "manifest.json").exists() else BUNDLED_ZOOS / "digits-inr"
    parser.add_argument("--inr-zoo", default=str(default_inr), help="the zoo of the tasks that read INRs")
    parser.add_argument("--cnn-zoo", default=str(BUNDLED_ZOOS / "cnn-digits"),
                        help="the zoo of the tasks that read CNNs")
    parser.add_argument("--tasks", nargs="+", default=None, help="default: the registered tasks with benchmark = True")
    parser.add_argument("--models", nargs="+", default=None,
                        help="default: the registered models with benchmark = True")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run are FIRST_SEED … FIRST_SEED + SEEDS − 1 (add seeds to an earlier benchmark)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--wild-zoo", default=None,
                        help="generalization: a wild CNN zoo of many architectures; trains on --cnn-zoo plus part of "
                             "its architectures and also reports τ on the held-out architectures (Wild Park protocol)")
    parser.add_argument("--holdout-archs", type=float, default=0.3,
                        help="with --wild-zoo: the fraction of its architectures never seen in training (default 0.3)")
    parser.add_argument("--probes", type=int, default=0,
                        help="probe features for the graph models: learned coordinates for INRs, fixed MNIST-5k probe "
                             "images for CNNs (rows are labelled 'MODEL + N probes')")
    parser.add_argument("--patience", type=int, default=0,
                        help="early stopping: stop after this many epochs without a better validation metric and keep "
                             "the best epoch's weights (0: off, train every epoch)")
    parser.add_argument("--no-references", dest="references", action="store_false",
                        help="skip the non-metanetwork reference rows (statnn, flat-mlp, render-and-classify), e.g. "
                             "when a second invocation only adds models")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", default="runs/bench-tasks")
    parser.add_argument("--json", action="store_true")


def _per_group_reference(zoo_dir: str, fit_predict) -> dict[str, float]:
    """A fixed-architecture regressor fitted per architecture group on the train split: group_metrics on test."""
    from core.tasks.generalization import group_metrics
    from core.zoo import Zoo

    zoo = Zoo.open(zoo_dir)
    accuracy, groups = zoo.table["test_accuracy"].to_numpy(), zoo.table["group"].to_numpy()
    predicted, actual, names = [], [], []
    for group in zoo.architectures:
        in_group = np.flatnonzero(groups == group)
        rows = {s: np.intersect1d(zoo.split_indices(s), in_group) for s in ("train", "test")}
        if len(rows["train"]) < 5 or len(rows["test"]) < 3:
            continue
        arch, train = zoo.flat(rows["train"])
        _, test = zoo.flat(rows["test"])
        predicted.append(fit_predict(arch, train, accuracy[rows["train"]], test))
        actual.append(accuracy[rows["test"]])
        names.append(groups[rows["test"]])
    if not predicted:
        return {"kendall_tau": float("nan")}
    return group_metrics(np.concatenate(predicted), np.concatenate(actual), np.concatenate(names))


def _statnn(zoo_dir: str, seed: int) -> dict[str, float]:
    """statnn, one model per architecture group (τ over the whole test split)."""
    from core.baselines import StatNN

    return _per_group_reference(zoo_dir, lambda arch, train, y, test: StatNN(seed).fit(arch, train, y).predict(arch,
                                                                                                              test))


def _flat_mlp(zoo_dir: str, seed: int) -> dict[str, float]:
    """An MLP on flattened weights, one per architecture group (each group has one fixed architecture)."""
    from core.baselines import FlatMLP

    return _per_group_reference(zoo_dir, lambda arch, train, y, test: FlatMLP(seed).fit(train, y).predict(test))


def _zoo_parts(zoo, rows: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """[(architecture, flat)] per group of `rows`, with their accuracies and group names in the same order."""
    parts, accuracy, names = [], [], []
    for group in zoo.architectures:
        members = rows[zoo.table["group"].to_numpy()[rows] == group]
        if len(members):
            parts.append(zoo.flat(members))
            accuracy.append(zoo.table["test_accuracy"].to_numpy()[members])
            names.append(np.full(len(members), group))
    return parts, np.concatenate(accuracy), np.concatenate(names)


def _statnn_any(train_zoo, unseen_zoo, seed: int) -> dict[str, float]:
    """statnn on architecture-free features, one model for all architectures: test split and unseen architectures."""
    from core.baselines import StatNNAny
    from core.tasks.generalization import group_metrics

    parts, accuracy, _ = _zoo_parts(train_zoo, train_zoo.split_indices("train"))
    model = StatNNAny(seed).fit_groups(parts, accuracy)
    out = {}
    for suffix, zoo, rows in (("", train_zoo, train_zoo.split_indices("test")),
                              ("_unseen", unseen_zoo, np.arange(len(unseen_zoo)))):
        parts, accuracy, names = _zoo_parts(zoo, rows)
        out.update({k + suffix: v for k, v in group_metrics(model.predict_groups(parts), accuracy, names).items()})
    return out


def _run_predictions(run_dir: Path, zoo, split: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted, actual, group names) of a trained generalization run on a zoo's split (None: every network)."""
    from core.runs import graph_set_from_zoo, load_run

    run = load_run(run_dir)
    data = graph_set_from_zoo(zoo, split, run.task, run.config.grid_size)
    predicted = run.trainer("cpu").predict(data).numpy()
    names = np.concatenate([np.full(len(g), zoo.table["group"].to_numpy()[int(g.index[0])]) for g in data.groups])
    return predicted, data.targets().numpy(), names


def _run_group_metrics(run_dir: Path, zoo, unseen_zoo=None) -> dict[str, float]:
    """A trained generalization run's group_metrics on the zoo's test split (and, given, on the unseen zoo)."""
    from core.tasks.generalization import group_metrics

    out = {}
    for suffix, z, split in (("", zoo, "test"), ("_unseen", unseen_zoo, None)):
        if z is not None:
            out.update({k + suffix: v for k, v in group_metrics(*_run_predictions(run_dir, z, split)).items()})
    return out


def train_per_group(model: str, zoo_dir: str, run_root: Path, train, overrides: dict) -> dict:
    """A fixed-architecture model (nfn-hnp, mlp) on a zoo of several architectures: one generalization run per
    architecture group (on its own sub-zoo), their test predictions pooled into one row (τ overall and within)."""
    from core.runs import train_run
    from core.tasks.generalization import compose_zoo, group_metrics
    from core.zoo import Zoo

    zoo = Zoo.open(zoo_dir)
    groups = zoo.table["group"].to_numpy()
    pooled, seconds, parameters = [], [], 0
    for group in zoo.architectures:
        # rewritten every time: a sub-zoo left by an earlier run may come from another --cnn-zoo
        sub = compose_zoo([(zoo, np.flatnonzero(groups == group), "")], run_root.parent.parent / "zoos" /
                          f"group-{group}", generator="cnn-group")
        metrics = train_run("generalization", model, sub.dir, run_root / group, train=train, model_overrides=overrides,
                            overwrite=True, progress=False)
        seconds.append(metrics["training"]["seconds_per_epoch"])
        parameters += metrics["training"]["parameters"]
        if len(sub.split_indices("test")):
            pooled.append(_run_predictions(run_root / group, sub, "test"))
    if not pooled:
        raise ValueError("no architecture group has networks in its test split")
    predicted, actual, names = (np.concatenate(parts) for parts in zip(*pooled))
    metrics = group_metrics(predicted, actual, names)
    return {"metric": "kendall_tau", "value": metrics["kendall_tau"], **_context(metrics),
            "seconds_per_epoch": float(np.mean(seconds)), "parameters": parameters}


def headline(task, metrics: dict) -> tuple[str, float, dict[str, float]]:
    """(metric name, value, context metrics) a table reports for a task: its first summary metric present."""
    names = [m for m in task.summary_metrics if m in metrics] or [task.primary_metric]
    return names[0], metrics[names[0]], {m: metrics[m] for m in names[1:]}


GENERALIZATION_COLUMNS = ("r2", "tau_within", "r2_within", "kendall_tau_unseen", "r2_unseen", "tau_within_unseen",
                          "r2_within_unseen")


def _context(metrics: dict[str, float]) -> dict[str, float]:
    """The generalization metrics a table row carries besides its τ on the test split."""
    return {k: float(metrics[k]) for k in GENERALIZATION_COLUMNS if k in metrics}


def _seeds(args: argparse.Namespace) -> range:
    """The seeds a benchmark runs: --seeds of them from --first-seed."""
    first = getattr(args, "first_seed", 0)
    return range(first, first + args.seeds)


def run(args: argparse.Namespace) -> int:
    from core.bench.machine import machine_info
    from core.runs import train_run
    from core.tasks import TASKS
    from core.tasks.generalization import cross_architecture_zoos, without_unusable_networks
    from core.training.trainer import TrainConfig
    from core.zoo import Zoo

    args.tasks, args.models = args.tasks or default_tasks(), args.models or default_models()
    out = Path(args.out)
    results: list[dict] = []
    zoo_for = {"inr": args.inr_zoo, "cnn": args.cnn_zoo}
    unseen, dropped = None, {}
    if "generalization" in args.tasks:  # networks that diverged in training are dropped (and listed), not read as NaN
        probes = args.probes if any(_takes_probes(m) for m in args.models) else 0
        limit, reader = weight_limit(args.models, {"hidden": args.hidden, "layers": args.layers})
        cnn_zoo, dropped["cnn_zoo"] = without_unusable_networks(args.cnn_zoo, out / "zoos" / "cnn-zoo-usable", probes,
                                                                "--cnn-zoo", limit, reader)
        zoo_for["cnn"] = str(cnn_zoo.dir)
    if args.wild_zoo and "generalization" in args.tasks:  # train on base + seen wild; test on unseen architectures too
        wild, dropped["wild_zoo"] = without_unusable_networks(args.wild_zoo, out / "zoos" / "wild-zoo-usable", probes,
                                                              "--wild-zoo", limit, reader)
        train_zoo, unseen = cross_architecture_zoos(zoo_for["cnn"], wild.dir, out / "zoos", args.holdout_archs)
        zoo_for["cnn"] = str(train_zoo.dir)
    for task in args.tasks:
        task_cls = TASKS[task]
        for model in args.models:
            for seed in _seeds(args):
                cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                                  patience=getattr(args, "patience", 0))
                started = time.perf_counter()
                overrides = {"hidden": args.hidden, "layers": args.layers}
                label, suffix = model, ""
                if args.probes and _takes_probes(model):
                    overrides["probes"] = args.probes
                    label, suffix = f"{model} + {args.probes} probes", f"-p{args.probes}"
                run_dir = out / "runs" / f"{task}-{model}{suffix}-s{seed}"
                if task == "generalization" and _per_group(model, zoo_for["cnn"], unseen):
                    label = f"{model} (one per architecture group)"
                    try:
                        row = {"task": task, "model": label, "seed": seed,
                               **train_per_group(model, zoo_for["cnn"], run_dir, cfg, overrides),
                               "wall_s": time.perf_counter() - started}
                    except Exception as exc:  # as below: one model failing must not hide the others
                        row = {"task": task, "model": label, "seed": seed, "error": str(exc).splitlines()[0]}
                    results.append(row)
                    print(json.dumps(row), flush=True)
                    continue
                try:
                    metrics = train_run(task, model, zoo_for[task_cls.zoo_kind], run_dir, train=cfg,
                                        model_overrides=overrides, overwrite=True, progress=False)
                except Exception as exc:  # report and go on: one model failing must not hide the others
                    results.append({"task": task, "model": label, "seed": seed, "error": str(exc).splitlines()[0]})
                    continue
                metric, value, context = headline(task_cls, metrics["test"])
                if task == "generalization":
                    context.update(_context(_run_group_metrics(run_dir, Zoo.open(zoo_for["cnn"]), unseen)))
                row = {"task": task, "model": label, "seed": seed, "metric": metric, "value": value, **context,
                       "seconds_per_epoch": metrics["training"]["seconds_per_epoch"],
                       "parameters": metrics["training"]["parameters"], "wall_s": time.perf_counter() - started}
                results.append(row)
                print(json.dumps(row), flush=True)
        if getattr(args, "references", True):
            results += reference_rows(task, args, zoo_for["cnn"], unseen)
    report = {"config": vars(args), "machine": machine_info(), "results": results, "dropped_networks": dropped}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown_table(results, args) + dropped_note(dropped)
    (out / "table.md").write_text(table)
    print(table)
    return 0


def weight_limit(models: list[str], overrides: dict[str, object]) -> tuple[float, str]:
    """(limit, reader): the smallest `MetaNetwork.weight_limit` of the models with these config fields, and the
    model it is from ("any metanetwork" when every model reads up to float32's general limit). Every row of a
    benchmark reads the same screened zoo, so the strictest model decides."""
    import torch

    from core.models import config_for, model_class
    from core.models.layers.probe_features import safe_magnitude

    limit, reader = safe_magnitude(torch.float32), "any metanetwork"
    for model in models:
        cls = model_class(model)
        fields = {k: v for k, v in overrides.items() if hasattr(cls.config_class, k)}
        own = cls.weight_limit(config_for(model, **fields))
        if own < limit:
            limit, reader = own, model
    return limit, reader


def _per_group(model: str, zoo_dir: str, unseen) -> bool:
    """Whether a fixed-architecture model must train once per architecture group of the zoo (no wild zoo: it
    cannot read unseen architectures)."""
    from core.models import model_class
    from core.zoo import Zoo

    return model_class(model).fixed_architecture and unseen is None and len(Zoo.open(zoo_dir).architectures) > 1


def _takes_probes(model: str) -> bool:
    """Whether a registered model has the `probes` option."""
    from core.models import model_class

    return any(o.name == "probes" for o in model_class(model).options())


def dropped_note(dropped: dict[str, list[dict]]) -> str:
    """A table.md paragraph naming the networks left out of every row because they diverged in training."""
    from core.tasks.generalization import describe_networks

    parts = [f"{len(rows)} of --{zoo.replace('_', '-')} ({describe_networks(rows)})"
             for zoo, rows in dropped.items() if rows]
    return f"\nDropped from every row (diverged in training, unreadable in float32): {'; '.join(parts)}.\n" \
        if parts else ""


def reference_rows(task: str, args: argparse.Namespace, cnn_zoo: str | None = None, unseen=None) -> list[dict]:
    """Non-metanetwork references of a task: statnn (and an MLP on flat weights) for generalisation, a CNN on
    the renderings for INR classes."""
    from core.bench.inr_baselines import render_and_classify
    from core.zoo import Zoo

    rows = []
    for seed in _seeds(args):
        found = {}
        if task == "generalization" and unseen is not None:
            found["statnn (architecture-free features)"] = _statnn_any(Zoo.open(cnn_zoo), unseen, seed)
        elif task == "generalization":
            found["statnn"] = _statnn(cnn_zoo or args.cnn_zoo, seed)
            found["flat-mlp (per architecture group)"] = _flat_mlp(cnn_zoo or args.cnn_zoo, seed)
        for name, metrics in found.items():
            rows.append({"task": task, "model": name, "seed": seed, "metric": "kendall_tau",
                         "value": metrics["kendall_tau"], **_context(metrics), "seconds_per_epoch": 0.0,
                         "parameters": 0})
        if task == "inr-classify":
            rows.append({"task": task, "model": "render-and-classify (CNN on pixels)", "seed": seed,
                         "metric": "accuracy", "value": render_and_classify(Zoo.open(args.inr_zoo), seed),
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
        # a task's context metrics, e.g. identity_mse (generalization's go to their own table below)
        context = [k for k in ok[0] if k not in ROW_FIELDS and k not in GENERALIZATION_COLUMNS]
        metric = ok[0]["metric"] + "".join(f" ({k} {np.mean([r[k] for r in ok]):.4f})" for k in context)
        lines.append(f"| {task} | {model} | {metric} | {v.mean():.4f} ± {v.std():.4f} | "
                     f"{np.mean([r['seconds_per_epoch'] for r in ok]):.1f} | {ok[0]['parameters']:,} |")
    return "\n".join(lines + generalization_table(results, args)) + "\n"


def _mean_std(rows: list[dict], key: str) -> str:
    values = np.array([r[key] for r in rows if key in r], dtype=float)
    return f"{np.nanmean(values):.3f} ± {np.nanstd(values):.3f}" if len(values) and np.isfinite(values).any() else "—"


def generalization_table(results: list[dict], args: argparse.Namespace) -> list[str]:
    """Generalization rows in full: τ and R² on the test split and on unseen architectures, overall and within each
    architecture group (mean over groups); seeds as mean ± std."""
    rows = [r for r in results if r["task"] == "generalization" and "value" in r]
    if not any(k in r for r in rows for k in GENERALIZATION_COLUMNS):
        return []
    unseen = getattr(args, "wild_zoo", None)
    lines = ["", "Generalization" + (f" (unseen: {args.holdout_archs:.0%} of the architectures of "
                                     f"{Path(unseen).name}, never trained on)" if unseen else "") + ":", "",
             "| model | seeds | τ test | R² test | τ within groups | R² within groups | τ unseen | R² unseen | "
             "τ within unseen groups |", "|---|---|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [dict(r, kendall_tau=r["value"]) for r in rows if r["model"] == model]
        cells = [_mean_std(mine, k) for k in ("kendall_tau", "r2", "tau_within", "r2_within", "kendall_tau_unseen",
                                              "r2_unseen", "tau_within_unseen")]
        lines.append(f"| {model} | {len(mine)} | " + " | ".join(cells) + " |")
    return lines
