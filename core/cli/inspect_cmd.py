"""`python -m core inspect PATH`: summary of a checkpoint and its neural graph."""

from __future__ import annotations

import argparse
import json

from core.cli import add_when_parsed


def add_activation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that reads a checkpoint takes; under `python -m core` they are added when the
    command is parsed (see core.cli.CommandParser): the activation names come from core.network, which imports
    torch, and `python -m core --help` should not."""
    add_when_parsed(parser, _add_activation_arguments)


def _add_activation_arguments(parser: argparse.ArgumentParser) -> None:
    from core.network.spec import ACTIVATIONS

    parser.add_argument("--activation", choices=[a for a in ACTIVATIONS if a != "unknown"],
                        help="activation of a state_dict's hidden layers (state_dicts do not store it)")
    parser.add_argument("--w0", type=float, default=30.0, help="sine frequency with --activation sine (default 30)")
    parser.add_argument("--slope", type=float, default=0.01, help="negative slope with --activation leaky_relu")
    parser.add_argument("--input-size", type=int, default=None, help="spatial input size of a CNN state_dict")


def load_from_args(args: argparse.Namespace):
    """Load the checkpoint named by args.path with the activation options."""
    from core.io import load_network

    return load_network(args.path, args.activation, w0=args.w0, slope=args.slope, input_size=args.input_size)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `inspect` sub-command."""
    p = sub.add_parser("inspect", help="summarise a checkpoint: layers, shapes, counts, weight statistics",
                       description="Summarise a checkpoint (.pt/.pth/.bin/.safetensors/.npz) and its neural graph.")
    p.add_argument("path", help="checkpoint file")
    add_activation_arguments(p)
    p.add_argument("--spectra", action="store_true", help="include singular values and stable rank per layer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Print the summary; exit 0."""
    from core.summary import format_summary, summarize

    summary = summarize(load_from_args(args), spectra=args.spectra)
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_summary(summary))
    return 0
