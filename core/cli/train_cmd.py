"""`python -m core train | evaluate | predict | edit | embed`: the task pipeline from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli import add_when_parsed
from core.cli.inspect_cmd import add_activation_arguments

# Options of the training loop itself (TrainConfig fields); task and model options come from their classes.
TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "stop_window", "ema", "seed", "device",
                 "compile", "precision")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The `train` command's arguments: task, model and zoo, the training loop, augmentation, and the options
    every registered task and model declares (`Task.cli_options`, `MetaNetwork.options()`)."""
    from core.models import MODELS
    from core.options import add_options
    from core.symmetry.canonical import CANONICAL_RULES
    from core.tasks import TASKS

    p.add_argument("task", choices=list(TASKS))
    p.add_argument("--model", required=True, choices=list(MODELS), metavar="MODEL", help=", ".join(MODELS))
    p.add_argument("--zoo", required=True, help="zoo directory (python -m core zoo build …)")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--stop-window", type=int, default=1, metavar="N",
                   help="stop after --patience epochs that improve neither the best validation score nor the "
                        "best mean of N consecutive ones (1: the plain rule; a few epochs steadies a noisy metric "
                        "and never stops a run earlier). The best single epoch is still the one kept")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate and keep an exponential moving average of the weights, updated after every "
                        "step with this decay (0.998 averages about the last 500 steps; 0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--compile", action="store_true", help="torch.compile the metanetwork's layers (faster long runs)")
    p.add_argument("--precision", default="auto",
                   help="auto: float16 mixed precision on CUDA, float32 on CPU; bf16: bfloat16 mixed precision "
                        "(fast on CPUs with AMX / AVX512-BF16); fp32: float32 everywhere")
    add_augment_arguments(p)
    p.add_argument("--canonical", nargs="?", const="incoming", default=None, choices=CANONICAL_RULES,
                   help="the model reads each network's canonical form (one representative per symmetry orbit: "
                        "sine phases wrapped, neurons sign- or scale-normalised and sorted), in training and in "
                        "every later prediction: exact invariance for any model (tasks with one output per network); "
                        "symmetry transforms of --augment are then off. Neurons are normalised by their incoming "
                        "parameters (the default), by their outgoing ones (`--canonical outgoing`: input "
                        "translations and rotations of an INR then keep every neuron's sign), or the first layer by "
                        "its incoming and the rest by their outgoing ones (`--canonical incoming-first`). It also "
                        "erases a ReLU network's layer scales, which on the bundled CNN zoo predict generalisation")
    add_options(p.add_argument_group("model options"), {n: cls.options() for n, cls in MODELS.items()}, "model")
    add_options(p.add_argument_group("task options"), {n: cls.cli_options for n, cls in TASKS.items()}, "task")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_augment_arguments(p: argparse.ArgumentParser) -> None:
    """Training-time augmentation of the input networks."""
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", nargs="?", const=True, default=None, metavar="SPEC",
                     help="alone: random symmetry transforms of every training network: permutations, sign "
                          "flips; not sine phase shifts or ReLU scalings (the mlp baseline's default). SPEC "
                          "(inr-classify, inr-edit, embed --objective function): weight transforms that change the "
                          "INR's function, per training batch: ng (translate=0.25,rotate=45,scale=0.2,noise=0.1,"
                          "dropout=0.01) or key=value,… (translate, rotate in degrees, scale, noise, dropout); add "
                          "'symmetry' or 'nosymmetry' to switch symmetry transforms on or off (default: the model's)")
    aug.add_argument("--no-augment", dest="augment", action="store_false")


def register(sub: argparse._SubParsersAction) -> None:
    """Add train, evaluate, predict, edit and embed."""
    p = sub.add_parser("train", help="train a metanetwork on a task over a zoo",
                       description="Train a metanetwork. The run directory gets config.json, weights.safetensors, "
                                   "metrics.json and log.csv; --resume continues an interrupted run.")
    add_when_parsed(p, add_train_arguments)
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="a run's metrics on a zoo split")
    p.add_argument("run", help="run directory")
    p.add_argument("--zoo", default=None, help="zoo directory (default: the run's own zoo)")
    p.add_argument("--split", default="test", help="train, val, test or all")
    p.add_argument("--ensemble", nargs="+", default=[], metavar="RUN",
                   help="more runs of the same task (e.g. other seeds): the metrics of the mean of all the runs' "
                        "predictions (class probabilities, predicted accuracies), and each run's own")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="a run's predictions for checkpoint files")
    p.add_argument("run")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--ensemble", nargs="+", default=[], metavar="RUN",
                   help="more runs of the same task (other seeds): inr-classify gives the mean of their class "
                        "probabilities; generalization the mean and spread of their predicted accuracies")
    p.add_argument("--neighbours", type=int, default=5,
                   help="generalization: list this many nearest networks of the run's zoo (0: none)")
    add_activation_arguments(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_predict)

    p = sub.add_parser("edit", help="edit an INR checkpoint with an inr-edit run")
    p.add_argument("run")
    p.add_argument("path", metavar="FILE")
    p.add_argument("--out", required=True, help="edited checkpoint (same format as the input)")
    p.add_argument("--png", default=None, help="also write original | edited | target as a PNG")
    add_activation_arguments(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_edit)

    p = sub.add_parser("embed", help="embed every network of one or more zoos with an embed (or any) run")
    p.add_argument("run")
    p.add_argument("zoos", nargs="+", metavar="ZOO_DIR")
    p.add_argument("--out", help="output .npz: the vectors the Zoo explorer shows (unit vectors for an embed run, "
                   "logits for a classifier, the raw output otherwise) and the table rows of the networks read")
    p.add_argument("--cache", metavar="DIR", help="also store one Zoo-explorer cache entry per zoo in DIR "
                   "(assets/embeddings: bundled; the app also reads $WSE_CACHE_DIR, default "
                   "~/.cache/weight-space-explorer/embeddings)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_embed)


def run_train(args: argparse.Namespace) -> int:
    """Train and print the final metrics."""
    from core.models import MODELS
    from core.options import chosen
    from core.runs import asks_symmetry_transforms, train_run
    from core.tasks import TASKS
    from core.training import distributed
    from core.training.trainer import TrainConfig

    options = chosen(args, TASKS[args.task].cli_options)
    # every model option given, so that one the chosen model lacks is refused by its config
    overrides = chosen(args, {o for cls in MODELS.values() for o in cls.options()})
    cfg = TrainConfig(**{k: getattr(args, k) for k in TRAIN_OPTIONS})
    if (args.task == "embed" and options.get("objective") == "function" and not overrides.get("probes")
            and distributed.env_world().is_main):
        # measured on digits-inr and mnist5k-inr (docs/benchmarks/inr_learning.md)
        print("note: embed --objective function without probe features rarely learns: on digits-inr every model "
              "without --probes stayed at chance 1-NN (0.08-0.13), ng-gnn with --probes 16 reached 0.81 +- 0.07; "
              "on mnist5k-inr ng-gnn, ng-t and nfn-np reached 0.16-0.26 without probes (the flat mlp chance), "
              "the graph models 0.80-0.86 with --probes 128", file=sys.stderr)
    if args.canonical and asks_symmetry_transforms(args.augment) and distributed.env_world().is_main:
        print("note: --canonical undoes every permutation and sign flip, so the symmetry transforms of --augment "
              "are off", file=sys.stderr)
    try:  # under torchrun every process trains (core.training.distributed); rank 0 writes and prints
        metrics = train_run(args.task, args.model, args.zoo, args.out, train=cfg, task_options=options,
                            model_overrides=overrides, augment=args.augment, canonical=args.canonical,
                            resume=args.resume,
                            overwrite=args.overwrite, progress=not args.quiet)
    finally:
        distributed.teardown()
    if distributed.env_world().is_main:
        print(json.dumps({k: _brief(v) for k, v in metrics.items()}))
        if metrics["training"]["best_epoch"] == 0:
            print("note: no epoch beat the untrained model on validation; the saved model is the untrained one",
                  file=sys.stderr)
    return 0


def _brief(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "confusion"}


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a run on a zoo split."""
    from core.runs import load_run, run_split
    from core.zoo import Zoo

    run = load_run(args.run)
    zoo = Zoo.open(args.zoo or run.config.zoo)
    if args.ensemble:
        return _evaluate_ensemble(args, [run, *(load_run(r) for r in args.ensemble)], zoo)
    data = run_split(run, zoo, None if args.split == "all" else args.split)
    metrics = run.trainer(args.device).evaluate(data)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{run.config.task} / {run.config.model} on {args.split} ({len(data)} networks):")
        for k, v in _brief(metrics).items():
            print(f"  {k:<14} {v:.4f}" if isinstance(v, float) else f"  {k:<14} {v}")
    return 0


def _evaluate_ensemble(args: argparse.Namespace, runs: list, zoo) -> int:
    from core.runs import ensemble_metrics

    metrics = ensemble_metrics(runs, zoo, None if args.split == "all" else args.split, args.device)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{runs[0].config.task}: the mean of {len(runs)} runs' predictions on {args.split}:")
    for k, v in _brief(metrics).items():
        if k not in ("members", "runs"):
            print(f"  {k:<14} {v:.4f}" if isinstance(v, float) else f"  {k:<14} {v}")
    print("each run alone:")
    for path, member in zip(metrics["runs"], metrics["members"]):
        shown = ", ".join(f"{k} {v:.4f}" for k, v in _brief(member).items() if isinstance(v, float))
        print(f"  {path}: {shown}")
    return 0


def _load_files(args: argparse.Namespace, files: list[str]):
    from core.io import load_network

    return [load_network(f, args.activation, w0=args.w0, slope=args.slope, input_size=args.input_size) for f in files]


def _check_command(run, command: str) -> None:
    """Refuse to apply a run with a command its task does not use (e.g. `predict` on an inr-edit run)."""
    if run.task.predict_command != command:
        from core.errors import WeightSpaceError

        raise WeightSpaceError(f"this {run.config.task} run is applied with "
                               f"`python -m core {run.task.predict_command}`")


def run_predict(args: argparse.Namespace) -> int:
    """Per file: the task's prediction (class probabilities, predicted accuracy, embedding, …)."""
    import torch

    from core.runs import check_ensemble, load_run

    run = load_run(args.run)
    _check_command(run, "predict")
    members = [load_run(r) for r in args.ensemble]
    if members:
        check_ensemble([run, *members])
    networks = _load_files(args, args.files)
    preds = run.predict(networks, args.device)
    if run.config.task == "generalization":
        return _predict_generalization(args, run, members, networks, preds)
    if members:  # the mean of the runs' class probabilities
        preds = torch.stack([preds, *(m.predict(networks, args.device) for m in members)]).mean(0)
    extra = {"ensemble_size": 1 + len(members)} if members else {}
    rows = [{"file": f, **run.task.format_prediction(p), **extra} for f, p in zip(args.files, preds)]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['file']}: " + ", ".join(_brief_value(k, v) for k, v in row.items() if k != "file"))
    return 0


def _predict_generalization(args: argparse.Namespace, run, members: list, networks: list, preds) -> int:
    """Predicted test accuracy ± the ensemble's spread and the run's test RMSE, and the nearest zoo networks."""
    from core.tasks.generalization import nearest_networks, prediction_report
    from core.zoo import Zoo

    per_run = [preds.numpy()] + [m.predict(networks, args.device).numpy() for m in members]
    rows = prediction_report(per_run, run.metrics.get("test", {}).get("mse"))
    zoo = Zoo.open(run.config.zoo) if args.neighbours > 0 else None
    near = nearest_networks(zoo, networks, args.neighbours) if zoo is not None else None
    for i, (f, row) in enumerate(zip(args.files, rows)):
        row["file"] = f
        if zoo is not None:
            row["architecture_in_zoo"] = networks[i].architecture in zoo.architectures.values()
            row["nearest"] = near[i]
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        spread = f" ± {row['ensemble_std']:.4f} (std over {row['ensemble_size']} runs)" if row["ensemble_std"] else ""
        rmse = f"; this run's test-split RMSE {row['test_rmse']:.4f}" if row["test_rmse"] is not None else ""
        print(f"{row['file']}: predicted test accuracy {row['predicted_accuracy']:.4f}{spread}{rmse}")
        if row.get("architecture_in_zoo") is False:
            print("  its architecture is not among the run's zoo's: the test-split RMSE was measured on architectures "
                  "seen in training and may understate the error here")
        for n in row.get("nearest", []):
            print(f"  nearest zoo network {n['index']} ({n['group']}): test accuracy {n['test_accuracy']:.4f}, "
                  f"distance {n['distance']:.2f}")
    return 0


def _brief_value(key: str, value) -> str:
    """`key=value` for one field of a prediction row; class probabilities as the likeliest three; other vectors as
    their length."""
    if key == "probabilities":
        top = sorted(range(len(value)), key=lambda c: -value[c])[:3]
        return "likeliest " + ", ".join(f"{c} ({value[c]:.3f})" for c in top)
    if isinstance(value, list):
        return f"{key}[{len(value)}]"
    return f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"


def run_edit(args: argparse.Namespace) -> int:
    """Write the edited INR in the input's own format (and optionally a PNG)."""
    from core.runs import load_run
    from core.viz.images import png_strip

    run = load_run(args.run)
    _check_command(run, "edit")
    (network,) = _load_files(args, [args.path])
    result = run.edit([network])[0]
    save_like_input(result["network"], Path(args.path), Path(args.out), network.meta.get("container", "torch"))
    mse, identity = result["mse"], result["identity_mse"]
    if args.png:
        from core.io.atomic import write_bytes

        write_bytes(args.png, png_strip([result["source"], result["edited"], result["target"]]))
    intensity = result["intensity_only_mse"]  # what a·f + b alone would reach
    report = {"out": args.out, "edit": run.task.edit, "mse": mse, "identity_mse": identity,
              "intensity_only_mse": intensity, "png": args.png}
    print(json.dumps(report) if args.json
          else f"wrote {args.out}: {run.task.edit} MSE {mse:.5f} (unedited {identity:.5f}, "
               f"best intensity-only edit {intensity:.5f})")
    return 0


def save_like_input(network, source: Path, out: Path, container: str) -> None:
    """Save `network` in the container its source file used (export safetensors, plain safetensors or torch)."""
    from safetensors.torch import save_file

    from core.io import save_network
    from core.io.atomic import atomic_path, save_torch

    if container == "safetensors" and network.meta.get("source") != "state_dict":
        save_network(network, out)
    elif container == "safetensors":
        with atomic_path(out) as tmp:
            save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(tmp))
    else:
        save_torch(network.state_dict(), out)


def run_embed(args: argparse.Namespace) -> int:
    """Embed each zoo once; write the vectors with their table rows to one .npz and/or one cache entry per zoo."""
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from core.embedding_cache import entry_path, save_entry
    from core.errors import WeightSpaceError
    from core.explore import embed_zoo
    from core.io.atomic import atomic_path
    from core.runs import load_run
    from core.zoo import Zoo

    if not args.out and not args.cache:
        raise WeightSpaceError("embed needs --out FILE.npz, --cache DIR or both")
    run = load_run(args.run)
    embeddings, tables = [], []
    for zoo_dir in args.zoos:
        zoo = Zoo.open(zoo_dir)
        with tqdm(total=len(zoo.table), desc=f"embed {zoo_dir}", unit="net", dynamic_ncols=True) as bar:
            entry = embed_zoo(zoo, run, progress=lambda done: bar.update(round(done * bar.total) - bar.n))
        for line in entry.left_out:
            print(f"{zoo_dir}: left out {line}", file=sys.stderr)
        if args.cache:
            path = entry_path(args.cache, zoo, run)
            save_entry(path, entry)
            print(f"wrote {path} ({zoo_dir})")
        if len(entry.rows):
            embeddings.append(entry.vectors)
            tables.append(zoo.table.iloc[entry.rows].assign(zoo=str(zoo_dir)))
    if not args.out:
        return 0
    if not embeddings:
        raise WeightSpaceError("this run could read no network of these zoos; nothing to write")
    if len({e.shape[1] for e in embeddings}) > 1:
        raise WeightSpaceError("the zoos gave embeddings of different sizes; embed them one at a time")
    table = pd.concat(tables, ignore_index=True)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, embeddings=np.concatenate(embeddings),
                     **{f"table_{c}": table[c].to_numpy() if pd.api.types.is_numeric_dtype(table[c])
                        else table[c].astype(str).to_numpy(dtype=str) for c in table.columns})
    print(f"wrote {args.out}: {len(table)} embeddings of size {embeddings[0].shape[1]}")
    return 0
