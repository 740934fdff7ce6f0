"""Networks → NeuralGraphs per second, vectorised over a zoo of same-architecture INRs."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=10_000, help="networks per conversion (default 10000)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 32], help="SIREN hidden widths (default 32 32)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from core.bench.machine import machine_info
    from core.graph import from_graphs, to_graphs
    from core.network import siren_architecture

    arch = siren_architecture(tuple(args.hidden))
    flat = torch.randn(args.count, arch.num_parameters)
    to_graphs(arch, flat[:2])  # build and cache the layout once
    forward_s, backward_s = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        batch = to_graphs(arch, flat)
        t1 = time.perf_counter()
        _, back = from_graphs(batch)
        t2 = time.perf_counter()
        assert torch.equal(back, flat)
        forward_s.append(t1 - t0)
        backward_s.append(t2 - t1)
    result = {
        "benchmark": "convert",
        "architecture": "-".join(map(str, [2, *args.hidden, 1])),
        "count": args.count,
        "to_graphs_networks_per_s": args.count / statistics.median(forward_s),
        "from_graphs_networks_per_s": args.count / statistics.median(backward_s),
        "machine": machine_info(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['architecture']} INRs, {args.count} per batch, median of {args.repeats} "
              f"({result['machine']['summary']}):")
        print(f"  network → NeuralGraph batch: {result['to_graphs_networks_per_s']:,.0f} networks/s")
        print(f"  NeuralGraph batch → params : {result['from_graphs_networks_per_s']:,.0f} networks/s")
    return 0
