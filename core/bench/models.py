"""Metanetworks: parameters, training and inference graphs/s, peak memory on batches of INRs and of
Small-CNN-Zoo networks; memory growth from a small to a large INR."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import time

import torch

NETWORKS = ("inr", "inr-large", "cnn")  # what `bench_model` can run a model on (see `network_architecture`)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=None, help="registered models (default: all)")
    parser.add_argument("--batch", type=int, default=64, help="graphs per batch (default 64)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--edge-hidden", type=int, default=0, help="ng-gnn: width of the edge states (0: = --hidden)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", type=int, nargs="+", default=[128, 128, 128], help="hidden widths of the memory INR")
    parser.add_argument("--memory-batch", type=int, default=8,
                        help="graphs per batch for the memory figures (default 8)")
    parser.add_argument("--compile", action="store_true", help="also time each graph model with torch.compile'd layers")
    parser.add_argument("--networks", nargs="+", default=["inr", "cnn"], choices=("inr", "cnn"),
                        help="inr: 2-32-32-1 SIRENs; cnn: Small CNN Zoo networks (default both)")
    parser.add_argument("--precision", nargs="+", default=["fp32"], metavar="P",
                        help="time in each of these precisions: fp32, bf16 (bfloat16 autocast; default fp32)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
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


def _memory_job(name: str, network: str, args: argparse.Namespace, queue) -> None:
    queue.put(bench_model(name, network, args, measure_speed=False)["peak_train_memory_mb"])


def _memory_in_subprocess(name: str, network: str, args: argparse.Namespace) -> float:
    """Peak training-step memory (MB) of a model, measured in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_job, args=(name, network, args, queue))
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


def matmul_peak_gflops(precision: str, device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """The machine's practical matrix-product rate: best of `repeats` timed [size²] · [size²] products, GFLOP/s."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def product_flops(model: torch.nn.Module, batch, train: bool) -> float:
    """FLOPs of the matrix products of one inference pass (`train`: forward and backward) as the model's code
    runs them, counted by torch's FlopCounterMode on a copy of the model (its gradients stay untouched)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    twin = copy.deepcopy(model).train(train)
    graphs = batch.clone()
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(train):
        out = twin(graphs)
        if train:
            out.sum().backward()
    return float(counter.get_total_flops())


def network_architecture(network: str, args: argparse.Namespace):
    """`inr`: a 2-32-32-1 SIREN; `inr-large`: a SIREN with `args.large` hidden widths; `cnn`: a Small CNN Zoo
    network (3 × conv 3×3 stride 2, 16 channels, global average pool, linear 16 → 10 on 28 × 28 images)."""
    from core.network import siren_architecture
    from core.zoo.cnn import small_cnn_architecture

    if network == "inr":
        return siren_architecture((32, 32))
    if network == "inr-large":
        return siren_architecture(tuple(args.large))
    if network == "cnn":
        return small_cnn_architecture("relu", image_size=28)
    raise ValueError(f"unknown benchmark network {network!r}; use one of {NETWORKS}")


def network_label(network: str, args: argparse.Namespace) -> str:
    """`2-32-32-1`, `2-128-128-128-1` or `small-cnn`."""
    if network == "cnn":
        return "small-cnn"
    widths = (32, 32) if network == "inr" else tuple(args.large)
    return "-".join(map(str, [2, *widths, 1]))


def bench_model(name: str, network: str, args: argparse.Namespace, measure_speed: bool = True) -> dict:
    """Figures of one model on a batch of random networks (speed on `args.batch`, memory on `args.memory_batch`)."""
    if not measure_speed:
        args = argparse.Namespace(**{**vars(args), "batch": args.memory_batch})
    return _bench(name, network, args, measure_speed)


def _bench(name: str, network: str, args: argparse.Namespace, measure_speed: bool) -> dict:
    """Figures of one model on a batch of random networks of one architecture (see `network_architecture`)."""
    from core.device import autocast, pick_device
    from core.graph import to_graphs
    from core.models import build_model, model_class

    dev = pick_device(getattr(args, "device", "auto"))
    arch = network_architecture(network, args)
    gen = torch.Generator().manual_seed(0)
    batch = to_graphs(arch, torch.randn(args.batch, arch.num_parameters, generator=gen) * 0.1).to(dev)
    cls = model_class(name)
    extra = {"edge_dim": batch.edge_attr.shape[1], **({"architecture": arch} if cls.fixed_architecture else {})}
    if getattr(args, "edge_hidden", 0) and any(o.name == "edge_hidden" for o in cls.options()):
        extra["edge_hidden"] = args.edge_hidden
    model = build_model(name, out_dim=10, hidden=args.hidden, layers=args.layers, **extra).to(dev)
    model.fit_normalisation(batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    labels = torch.randint(0, 10, (args.batch,), generator=gen).to(dev)

    def train_step(precision: str = "fp32") -> None:
        model.train()
        with autocast(dev, precision):  # the forward pass only, as autocast recommends
            loss = torch.nn.functional.cross_entropy(model(batch), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer(precision: str = "fp32") -> None:
        model.eval()
        with torch.no_grad(), autocast(dev, precision):
            model(batch)

    out = {
        "model": name,
        "network": network_label(network, args),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_per_graph": arch.num_parameters,
    }
    if not measure_speed:
        out["peak_train_memory_mb"] = _peak_memory(train_step) / 2**20
        return out
    # what the matrix products alone cost: with the machine's product rate, a bound on graphs/s
    out["inference_gflop"] = product_flops(model, batch, train=False) / 1e9
    out["train_gflop"] = product_flops(model, batch, train=True) / 1e9
    precisions = list(getattr(args, "precision", None) or ["fp32"])
    for precision in precisions:
        out.setdefault("speed", {})[precision] = {
            "train": args.batch / _time(lambda p=precision: train_step(p), args.repeats),
            "inference": args.batch / _time(lambda p=precision: infer(p), args.repeats)}
    if getattr(args, "compile", False) and hasattr(model, "layers"):
        started = time.perf_counter()
        model.compile_layers()
        for precision in precisions:  # the first call in each precision traces and compiles
            train_step(precision)
            infer(precision)
        out["compile_s"] = time.perf_counter() - started
        for precision in precisions:
            speed = out["speed"][precision]
            speed["train_compiled"] = args.batch / _time(lambda p=precision: train_step(p), args.repeats)
            speed["inference_compiled"] = args.batch / _time(lambda p=precision: infer(p), args.repeats)
    first = out["speed"][precisions[0]]
    out["train_graphs_per_s"], out["inference_graphs_per_s"] = first["train"], first["inference"]
    return out


def run(args: argparse.Namespace) -> int:
    from core.bench.machine import machine_info
    from core.device import autocast_dtype, pick_device, tune_cpu_allocator

    device = pick_device(args.device)  # a bad device or precision fails before any timing
    for precision in args.precision:
        autocast_dtype(device, precision)
    tune_cpu_allocator()
    rows, growth = [], []
    from core.models import model_names

    args.models = args.models or model_names()
    for name in args.models:
        for network in args.networks:
            row = bench_model(name, network, args)
            row["peak_train_memory_mb"] = _memory_in_subprocess(name, network, args)
            rows.append(row)
        small = next((r["peak_train_memory_mb"] for r in rows if r["model"] == name and r["network"] == "2-32-32-1"),
                     None)
        if small is not None:  # linear memory: the same model on a SIREN with many more weights
            large = _memory_in_subprocess(name, "inr-large", args)
            growth.append({"model": name, "small_mb": small, "large_mb": large, "ratio": large / max(small, 1e-9)})
    weights = {n: network_architecture(n, args).num_parameters for n in ("inr", "inr-large")}
    peaks = {p: matmul_peak_gflops(p, device) for p in args.precision}
    for row in rows:  # graphs/s the products alone would allow at the peak rate: no model runs faster
        row["product_bound"] = {p: {"train": args.batch * peak / row["train_gflop"],
                                    "inference": args.batch * peak / row["inference_gflop"]}
                                for p, peak in peaks.items()}
    result = {"benchmark": "models", "batch": args.batch, "hidden": args.hidden, "layers": args.layers,
              "large_inr": network_label("inr-large", args), "rows": rows, "memory_growth": growth,
              "weights_ratio": weights["inr-large"] / weights["inr"], "matmul_peak_gflops": peaks,
              "machine": machine_info()}
    if args.json:
        print(json.dumps(result))
        return 0
    _print_report(result, args)
    return 0


def _print_report(result: dict, args: argparse.Namespace) -> None:
    """The human-readable tables of `run`."""
    rows = result["rows"]
    edges = f" (ng-gnn edge states {args.edge_hidden} wide)" if getattr(args, "edge_hidden", 0) else ""
    print(f"metanetworks at hidden {args.hidden}{edges}, {args.layers} layers, batches of {args.batch} graphs, "
          f"median of {args.repeats} ({result['machine']['summary']}); peak MB: one float32 training step on "
          f"{args.memory_batch} graphs")
    compiled = any("compile_s" in r for r in rows)
    for network in dict.fromkeys(r["network"] for r in rows):
        sub = [r for r in rows if r["network"] == network]
        print(f"  on {network} networks ({sub[0]['weights_per_graph']:,} weights each):")
        head = f"  {'model':<11} {'params':>10} {'peak MB':>8}"
        for precision in args.precision:
            head += f" | {precision + ' train':>11} {'infer':>8}"
            head += f" {'compiled train':>15} {'infer':>8}" if compiled else ""
        print(head + "   (graphs/s)")
        for r in sub:
            line = f"  {r['model']:<11} {r['parameters']:>10,} {r['peak_train_memory_mb']:>8,.1f}"
            for precision in args.precision:
                sp = r["speed"][precision]
                line += f" | {sp['train']:>11,.0f} {sp['inference']:>8,.0f}"
                if compiled:
                    line += (f" {sp['train_compiled']:>15,.0f} {sp['inference_compiled']:>8,.0f}"
                             if "train_compiled" in sp else f" {'-':>15} {'-':>8}")
            print(line + (f"   (compile {r['compile_s']:.0f} s)" if "compile_s" in r else ""))
    peaks = result["matmul_peak_gflops"]
    print("  matrix products per batch (GFLOP, training step / inference) and the training / inference graphs/s they "
          "alone allow at this machine's product rate (" + ", ".join(f"{p} {g:,.0f} GFLOP/s" for p, g in peaks.items())
          + "; no run can be faster):")
    for r in rows:
        bounds = "; ".join(f"{p} ≤ {b['train']:,.0f} / {b['inference']:,.0f}" for p, b in r["product_bound"].items())
        flops = f"{r['train_gflop']:>7.3g} / {r['inference_gflop']:<7.3g} GFLOP"
        print(f"    {r['model']:<11} on {r['network']:<10} {flops}   {bounds}")
    if result["memory_growth"]:
        print(f"  memory growth 2-32-32-1 → {result['large_inr']} "
              f"(linear in weights = {result['weights_ratio']:.1f}×): "
              + ", ".join(f"{g['model']} {g['small_mb']:,.0f} → {g['large_mb']:,.0f} MB ({g['ratio']:.1f}×)"
                          for g in result["memory_growth"]))
