"""Learned optimisers (ng-gnn, scalegmn, per-parameter MLP) vs tuned Adam / SGD+momentum on held-out MLPs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from core.cli.l2o_cmd import add_eval_arguments, add_meta_arguments

    parser.add_argument("--optimizers", nargs="+", default=["ng-gnn", "scalegmn", "per-param"],
                        help="learned optimisers to meta-train (default ng-gnn scalegmn per-param)")
    parser.add_argument("--runs", nargs="+", default=None, metavar="RUN",
                        help="use these saved learned optimisers (from `l2o train`) instead of meta-training")
    add_meta_arguments(parser)
    add_eval_arguments(parser)
    parser.set_defaults(out="runs/bench-l2o")


def run(args: argparse.Namespace) -> int:
    import torch

    from core.bench.machine import machine_info
    from core.cli.l2o_cmd import meta_config
    from core.l2o import EVAL_SPECS, evaluate_runs, train_optimizer, tune_baselines
    from core.l2o.problems import parse_specs

    log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(args.out)
    t0 = time.perf_counter()
    runs = args.runs
    if not runs:
        config = meta_config(args)
        baselines = tune_baselines(config, log)
        runs = []
        for name in args.optimizers:
            torch.manual_seed(args.seed)
            train_optimizer(name, out / name, config, hidden=args.hidden, layers=args.layers, baselines=baselines,
                            log=log)
            runs.append(str(out / name))
    specs = parse_specs(args.eval_problems) if args.eval_problems else EVAL_SPECS
    report = evaluate_runs(runs, out, specs, args.steps, args.eval_networks, log=log)
    from core.l2o.evaluate import markdown_table

    print(f"l2o benchmark ({machine_info()['summary']}, {time.perf_counter() - t0:.0f}s); mean ± std over "
          f"{args.eval_networks} initialisations; bold = best per column and problem")
    print(markdown_table(report))
    print(f"wrote {out / 'table.md'}, {out / 'report.json'}, {out / 'loss_curves.png'}, {out / 'loss_curves.html'}")
    return 0
