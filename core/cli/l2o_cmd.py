"""`python -m core l2o train|eval`: meta-train a learned optimiser and compare it with tuned Adam / SGD+momentum."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `l2o` with sub-commands `train` and `eval`."""
    parser = sub.add_parser("l2o", help="learning to optimise: meta-train / evaluate learned optimisers")
    l2o_sub = parser.add_subparsers(dest="l2o_command", metavar="ACTION", required=True)
    p = l2o_sub.add_parser("train", help="meta-train a learned optimiser (tunes Adam/SGDM first) and save it",
                           description="Writes optimizer.safetensors + optimizer.json (config, tuned baselines, "
                                       "meta-loss history).")
    add_train_arguments(p)
    p.set_defaults(func=run_train)
    p = l2o_sub.add_parser("eval", help="compare saved learned optimisers with tuned Adam / SGDM on held-out problems")
    p.add_argument("runs", nargs="+", metavar="RUN", help="directories written by `l2o train`")
    add_eval_arguments(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_eval)
    return parser


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Meta-training flags (shared with the benchmark)."""
    p.add_argument("--out", required=True, help="directory to write the learned optimiser into")
    p.add_argument("--optimizer", default="ng-gnn",
                   help="per-param, or a registered model that reads any architecture and has a params head "
                        "(ng-gnn, scalegmn, …; an unknown name lists them; default ng-gnn)")
    add_meta_arguments(p)


def add_meta_arguments(p: argparse.ArgumentParser) -> None:
    """Meta-training hyper-parameters."""
    p.add_argument("--meta-steps", type=int, default=150, help="meta-updates (default 150)")
    p.add_argument("--unroll", type=int, default=10, help="inner steps per truncation (default 10)")
    p.add_argument("--horizon", type=int, default=50, help="inner steps per trajectory (default 50)")
    p.add_argument("--networks", type=int, default=4, help="inner networks per problem (default 4)")
    p.add_argument("--meta-lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=16, help="metanetwork width (default 16)")
    p.add_argument("--layers", type=int, default=2, help="metanetwork layers (default 2)")
    p.add_argument("--problems", nargs="+", default=None, metavar="SPEC",
                   help="meta-training problems dataset:h1-h2:activation, activation 'inr' for SIREN image fits "
                        "(default: digits 16, 32, 16-16, 32 tanh; INR family: mnist5k:16-16:inr)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """Evaluation flags."""
    p.add_argument("--out", default=None, help="write table.md, report.json, loss_curves.png/.html here")
    p.add_argument("--steps", type=int, nargs="+", default=[50, 200],
                   help="report after these inner steps (default 50 200)")
    p.add_argument("--eval-networks", dest="eval_networks", type=int, default=5,
                   help="inner networks (init seeds) per problem")
    p.add_argument("--eval-problems", nargs="+", default=None, metavar="SPEC",
                   help="held-out problems (default: digits 32, 128, 32-32-32 and mnist5k 32; INR family: "
                        "mnist5k:16-16:inr mnist5k:32-32:inr mnist5k:64-64:inr)")


def meta_config(args: argparse.Namespace):
    """MetaConfig from parsed flags."""
    from core.l2o import TRAIN_SPECS, MetaConfig
    from core.l2o.problems import parse_specs

    specs = tuple(parse_specs(args.problems)) if args.problems else TRAIN_SPECS
    return MetaConfig(meta_steps=args.meta_steps, unroll=args.unroll, horizon=args.horizon, networks=args.networks,
                      meta_lr=args.meta_lr, seed=args.seed, specs=specs)


def _log(args: argparse.Namespace):
    return None if getattr(args, "quiet", False) else (lambda s: print(s, file=sys.stderr, flush=True))


def run_train(args: argparse.Namespace) -> int:
    from core.l2o import train_optimizer

    train_optimizer(args.optimizer, args.out, meta_config(args), hidden=args.hidden, layers=args.layers, log=_log(args))
    print(f"saved learned optimiser to {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from core.l2o import EVAL_SPECS, evaluate_runs
    from core.l2o.evaluate import markdown_table
    from core.l2o.problems import parse_specs

    specs = parse_specs(args.eval_problems) if args.eval_problems else EVAL_SPECS
    report = evaluate_runs(args.runs, args.out, specs, args.steps, args.eval_networks, log=_log(args))
    print(markdown_table(report))
    return 0
