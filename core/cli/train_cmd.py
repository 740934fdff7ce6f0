"""`python -m core train | evaluate | predict | edit | embed`: the task pipeline from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.inspect_cmd import add_activation_arguments

if TYPE_CHECKING:
    import numpy as np

TASK_NAMES = ("inr-classify", "inr-edit", "generalization", "embed")


def register(sub: argparse._SubParsersAction) -> None:
    """Add train, evaluate, predict, edit and embed."""
    p = sub.add_parser("train", help="train a metanetwork on a task over a zoo",
                       description="Train a metanetwork. The run directory gets config.json, weights.safetensors, "
                                   "metrics.json and log.csv; --resume continues an interrupted run.")
    p.add_argument("task", choices=TASK_NAMES)
    p.add_argument("--model", required=True, help="ng-gnn, ng-t, scalegmn, scalegmn-b, mlp, nfn-np, nfn-hnp")
    p.add_argument("--zoo", required=True, help="zoo directory (python -m core zoo build …)")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--compile", action="store_true", help="torch.compile the metanetwork's layers (faster long runs)")
    p.add_argument("--precision", default="auto",
                   help="auto: float16 mixed precision on CUDA, float32 on CPU; bf16: bfloat16 mixed precision "
                        "(fast on CPUs with AMX / AVX512-BF16); fp32: float32 everywhere")
    p.add_argument("--hidden", type=int, default=None, help="metanetwork width")
    p.add_argument("--layers", type=int, default=None, help="metanetwork depth")
    p.add_argument("--edge-hidden", type=int, default=None, help="ng-gnn: width of the edge states (default: --hidden)")
    p.add_argument("--probes", type=int, default=None, help="INR probe features at this many learned points (ng-gnn, ng-t, scalegmn, scalegmn-b)")
    p.add_argument("--edit", default="dilate", help="inr-edit: dilate, erode or blur")
    p.add_argument("--dim", type=int, default=32, help="embed: embedding size")
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--augment", dest="augment", action="store_true", default=None,
                     help="random symmetry transforms of every training network (default for mlp / nfn-*)")
    aug.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="a run's metrics on a zoo split")
    p.add_argument("run", help="run directory")
    p.add_argument("--zoo", default=None, help="zoo directory (default: the run's own zoo)")
    p.add_argument("--split", default="test", help="train, val, test or all")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="a run's predictions for checkpoint files")
    p.add_argument("run")
    p.add_argument("files", nargs="+", metavar="FILE")
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
    p.add_argument("--out", required=True, help="output .npz (embeddings + the zoos' tables)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_embed)


def run_train(args: argparse.Namespace) -> int:
    """Train and print the final metrics."""
    from core.training.runs import train_run
    from core.training.trainer import TrainConfig

    options = {"inr-edit": {"edit": args.edit}, "embed": {"dim": args.dim}}.get(args.task, {})
    overrides = {k: v for k, v in (("hidden", args.hidden), ("layers", args.layers), ("probes", args.probes),
                                                   ("edge_hidden", args.edge_hidden)) if v is not None}
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      patience=args.patience, seed=args.seed, device=args.device, compile=args.compile,
                      precision=args.precision)
    metrics = train_run(args.task, args.model, args.zoo, args.out, train=cfg, task_options=options,
                        model_overrides=overrides, augment=args.augment, resume=args.resume, progress=not args.quiet)
    print(json.dumps({k: _brief(v) for k, v in metrics.items()}))
    return 0


def _brief(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "confusion"}


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a run on a zoo split."""
    from core.training.runs import graph_set_from_zoo, load_run
    from core.zoo import Zoo

    run = load_run(args.run)
    zoo = Zoo.open(args.zoo or run.config.zoo)
    data = graph_set_from_zoo(zoo, None if args.split == "all" else args.split, run.task, run.config.grid_size)
    if len(data) == 0:
        from core.errors import WeightSpaceError

        raise WeightSpaceError(f"split {args.split!r} of {zoo.dir} is empty")
    metrics = run.trainer(args.device).evaluate(data)
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{run.config.task} / {run.config.model} on {args.split} ({len(data)} networks):")
        for k, v in _brief(metrics).items():
            print(f"  {k:<14} {v:.4f}" if isinstance(v, float) else f"  {k:<14} {v}")
    return 0


def _load_files(args: argparse.Namespace, files: list[str]):
    from core.io import load_network

    return [load_network(f, args.activation, w0=args.w0, slope=args.slope, input_size=args.input_size) for f in files]


def run_predict(args: argparse.Namespace) -> int:
    """Per file: class probabilities, predicted accuracy or embedding."""
    from core.training.runs import load_run

    run = load_run(args.run)
    if run.config.task == "inr-edit":
        from core.errors import WeightSpaceError

        raise WeightSpaceError("this is an inr-edit run; use `python -m core edit`")
    networks = _load_files(args, args.files)
    preds = run.predict(networks, args.device)
    rows = []
    for f, p in zip(args.files, preds):
        row: dict = {"file": f}
        if run.config.task == "inr-classify":
            row.update(predicted_class=int(p.argmax()), probabilities=[round(float(v), 6) for v in p])
        elif run.config.task == "generalization":
            row["predicted_accuracy"] = float(p)
        else:
            row["embedding"] = [float(v) for v in p]
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            detail = {k: v for k, v in row.items() if k not in ("file", "embedding", "probabilities")}
            print(f"{row['file']}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in detail.items())
                  + (f" embedding[{len(row['embedding'])}]" if "embedding" in row else ""))
    return 0


def run_edit(args: argparse.Namespace) -> int:
    """Write the edited INR in the input's own format (and optionally a PNG)."""
    from core.training.runs import load_run
    from core.viz.images import png_strip

    run = load_run(args.run)
    (network,) = _load_files(args, [args.path])
    result = run.edit([network])[0]
    save_like_input(result["network"], Path(args.path), Path(args.out), network.meta.get("container", "torch"))
    mse = float(((result["edited"] - result["target"]) ** 2).mean())
    identity = float(((result["source"] - result["target"]) ** 2).mean())
    if args.png:
        from core.io.atomic import write_bytes

        write_bytes(args.png, png_strip([result["source"], result["edited"], result["target"]]))
    report = {"out": args.out, "edit": run.task.edit, "mse": mse, "identity_mse": identity, "png": args.png}
    print(json.dumps(report) if args.json else f"wrote {args.out}: {run.task.edit} MSE {mse:.5f} (unedited {identity:.5f})")
    return 0


def save_like_input(network, source: Path, out: Path, container: str) -> None:
    """Save `network` in the container its source file used (export safetensors, plain safetensors or torch)."""
    import torch
    from safetensors.torch import save_file

    from core.io import save_network
    from core.io.atomic import atomic_path

    if container == "safetensors" and network.meta.get("source") != "state_dict":
        save_network(network, out)
    elif container == "safetensors":
        with atomic_path(out) as tmp:
            save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(tmp))
    else:
        with atomic_path(out) as tmp:
            torch.save(network.state_dict(), tmp)


def run_embed(args: argparse.Namespace) -> int:
    """Embeddings of all networks of the zoos, with their tables, in one .npz."""
    import numpy as np
    import pandas as pd

    from core.io.atomic import atomic_path
    from core.training.runs import graph_set_from_zoo, load_run
    from core.zoo import Zoo

    run = load_run(args.run)
    embeddings, tables = [], []
    for zoo_dir in args.zoos:
        zoo = Zoo.open(zoo_dir)
        data = graph_set_from_zoo(zoo, None, run.task, run.config.grid_size)
        order = torch_cat_index(data)
        preds = run.trainer(args.device).predict(data)
        emb = np.empty((len(zoo.table), preds.shape[1]), dtype=np.float32)
        emb[order] = preds.numpy()
        embeddings.append(emb)
        tables.append(zoo.table.assign(zoo=str(zoo_dir)))
    table = pd.concat(tables, ignore_index=True)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, embeddings=np.concatenate(embeddings),
                     **{f"table_{c}": table[c].to_numpy() if pd.api.types.is_numeric_dtype(table[c])
                        else table[c].astype(str).to_numpy(dtype=str) for c in table.columns})
    print(f"wrote {args.out}: {len(table)} embeddings of size {embeddings[0].shape[1]}")
    return 0


def torch_cat_index(data) -> "np.ndarray":
    """Zoo rows in the order `data.batches(shuffle=False)` yields networks."""
    import torch

    return torch.cat([g.index for g in data.groups]).numpy()
