"""`python -m core bench NAME`: benchmarks that print measured figures (see core/bench/)."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
from pathlib import Path

from core.cli import add_when_parsed

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


def _first_docstring_line(module_name: str) -> str:
    """A module's one-line summary read from its source, without importing it (and the torch it imports)."""
    spec = importlib.util.find_spec(module_name)
    source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
    return ((ast.get_docstring(ast.parse(source)) or "").strip().splitlines() or [""])[0]


def _add_benchmark(module_name: str):
    """`add(parser)` that imports the benchmark and adds its options: deferred until that benchmark is parsed."""

    def add(parser: argparse.ArgumentParser) -> None:
        module = importlib.import_module(module_name)
        module.add_arguments(parser)
        parser.set_defaults(func=module.run)

    return add


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `bench` with one sub-command per benchmark; each benchmark's module is imported only when it runs or
    shows its help, so `python -m core --help` does not import torch, PyG and scikit-learn."""
    parser = sub.add_parser("bench", help="run a benchmark and print its figures")
    # argparse gives the benchmarks' parsers `bench`'s own class: a CommandParser under `python -m core`
    bench_sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, module_name in BENCHMARKS.items():
        p = bench_sub.add_parser(name, help=_first_docstring_line(module_name))
        add_when_parsed(p, _add_benchmark(module_name))
    return parser
