"""`python -m core examples --out DIR`: rebuild the bundled example checkpoints."""

from __future__ import annotations

import argparse

from core.paths import BUNDLED_EXAMPLES


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `examples` sub-command."""
    p = sub.add_parser("examples", help="rebuild the bundled example checkpoints (assets/examples)")
    p.add_argument("--out", default=str(BUNDLED_EXAMPLES), help="where to write them (default: assets/examples)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build and list the examples."""
    from core.examples import build_examples

    for path in build_examples(args.out):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0
