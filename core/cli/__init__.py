"""`python -m core …`: one module per sub-command, registered in COMMANDS.

Each command module defines `register(subparsers) -> argparse.ArgumentParser` that adds its parser and
sets `func=run` (a callable taking the parsed args and returning an exit code). Command modules import
heavy dependencies inside `run`, so `python -m core --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import WeightSpaceError

# name → module; a module may register several sub-commands (its `register` adds them all)
COMMANDS: dict[str, str] = {
    "bench": "core.cli.bench_cmd",
    "inspect": "core.cli.inspect_cmd",
    "train": "core.cli.train_cmd",
    "zoo": "core.cli.zoo_cmd",
    "l2o": "core.cli.l2o_cmd",
    "check": "core.cli.check_cmd",
    "examples": "core.cli.examples_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="python -m core", description="Weight-Space Explorer: learn from and look inside network weights.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input prints `error: <reason>` on stderr and returns 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["train", "l2o"]:  # the learned optimiser has its own options: `train l2o` is `l2o train`
        argv = ["l2o", "train", *("--optimizer" if a == "--model" else a for a in argv[2:])]
    parser = build_parser()
    args = parser.parse_args(argv)
    from core.device import tune_cpu_allocator

    tune_cpu_allocator()  # large activations reuse heap pages instead of page-faulting fresh ones each step
    try:
        return int(args.func(args) or 0)
    except WeightSpaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
