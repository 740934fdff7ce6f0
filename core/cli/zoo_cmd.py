"""`python -m core zoo …`: build INR / CNN zoos, import public zoos, summarise a zoo directory."""

from __future__ import annotations

import argparse
import json


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 32,32, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _add_view_arguments(parser: argparse.ArgumentParser, views_help: str) -> None:
    """Options `zoo extend` and `zoo refit` share: the source zoo, how many new fits, their seeds, where, how fast."""
    parser.add_argument("src", help="a finished image-INR zoo (zoo build inr)")
    parser.add_argument("--views", type=int, default=1, help=views_help)
    parser.add_argument("--seed", type=int, required=True,
                        help="new INR j starts from init seed SEED·1,000,000 + j (must not overlap SRC's seeds)")
    parser.add_argument("--out", required=True, help="the new zoo directory")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU core)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="INRs fitted at once; changes the speed, not the networks (default: by image size)")


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `zoo build inr|cnn`, `zoo merge`, `zoo extend`, `zoo refit`, `zoo info`, `zoo import`."""
    p = sub.add_parser("zoo", help="build, import and summarise model zoos",
                       description="Build INR/CNN zoos from bundled images, import public zoos, summarise a zoo.")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)

    b = zsub.add_parser("build", help="generate a zoo")
    bsub = b.add_subparsers(dest="kind", metavar="KIND", required=True)
    inr = bsub.add_parser("inr", help="fit SIRENs to images (DWSNets recipe by default); resumable")
    inr.add_argument("--images", default="mnist5k", help="mnist5k | digits | folder of PNGs | .npz (default mnist5k)")
    inr.add_argument("--count", type=int, default=None, help="number of source images (default: all)")
    inr.add_argument("--out", required=True, help="zoo directory")
    inr.add_argument("--inrs-per-image", type=int, default=1,
                     help="fits (views, different seeds) of each training image; val/test images get one (default 1)")
    inr.add_argument("--steps", type=int, default=1000, help="maximum Adam steps per INR (default 1000)")
    inr.add_argument("--target-psnr", type=float, default=40.0, help="stop an INR at this PSNR (default 40 dB)")
    inr.add_argument("--hidden", type=_widths, default=(32, 32), help="hidden widths (default 32,32)")
    inr.add_argument("--w0", type=float, default=30.0)
    inr.add_argument("--lr", type=float, default=5e-4)
    inr.add_argument("--init", choices=["dwsnets", "shared", "siren"], default="dwsnets",
                     help="dwsnets: every sine layer U(±√(6/fan_in)/w0), zero biases, one seed per INR (default); "
                          "shared: all INRs start from one dwsnets init; siren: first layer U(±1/fan_in), biases "
                          "U(±1/√fan_in) (the bundled zoos' init)")
    inr.add_argument("--seed", type=int, default=0)
    inr.add_argument("--batch-size", type=int, default=None,
                     help="INRs trained at once per worker (default: by image size and width, 16 at 28×28 with "
                          "width 32; a speed setting, the INRs do not change)")
    inr.add_argument("--chunk-size", type=int, default=500, help="INRs per resumable chunk (default 500)")
    inr.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU core)")
    inr.add_argument("--overwrite", action="store_true", help="discard an existing zoo in --out")
    inr.add_argument("--shard", default=None, metavar="I/N",
                     help="build shard I of N (0 ≤ I < N) of the zoo, then `zoo merge`; under torchrun each process "
                          "builds its rank's shard of --out and rank 0 merges them")
    inr.set_defaults(func=run_build_inr)

    cnn = bsub.add_parser("cnn", help="train small CNNs with a hyperparameter sweep; resumable")
    cnn.add_argument("--images", default="digits", help="digits | mnist5k | folder of PNGs | .npz (default digits)")
    cnn.add_argument("--count", type=int, default=200)
    cnn.add_argument("--out", required=True)
    cnn.add_argument("--wild", action="store_true",
                     help="diverse architectures (depth, width, kernels, activations, residuals)")
    cnn.add_argument("--nets-per-arch", type=int, default=4, help="with --wild: networks per sampled architecture")
    cnn.add_argument("--max-epochs", type=int, default=16)
    cnn.add_argument("--sweep", choices=["basic", "full"], default="basic",
                     help="full: also initialisation distribution, dropout and RMSprop (Small CNN Zoo sweep)")
    cnn.add_argument("--checkpoints", type=int, default=1,
                     help="snapshots per run stored as separate networks with run_id/epoch columns (default 1)")
    cnn.add_argument("--train-eval-limit", type=int, default=None,
                     help="measure train accuracy on the first N training images only (faster builds)")
    cnn.add_argument("--seed", type=int, default=0)
    cnn.add_argument("--chunk-size", type=int, default=64)
    cnn.add_argument("--workers", type=int, default=None)
    cnn.add_argument("--overwrite", action="store_true")
    cnn.add_argument("--shard", default=None, metavar="I/N",
                     help="build shard I of N (0 ≤ I < N) of the zoo, then `zoo merge`; under torchrun each process "
                          "builds its rank's shard of --out and rank 0 merges them")
    cnn.set_defaults(func=run_build_cnn)

    merge = zsub.add_parser("merge", help="finish a sharded build (zoo build … --shard I/N) into one zoo",
                            description="Gather the N shards of a build into OUT: identical to a one-process build.")
    merge.add_argument("out", help="the zoo directory to finish (the shards' shared --out, or a new directory)")
    merge.add_argument("shards", nargs="*", metavar="SHARD_DIR", help="the shards' directories (default: OUT)")
    merge.set_defaults(func=run_merge)

    ext = zsub.add_parser("extend", help="add training views (more INRs of each training image) to an INR zoo",
                          description="Write OUT: the image-INR zoo SRC plus VIEWS new INRs of each training image, "
                                      "fitted with SRC's recipe from fresh seeds; SRC's networks and splits are kept. "
                                      "Resumable (work directory OUT.views, removed when done).")
    _add_view_arguments(ext, "new INRs per training image (default 1)")
    ext.set_defaults(func=run_extend)

    refit = zsub.add_parser("refit", help="new INRs of an INR zoo's val or test images, alone: a second held-out set",
                            description="Write OUT: VIEWS new INRs of each SPLIT image of the image-INR zoo SRC, all "
                                        "in SPLIT, fitted with SRC's recipe from fresh seeds. `evaluate RUN --zoo OUT "
                                        "--split SPLIT` then scores a run trained on SRC on INRs its validation and "
                                        "test scores never saw. Resumable (work directory OUT.views, removed when "
                                        "done).")
    _add_view_arguments(refit, "new INRs per image (default 1)")
    refit.add_argument("--split", choices=["val", "test"], default="test", help="whose images to refit (default test)")
    refit.set_defaults(func=run_refit)

    info = zsub.add_parser("info", help="counts, architectures, label / PSNR / accuracy summary, splits")
    info.add_argument("dir")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--drift", action="store_true",
                      help="INR zoos: per layer, how far the fitted parameters moved from their initial values "
                           "(rebuilt from the stored seeds); flags layers that carry the init, not the data")
    info.set_defaults(func=run_info)

    imp = zsub.add_parser("import", help="convert a public zoo (dwsnets, nfn, small-cnn-zoo, cnn-wild-park)")
    imp.add_argument("format", choices=["dwsnets", "nfn", "small-cnn-zoo", "cnn-wild-park"])
    imp.add_argument("src")
    imp.add_argument("--out", required=True)
    imp.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    imp.add_argument("--overwrite", action="store_true")
    imp.set_defaults(func=run_import)
    return p


def run_build_inr(args: argparse.Namespace) -> int:
    from core.zoo import build_inr_zoo
    from core.zoo.build import build_sharded

    zoo, shard = build_sharded(
        build_inr_zoo, args.out, args.shard, args.workers, images=args.images, count=args.count,
        inrs_per_image=args.inrs_per_image, hidden=args.hidden, w0=args.w0, steps=args.steps,
        target_psnr=args.target_psnr, seed=args.seed, batch_size=args.batch_size, lr=args.lr, init=args.init,
        chunk_size=args.chunk_size, overwrite=args.overwrite)
    return _report_build(args, zoo, shard)


def _report_build(args: argparse.Namespace, zoo, shard: tuple[int, int] | None) -> int:
    """The zoo's summary; for one shard, how to finish the build; nothing from torchrun's other ranks."""
    if zoo is None and args.shard:
        print(f"built shard {shard[0]}/{shard[1]} in {args.out}; once all {shard[1]} are built: "
              f"python -m core zoo merge {args.out} (their directories, if not this one)")
    elif zoo is not None and (args.shard or shard is None or shard[0] == 0):
        print(format_info(zoo_info(zoo)))
    return 0


def run_build_cnn(args: argparse.Namespace) -> int:
    from core.zoo import build_cnn_zoo
    from core.zoo.build import build_sharded

    zoo, shard = build_sharded(build_cnn_zoo, args.out, args.shard, args.workers, images=args.images,
                               count=args.count, wild=args.wild, seed=args.seed, max_epochs=args.max_epochs,
                               nets_per_arch=args.nets_per_arch, chunk_size=args.chunk_size, sweep=args.sweep,
                               checkpoints=args.checkpoints, train_eval_limit=args.train_eval_limit,
                               overwrite=args.overwrite)
    return _report_build(args, zoo, shard)


def run_merge(args: argparse.Namespace) -> int:
    """Finish a sharded build: gather the shards' chunks into one zoo and print its summary."""
    from core.zoo import Zoo
    from core.zoo.store import merge_shards

    print(format_info(zoo_info(Zoo.open(merge_shards(args.out, args.shards)))))
    return 0


def run_extend(args: argparse.Namespace) -> int:
    """Fit the new views, write the extended zoo and print its summary."""
    from core.zoo.extend import add_inr_views

    zoo = add_inr_views(args.src, args.out, args.views, args.seed, workers=args.workers, batch_size=args.batch_size)
    print(format_info(zoo_info(zoo)))
    return 0


def run_refit(args: argparse.Namespace) -> int:
    """Fit the held-out refits, write their zoo and print its summary."""
    from core.zoo.extend import refit_held_out

    zoo = refit_held_out(args.src, args.out, args.split, args.views, args.seed, workers=args.workers,
                         batch_size=args.batch_size)
    print(format_info(zoo_info(zoo)))
    return 0


def run_import(args: argparse.Namespace) -> int:
    from core.zoo import import_zoo

    zoo = import_zoo(args.format, args.src, args.out, seed=args.seed, overwrite=args.overwrite)
    print(format_info(zoo_info(zoo)))
    return 0


def _stats(values) -> dict:
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {}
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}


def zoo_info(zoo) -> dict:
    """JSON-ready summary of an opened Zoo."""
    t = zoo.table
    info = {
        "dir": str(zoo.dir),
        "generator": zoo.manifest.get("generator", {}).get("name"),
        "count": len(zoo),
        "source": zoo.manifest.get("source", {}),
        "architectures": {g: {"count": int((t["group"] == g).sum()), "parameters": a.num_parameters,
                              "layers": a.describe().splitlines()} for g, a in zoo.architectures.items()},
        "splits": {s: len(v) for s, v in zoo.manifest.get("splits", {}).items()},
    }
    if info["generator"] == "inr":
        from core.zoo.inr import inr_recipe

        info["recipe"] = inr_recipe(zoo.manifest)
    if "label" in t:
        info["labels"] = {str(k): int(v) for k, v in t["label"].value_counts().sort_index().items()}
    for col in ("psnr", "steps", "test_accuracy", "train_accuracy", "generalization_gap"):
        if col in t:
            info[col] = _stats(t[col])
    return info


def format_info(info: dict) -> str:
    """Human-readable summary."""
    lines = [f"zoo {info['dir']}: {info['count']} networks ({info['generator']})"]
    src = info.get("source") or {}
    if src:
        lines.append("source: " + ", ".join(f"{k}={v}" for k, v in src.items()))
    recipe = info.get("recipe")
    if recipe:
        stop = "never" if recipe["target_psnr"] is None else f"at {recipe['target_psnr']} dB"
        lines.append(f"recipe: init {recipe['init']}, w0 {recipe['w0']}, Adam lr {recipe['lr']}, ≤ {recipe['steps']} "
                     f"steps, stop {stop}" + ("" if recipe["recorded"] else " (derived from the build options)"))
    for g, a in info["architectures"].items():
        lines.append(f"group {g}: {a['count']} networks, {a['parameters']} parameters — " + "; ".join(a["layers"]))
    lines.append("splits: " + ", ".join(f"{k} {v}" for k, v in info["splits"].items()))
    if "labels" in info:
        lines.append("labels: " + ", ".join(f"{k}: {v}" for k, v in info["labels"].items()))
    for col in ("psnr", "steps", "test_accuracy", "train_accuracy", "generalization_gap"):
        s = info.get(col)
        if s:
            lines.append(f"{col}: mean {s['mean']:.4g}, std {s['std']:.3g}, min {s['min']:.4g}, max {s['max']:.4g}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    """Print the summary of a zoo directory."""
    from core.zoo import Zoo

    zoo = Zoo.open(args.dir)
    info = zoo_info(zoo)
    if args.drift:
        from core.zoo.drift import init_drift

        info["drift"] = init_drift(zoo)
    if args.json:
        print(json.dumps(info))
        return 0
    print(format_info(info))
    if args.drift:
        from core.zoo.drift import format_drift

        print(format_drift(info["drift"]))
    return 0
