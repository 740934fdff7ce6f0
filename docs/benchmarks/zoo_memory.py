"""Peak memory of training on a zoo: the split held in memory (copy) vs streamed from the memory-mapped
parameter files (stream, what `python -m core train` does), on the bundled digits-inr zoo and on a zoo 10×
(or --times ×) its size made by replicating its networks.

    nice -n 10 python docs/benchmarks/zoo_memory.py --out runs/zoo-memory

Each measurement runs in a fresh process: build the train/val/test GraphSets of inr-classify and train ng-gnn
for one epoch. Reported per run: peak resident set (VmHWM, file pages of the memory map included), the
peak of anonymous memory (RssAnon sampled every 5 ms: what cannot be dropped and re-read from the zoo files), and
the anonymous memory the GraphSets hold once built (before any training). `--data-only` skips the training epoch
(for zoos too large to train on here, e.g. `--times 100`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "assets" / "zoos" / "digits-inr"


def replicate_zoo(source: Path, out: Path, times: int) -> Path:
    """A zoo holding every network of `source` `times` times (new indices; splits and table rows repeated)."""

    from core.zoo import Zoo
    from core.zoo.store import write_zoo

    if (out / "manifest.json").exists():
        return out
    zoo = Zoo.open(source)
    (group,) = zoo.architectures
    arch, flat = zoo.flat(range(len(zoo)))
    n = len(zoo)
    rows, splits = [], {}
    base = zoo.table.drop(columns=["group_row", "split"]).to_dict("records")
    for k in range(times):
        for i, row in enumerate(base):
            rows.append({**row, "index": k * n + i})
            splits[k * n + i] = zoo.table["split"].iloc[i]
    write_zoo(out, generator="replicated", options={"source": str(source), "times": times},
              architectures={group: arch}, groups={group: (list(range(n * times)), flat.repeat(times, 1))},
              rows=rows, splits_by_index=splits, source={"replicated_from": str(source)})
    return out


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status (kB)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _anon_kb() -> int:
    return _status_kb("RssAnon")


def measure(zoo_dir: str, stream: bool, train: bool = True) -> dict:
    """In this process: GraphSets of inr-classify + one epoch of ng-gnn; peak memory figures."""
    import torch

    from core.models import build_model
    from core.runs import graph_set_from_zoo
    from core.tasks import build_task
    from core.training import TrainConfig, Trainer
    from core.zoo import Zoo

    torch.set_num_threads(1)
    peak = {"anon_kb": _anon_kb()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["anon_kb"] = max(peak["anon_kb"], _anon_kb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    before = _anon_kb()
    zoo = Zoo.open(zoo_dir)
    task = build_task("inr-classify")
    sets = {s: graph_set_from_zoo(zoo, s, task, stream=stream) for s in ("train", "val", "test")}
    data_kb = _anon_kb() - before

    def figures() -> dict:
        stop.set()
        sampler.join()
        return {"zoo": zoo_dir, "networks": len(zoo), "mode": "stream" if stream else "copy", "trained": train,
                "data_anon_mb": data_kb / 1024, "peak_anon_mb": peak["anon_kb"] / 1024,
                # VmHWM, not ru_maxrss: that one keeps the parent's resident set at fork time across exec
                "peak_rss_mb": _status_kb("VmHWM") / 1024,
                "seconds": time.perf_counter() - started}

    if not train:
        return figures()
    model = build_model("ng-gnn", out_dim=task.out_dim(zoo.table), hidden=16, layers=2,
                        edge_dim=sets["train"].grid_size ** 2)
    trainer = Trainer(task, model, TrainConfig(epochs=1, batch_size=256, patience=0, device="cpu"), progress=False)
    trainer.fit(sets["train"], sets["val"])
    return figures()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/zoo-memory", help="where the replicated zoo is written")
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--data-only", action="store_true", help="GraphSets only, no training epoch")
    parser.add_argument("--skip-bundled", action="store_true", help="measure the replicated zoo only")
    parser.add_argument("--measure", nargs=2, metavar=("ZOO", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1] == "stream", not args.data_only)))
        return 0
    big = replicate_zoo(BUNDLED, Path(args.out) / f"digits-inr-x{args.times}", args.times)
    results = []
    for zoo in ([] if args.skip_bundled else [BUNDLED]) + [big]:
        params_mb = sum(p.stat().st_size for p in Path(zoo).glob("params-*.safetensors")) / 2**20
        for mode in ("copy", "stream"):
            proc = subprocess.run([sys.executable, __file__, "--measure", str(zoo), mode,
                                   *(["--data-only"] if args.data_only else [])], cwd=ROOT, capture_output=True,
                                  text=True, check=True)
            results.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "params_file_mb": params_mb})
            r = results[-1]
            print(f"{Path(r['zoo']).name:<17} {r['networks']:>6} networks ({params_mb:6.1f} MB of parameters)  "
                  f"{r['mode']:<6}  data held {r['data_anon_mb']:6.1f} MB  peak RSS {r['peak_rss_mb']:6.1f} MB  "
                  f"peak anonymous {r['peak_anon_mb']:6.1f} MB  ({r['seconds']:.0f} s)", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
