r"""NG-GNN before and after the fused kernel's removal (issue 20), side by side in one process.

One batch of 64 random 2-32-32-1 SIRENs, hidden 64, 4 layers, float32, 2 threads, the same weights for every
variant; the variants take turns step by step (round-robin) so that they share the machine's load, and the
medians of process CPU time and wall time are printed (ms per batch). The old code (commit 43ef1ac) is
imported as the package `core_old`:

    git worktree add /tmp/old-ngg 43ef1ac && mkdir -p /tmp/oldpkg && cp -r /tmp/old-ngg/core /tmp/oldpkg/core_old
    cd /tmp/oldpkg && grep -rl core core_old --include=*.py | xargs sed -i -E \
        -e 's/(from|import) core\./\1 core_old./g' -e 's/^(\s*)from core import/\1from core_old import/' \
        -e 's/"core\./"core_old./g'
    cd - && OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python docs/benchmarks/ng_gnn_kernel_removal.py 7 --compile

(`OMP_WAIT_POLICY=PASSIVE`: on a shared 2-core machine spinning OpenMP threads made wall times vary 10×.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the repository: the new code is its package `core`


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rounds", type=int, nargs="?", default=7)
    parser.add_argument("--old", default="/tmp/oldpkg", help="directory holding the renamed old package core_old")
    parser.add_argument("--compile", action="store_true", help="also the new dense path with compiled layers")
    parser.add_argument("--sparse", action="store_true", help="also the new sparse path")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), args.old]
    torch.set_num_threads(2)
    import core_old.graph
    import core_old.network
    from core_old.kernels import film_message_stats as fms
    from core_old.models import build_model as build_old

    from core.device import tune_cpu_allocator
    from core.graph import to_graphs
    from core.models import build_model
    from core.network import siren_architecture

    tune_cpu_allocator()
    gen = torch.Generator().manual_seed(0)
    arch = siren_architecture((32, 32))
    flat = torch.randn(64, arch.num_parameters, generator=gen) * 0.1
    labels = torch.randint(0, 10, (64,), generator=gen)
    batch = to_graphs(arch, flat)
    old_batch = core_old.graph.to_graphs(core_old.network.siren_architecture((32, 32)), flat)
    size = dict(out_dim=10, hidden=64, layers=4, edge_dim=1)
    torch.manual_seed(0)
    reference = build_model("ng-gnn", **size)
    reference.fit_normalisation(batch)
    state = reference.state_dict()
    kernel = fms.fused_extension()
    assert kernel is not None, "the old fused kernel was not built"
    unfolded = build_old("ng-gnn", **size)
    unfolded.fold_edge_features = False  # the old code's switch for its folded first layer
    variants = {  # name: (model, batch, the old kernel module or None for off / "new" for the new code)
        "old fused kernel": (build_old("ng-gnn", **size), old_batch, kernel),
        "old kernel off": (build_old("ng-gnn", **size), old_batch, None),
        "old off, no fold": (unfolded, old_batch, None),
        "new dense": (build_model("ng-gnn", **size), batch, "new"),
    }
    if args.sparse:
        variants["new sparse"] = (build_model("ng-gnn", dense_path=False, **size), batch, "new")
    if args.compile:
        variants["new dense compiled"] = (build_model("ng-gnn", **size).compile_layers(), batch, "new")
    optimisers = {}
    for name, (model, _, _) in variants.items():
        model.load_state_dict(state)
        optimisers[name] = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run(name: str, train: bool) -> torch.Tensor:
        model, data, module = variants[name]
        if module != "new":
            fms._LOADED["module"] = module  # the old code reads its kernel from this cache
        model.train(train)
        with torch.set_grad_enabled(train):
            out = model(data)
            if train:
                optimisers[name].zero_grad()
                torch.nn.functional.cross_entropy(out, labels).backward()
                optimisers[name].step()
        return out.detach()

    for name in variants:  # warm-up (compiles), then all must agree
        started = time.perf_counter()
        out = run(name, False)
        run(name, True)
        variants[name][0].load_state_dict(state)
        optimisers[name] = torch.optim.Adam(variants[name][0].parameters(), lr=1e-4)
        print(f"{name}: warm-up {time.perf_counter() - started:.1f} s, max |out - new dense| = "
              f"{(out - run('new dense', False)).abs().max().item():.1e}", file=sys.stderr, flush=True)
    times = {name: {kind: [] for kind in ("train", "infer", "train_cpu", "infer_cpu")} for name in variants}
    for _ in range(args.rounds):
        for kind in ("train", "infer"):
            for name in variants:
                wall, cpu = time.perf_counter(), time.process_time()
                run(name, kind == "train")
                times[name][kind].append(1000 * (time.perf_counter() - wall))
                times[name][kind + "_cpu"].append(1000 * (time.process_time() - cpu))
    medians = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    print(json.dumps({"rounds": args.rounds, "median_ms": medians, "all_ms": times}))
    base = medians["old kernel off"]
    for name, m in medians.items():
        print(f"{name:<20} CPU train {m['train_cpu']:6.0f} infer {m['infer_cpu']:5.0f} ms (wall {m['train']:6.0f} / "
              f"{m['infer']:5.0f}) | old kernel off / this: train {base['train_cpu'] / m['train_cpu']:.2f}× "
              f"infer {base['infer_cpu'] / m['infer_cpu']:.2f}×")


if __name__ == "__main__":
    main()
