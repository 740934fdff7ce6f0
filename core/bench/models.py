"""Metanetworks: parameters, training and inference graphs/s, peak memory on batches of INRs."""

from __future__ import annotations

import argparse
import json
import statistics
import multiprocessing
import os
import resource
import time

import torch

DEFAULT_MODELS = ["mlp", "nfn-np", "nfn-hnp", "ng-gnn", "ng-t", "scalegmn", "scalegmn-b"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--batch", type=int, default=64, help="graphs per batch (default 64)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--edge-hidden", type=int, default=0, help="ng-gnn: width of the edge states (0: = --hidden)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", type=int, nargs="+", default=[128, 128, 128], help="hidden widths of the memory INR")
    parser.add_argument("--memory-batch", type=int, default=8, help="graphs per batch for the memory figures (default 8)")
    parser.add_argument("--compile", action="store_true", help="also time each graph model with torch.compile'd layers")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _high_water_mark() -> int | None:
    """Peak resident set (VmHWM) in bytes since the last reset, or None where /proc cannot say."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_high_water_mark() -> bool:
    """Reset VmHWM to the current resident set (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_memory(fn) -> int:
    """Peak bytes used by one call of fn beyond what was resident before it: the CUDA allocator peak on GPU;
    on CPU the peak resident set during the call (VmHWM reset just before it; run in a fresh process, see
    `_memory_in_subprocess`, so that freed-but-kept allocator pages of earlier work do not hide it)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        fn()
        return int(torch.cuda.max_memory_allocated())
    before = _rss()
    if _reset_high_water_mark():
        fn()
        peak = _high_water_mark()
        if peak is not None:
            return max(0, peak - before)
    fn()  # fallback: the lifetime peak (an over-estimate when imports peaked higher)
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)


def _memory_job(name: str, widths: tuple[int, ...], args: argparse.Namespace, queue) -> None:
    queue.put(bench_model(name, widths, args, measure_speed=False)["peak_train_memory_mb"])


def _memory_in_subprocess(name: str, widths: tuple[int, ...], args: argparse.Namespace) -> float:
    """Peak training-step memory (MB) of a model, measured in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_job, args=(name, widths, args, queue))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 else float("nan")


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_model(name: str, hidden_widths: tuple[int, ...], args: argparse.Namespace, measure_speed: bool = True) -> dict:
    """Figures of one model on a batch of random SIRENs (speed on `args.batch`, memory on `args.memory_batch`)."""
    if not measure_speed:
        args = argparse.Namespace(**{**vars(args), "batch": args.memory_batch})
    return _bench(name, hidden_widths, args, measure_speed)


def _bench(name: str, hidden_widths: tuple[int, ...], args: argparse.Namespace, measure_speed: bool) -> dict:
    """Figures of one model on a batch of random SIRENs of the given hidden widths."""
    from core.graph import to_graphs
    from core.models import build_model
    from core.network import siren_architecture

    device = "cuda" if torch.cuda.is_available() else "cpu"
    arch = siren_architecture(tuple(hidden_widths))
    gen = torch.Generator().manual_seed(0)
    batch = to_graphs(arch, torch.randn(args.batch, arch.num_parameters, generator=gen) * 0.1).to(device)
    extra = {"architecture": arch} if name in ("mlp", "nfn-np", "nfn-hnp") else {}
    if name == "ng-gnn" and getattr(args, "edge_hidden", 0):
        extra["edge_hidden"] = args.edge_hidden
    model = build_model(name, out_dim=10, hidden=args.hidden, layers=args.layers, **extra).to(device)
    model.fit_normalisation(batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    labels = torch.randint(0, 10, (args.batch,), generator=gen).to(device)

    def train_step() -> None:
        model.train()
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer() -> None:
        model.eval()
        with torch.no_grad():
            model(batch)

    out = {
        "model": name,
        "inr": "-".join(map(str, [2, *hidden_widths, 1])),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_per_graph": arch.num_parameters,
    }
    if not measure_speed:
        out["peak_train_memory_mb"] = _peak_memory(train_step) / 2**20
    else:
        out["train_graphs_per_s"] = args.batch / _time(train_step, args.repeats)
        out["inference_graphs_per_s"] = args.batch / _time(infer, args.repeats)
        if getattr(args, "compile", False) and hasattr(model, "layers"):
            started = time.perf_counter()
            model.compile_layers()
            train_step()
            infer()
            out["compile_s"] = time.perf_counter() - started
            out["train_graphs_per_s_compiled"] = args.batch / _time(train_step, args.repeats)
            out["inference_graphs_per_s_compiled"] = args.batch / _time(infer, args.repeats)
    return out


def run(args: argparse.Namespace) -> int:
    from core.bench.machine import machine_info
    from core.network import siren_architecture

    rows = []
    for name in args.models:
        row = bench_model(name, (32, 32), args)
        row["peak_train_memory_mb"] = _memory_in_subprocess(name, (32, 32), args)
        row["peak_train_memory_mb_large"] = _memory_in_subprocess(name, tuple(args.large), args)
        row["weights_per_graph_large"] = siren_architecture(tuple(args.large)).num_parameters
        rows.append(row)
    result = {"benchmark": "models", "batch": args.batch, "hidden": args.hidden, "layers": args.layers,
              "large_inr": "-".join(map(str, [2, *args.large, 1])), "rows": rows, "machine": machine_info()}
    if args.json:
        print(json.dumps(result))
        return 0
    edges = f" (ng-gnn edge states {args.edge_hidden} wide)" if getattr(args, "edge_hidden", 0) else ""
    print(f"metanetworks on batches of {args.batch} SIRENs, hidden {args.hidden}{edges}, {args.layers} layers, "
          f"median of {args.repeats} ({result['machine']['summary']}):")
    print(f"  {'model':<11} {'params':>9} {'train g/s':>10} {'infer g/s':>10} {'peak MB 2-32-32-1':>18} "
          f"{'peak MB ' + result['large_inr']:>24}   (memory: one training step on {args.memory_batch} graphs)")
    for r in rows:
        print(f"  {r['model']:<11} {r['parameters']:>9,} {r['train_graphs_per_s']:>10,.0f} {r['inference_graphs_per_s']:>10,.0f} "
              f"{r['peak_train_memory_mb']:>18,.1f} {r['peak_train_memory_mb_large']:>24,.1f}")
    compiled = [r for r in rows if "compile_s" in r]
    if compiled:
        print("  with torch.compile'd layers (one-off compilation time first):")
        for r in compiled:
            print(f"  {r['model']:<11} compile {r['compile_s']:>5.0f} s  train {r['train_graphs_per_s_compiled']:>7,.0f} g/s  "
                  f"infer {r['inference_graphs_per_s_compiled']:>7,.0f} g/s")
    print(f"  weights per graph: {rows[0]['weights_per_graph']:,} vs {rows[0]['weights_per_graph_large']:,}")
    ratio = rows[0]["weights_per_graph_large"] / rows[0]["weights_per_graph"]
    growth = ", ".join(f"{r['model']} {r['peak_train_memory_mb_large'] / max(r['peak_train_memory_mb'], 1e-9):.1f}×" for r in rows)
    print(f"  memory growth large/small (linear in weights = {ratio:.1f}×): {growth}")
    return 0
