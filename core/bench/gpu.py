"""The GPU path in one command: exactness tests on CUDA, one short training per task, live edit latency, model speed.

On a machine with a CUDA GPU it runs, and summarises in one report,
  1. the exact (float64) equivariance tests on CUDA (pytest tests/test_models_equivariance.py, WSE_TEST_DEVICE=cuda);
  2. one short training per registered task on its bundled zoo (`--device cuda`, `--precision`: fp16 autocast by
     default), with the test metric and seconds per epoch;
  3. with two or more GPUs, the same training with DistributedDataParallel (torchrun, nccl) on two of them;
  4. the app's live edit (the bundled inr-edit run applied to one INR) on the GPU: median latency;
  5. `python -m core bench models` on the GPU (graphs/s per model, training and inference).
Without CUDA it prints one line and exits with code 2. Nothing here is part of the CPU test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from core.paths import BUNDLED_MODELS, BUNDLED_ZOOS, REPO_ROOT

ZOO_OF_KIND = {"inr": BUNDLED_ZOOS / "digits-inr", "cnn": BUNDLED_ZOOS / "cnn-digits"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each task's training (default 2)")
    parser.add_argument("--precision", default="auto", help="training precision: auto (fp16 autocast), bf16 or fp32")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the live edit timing")
    parser.add_argument("--skip", nargs="*", default=[], choices=("exactness", "tasks", "ddp", "edit", "models"),
                        help="parts to leave out")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def exactness_on_cuda() -> dict[str, Any]:
    """pytest on the equivariance tests with the models and batches on CUDA."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_models_equivariance.py"], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "WSE_TEST_DEVICE": "cuda"})
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", proc.stdout)}
    return {"ok": proc.returncode == 0, "counts": counts, "seconds": time.perf_counter() - started,
            **({} if proc.returncode == 0 else {"tail": _tail(proc.stdout + proc.stderr)})}


def short_trainings(epochs: int, precision: str, out: Path) -> list[dict[str, Any]]:
    """One short training per registered task on its bundled zoo, on CUDA."""
    from core.models import model_names
    from core.runs import train_run
    from core.tasks import TASKS
    from core.training import TrainConfig

    rows = []
    model = "ng-gnn" if "ng-gnn" in model_names() else model_names()[0]
    for name, cls in TASKS.items():
        zoo = ZOO_OF_KIND.get(cls.zoo_kind)
        row: dict[str, Any] = {"task": name, "model": model, "zoo": zoo.name if zoo else None}
        try:
            cfg = TrainConfig(epochs=epochs, batch_size=32, patience=0, device="cuda", precision=precision)
            metrics = train_run(name, model, zoo, out / name, train=cfg, overwrite=True, progress=False)
            key = next((k for k in cls.summary_metrics if k in metrics.get("test", {})), "loss")
            row.update(ok=True, metric=key, value=metrics.get("test", {}).get(key),
                       seconds_per_epoch=metrics["training"]["seconds_per_epoch"])
        except Exception as exc:  # one failing task must not hide the others' figures
            row.update(ok=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        rows.append(row)
    return rows


def ddp_training(out: Path) -> dict[str, Any]:
    """inr-classify on two GPUs with torchrun (nccl); needs two CUDA devices."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "core", "train", "inr-classify", "--model", "ng-gnn", "--zoo",
                           str(ZOO_OF_KIND["inr"]), "--out", str(out / "ddp"), "--epochs", "2", "--batch-size", "16",
                           "--device", "cuda", "--overwrite", "--quiet"], cwd=REPO_ROOT, capture_output=True, text=True)
    row: dict[str, Any] = {"ok": proc.returncode == 0, "seconds": time.perf_counter() - started}
    if proc.returncode == 0:
        row["test"] = json.loads(proc.stdout.strip().splitlines()[-1]).get("test")
    else:
        row["tail"] = _tail(proc.stderr)
    return row


def live_edit_latency(repeats: int, device: str = "cuda") -> dict[str, Any]:
    """The app's live edit (the first bundled inr-edit run on one SIREN) on `device`: median seconds."""
    from core.bench.app import _median_s
    from core.network import Network, siren_architecture
    from core.runs import load_run

    editors = sorted(BUNDLED_MODELS.glob("inr-edit-*"))
    if not editors:
        return {"ok": False, "error": "no bundled inr-edit run under assets/models"}
    run = load_run(editors[0])
    run.model.to(device)
    torch.manual_seed(0)
    siren = Network.from_flat(siren_architecture(), torch.randn(siren_architecture().num_parameters) * 0.1)

    def edit() -> None:
        run.edit([siren], resolution=28)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return {"ok": True, "run": editors[0].name, "device": device, "median_s": _median_s(edit, repeats)}


def models_on_cuda() -> dict[str, Any]:
    """`python -m core bench models --json --device cuda`: graphs/s per model."""
    command = [sys.executable, "-m", "core", "bench", "models", "--json", "--networks", "inr", "--device", "cuda"]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"ok": False, "tail": _tail(proc.stderr)}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    keys = ("model", "network", "train_graphs_per_s", "inference_graphs_per_s")
    return {"ok": True, "rows": [{k: r.get(k) for k in keys} for r in result["rows"]]}


def run(args: argparse.Namespace) -> int:
    """Run the parts, print one summary; exit 1 if any failed. Without CUDA: one-line error, exit 2."""
    from core.bench.machine import machine_info
    from core.errors import WeightSpaceError

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise WeightSpaceError(f"bench gpu needs a CUDA GPU and none is available (torch {torch.__version__}, "
                               f"{build}); run it on a GPU machine")

    result: dict[str, Any] = {"benchmark": "gpu", "gpus": [torch.cuda.get_device_name(i)
                                                           for i in range(torch.cuda.device_count())],
                              "machine": machine_info()["summary"]}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        if "exactness" not in args.skip:
            result["exactness"] = exactness_on_cuda()
        if "tasks" not in args.skip:
            result["tasks"] = short_trainings(args.epochs, args.precision, Path(tmp))
        if "ddp" not in args.skip and torch.cuda.device_count() >= 2:
            result["ddp"] = ddp_training(Path(tmp))
        if "edit" not in args.skip:
            result["live_edit"] = live_edit_latency(args.repeats)
        if "models" not in args.skip:
            result["models"] = models_on_cuda()
    parts = [result[k] for k in ("exactness", "ddp", "live_edit", "models") if k in result] + result.get("tasks", [])
    result["ok"] = all(p.get("ok") for p in parts)
    print(json.dumps(result) if args.json else format_summary(result))
    return 0 if result["ok"] else 1


def format_summary(result: dict[str, Any]) -> str:
    """The one readable summary of `run`."""
    verdict = "all OK" if result["ok"] else "FAILURES"
    lines = [f"GPU path on {', '.join(result['gpus'])} ({result['machine']}): {verdict}"]
    ex = result.get("exactness")
    if ex:
        counts = ", ".join(f"{v} {k}" for k, v in ex["counts"].items())
        lines.append(f"  exactness tests on CUDA: {'ok' if ex['ok'] else 'FAILED'} ({counts}, {ex['seconds']:.0f} s)")
        lines += [f"    {line}" for line in ex.get("tail", "").splitlines()]
    for row in result.get("tasks", []):
        if row["ok"]:
            value = f"{row['value']:.4f}" if isinstance(row["value"], float) else row["value"]
            lines.append(f"  train {row['task']:<15} {row['model']} on {row['zoo']}: test {row['metric']} {value}, "
                         f"{row['seconds_per_epoch']:.2f} s/epoch")
        else:
            lines.append(f"  train {row['task']:<15} FAILED: {row['error']}")
    ddp = result.get("ddp")
    if ddp:
        lines.append(f"  DDP (2 GPUs, nccl) inr-classify: {'ok' if ddp['ok'] else 'FAILED'} in {ddp['seconds']:.0f} s"
                     + (f", test {ddp['test']}" if ddp.get("test") else ""))
    edit = result.get("live_edit")
    if edit:
        lines.append(f"  live edit ({edit['run']}): {edit['median_s'] * 1000:.1f} ms median" if edit["ok"]
                     else f"  live edit FAILED: {edit.get('error')}")
    models = result.get("models")
    if models and models["ok"]:
        for row in models["rows"]:
            lines.append(f"  model {row['model']:<11} {row['network']}: train {row['train_graphs_per_s']:.0f} "
                         f"graphs/s, inference {row['inference_graphs_per_s']:.0f} graphs/s")
    elif models:
        lines.append("  bench models FAILED:\n    " + models["tail"].replace("\n", "\n    "))
    return "\n".join(lines)
