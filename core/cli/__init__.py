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
    "compare": "core.cli.compare_cmd",
    "examples": "core.cli.examples_cmd",
}


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser that can add costly arguments late: `defer(add)` runs `add(parser)` only when
    this command is parsed or its help is shown (e.g. `train`'s options, listed from the model and task
    registries, which import torch_geometric), so the other commands and `--help` start fast."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred: list = []

    def defer(self, add) -> None:
        """Call `add(self)` before this parser is first used."""
        self._deferred.append(add)

    def _complete(self) -> None:
        while self._deferred:
            self._deferred.pop(0)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._complete()
        return super().format_usage()

    def format_help(self) -> str:
        self._complete()
        return super().format_help()


def add_when_parsed(parser: argparse.ArgumentParser, add) -> None:
    """`add(parser)` deferred until a CommandParser is first used; at once for a plain ArgumentParser (tests)."""
    if isinstance(parser, CommandParser):
        parser.defer(add)
    else:
        add(parser)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="python -m core",
                                     description="Weight-Space Explorer: learn from and look inside network weights.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=CommandParser)
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module).register(sub)
    return parser


DEBUG_ENV = "WSE_DEBUG"  # set to 1 to see the traceback of an internal error
# options that size loops or batches: zero or less is bad input, refused before any work starts
POSITIVE_OPTIONS = ("batch_size", "chunk_size", "trials", "stop_window", "resamples")


def _one_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return " ".join(lines[0].split()) if lines else ""


def _check_positive(args: argparse.Namespace) -> None:
    for name in POSITIVE_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, (int, float)) and value < 1:
            raise WeightSpaceError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input prints `error: <reason>` on stderr and returns 2, an internal failure one line and 3."""
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["train", "l2o"]:  # the learned optimiser has its own options: `train l2o` is `l2o train`
        argv = ["l2o", "train", *("--optimizer" if a == "--model" else a for a in argv[2:])]
    parser = build_parser()
    args = parser.parse_args(argv)
    from core.device import tune_cpu_allocator

    tune_cpu_allocator()  # large activations reuse heap pages instead of page-faulting fresh ones each step
    try:
        _check_positive(args)
        return int(args.func(args) or 0)
    except WeightSpaceError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if os.environ.get(DEBUG_ENV) or exc.filename is None:
            raise
        # a path given on the command line that cannot be read or written (exists as a file, no permission, …)
        print(f"error: {exc.filename}: {exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 (the last resort: one line, not a traceback)
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
              f"(set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
        return 3
