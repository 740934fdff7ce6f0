"""`python -m core bench NAME`: benchmarks that print measured figures (see core/bench/)."""

from __future__ import annotations

import argparse
import importlib

# benchmark name → module defining `add_arguments(parser)` and `run(args) -> int`
BENCHMARKS: dict[str, str] = {
    "convert": "core.bench.convert",
    "gpu": "core.bench.gpu",
    "hostile": "core.bench.hostile",
    "inr-baselines": "core.bench.inr_baselines",
    "inr-edit-baselines": "core.bench.inr_edit_baselines",
    "app": "core.bench.app",
    "l2o": "core.bench.l2o",
    "models": "core.bench.models",
    "tasks": "core.bench.tasks",
    "zoo": "core.bench.zoo",
}


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `bench` with one sub-command per benchmark."""
    parser = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench_sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        p = bench_sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser
