"""Data-parallel training with torch.distributed (gloo, 2 CPU processes under torchrun): the same loss curve as
one process with the same global batch, a killed run resumes, and the run evaluates in one process."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.data import GraphSet, Group
from core.network import mlp_architecture
from core.training.distributed import World, env_world
from tests.cli_runner import run_cli_ok

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"hidden": 8, "layers": 1}
EPOCHS = 12


def test_shards_partition_every_batch_and_weight_the_loss() -> None:
    arch = mlp_architecture([2, 3, 1], "relu")
    data = GraphSet([Group(arch, torch.randn(5, arch.num_parameters), torch.arange(5), torch.arange(5))])
    whole = [b.index.tolist() for b in data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(3))]
    shares = [list(data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(3), shard=(r, 2)))
              for r in range(2)]
    for k, rows in enumerate(whole):  # batches of 4 and 1 networks
        real = [b for b in (shares[0][k], shares[1][k]) if b.weight > 0]
        assert sorted(i for b in real for i in b.index.tolist()) == sorted(rows)
        # in the mean over ranks of weight × (mean loss of the share) every network counts 1 / batch size
        for b in real:
            assert b.weight / len(b.index) / 2 == pytest.approx(1 / len(rows))
    placeholder = shares[1][1]  # the one-network batch leaves rank 1 a placeholder
    assert placeholder.weight == 0 and len(placeholder.index) == 1 and shares[0][1].weight == 2


def test_env_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert env_world() == World() and not env_world().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert env_world() == World(2, 4, 0) and env_world().shard == (2, 4) and not env_world().is_main
    monkeypatch.setenv("RANK", "4")
    from core.errors import WeightSpaceError

    with pytest.raises(WeightSpaceError, match="RANK=4"):
        env_world()


def _log(run: Path) -> list[dict[str, float]]:
    with open(run / "log.csv") as fh:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def _torchrun(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "core", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _kill_after_first_checkpoint(proc: subprocess.Popen, run: Path) -> int:
    """SIGKILL the whole process group once the run's checkpoint holds epoch ≥ 1; returns that epoch."""
    ckpt, epoch, deadline = run / "checkpoint.pt", -1, time.time() + 120
    while time.time() < deadline and proc.poll() is None and epoch < 1:
        if ckpt.exists():
            try:
                epoch = torch.load(ckpt, weights_only=True)["epoch"]
            except Exception:  # being replaced right now
                epoch = -1
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return epoch


def test_two_processes_follow_one_process_resume_and_evaluate(tmp_path: Path) -> None:
    from core.runs import train_run
    from core.training import TrainConfig
    from core.zoo import build_inr_zoo

    tiny_zoo = build_inr_zoo(tmp_path / "zoo", images="digits", count=24, hidden=(8, 8), steps=20, target_psnr=None,
                             workers=1, progress=False).dir

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster on a shared machine
    try:
        train_run("inr-classify", "ng-gnn", tiny_zoo, tmp_path / "one", model_overrides=MODEL, augment=True,
                  train=TrainConfig(epochs=EPOCHS, batch_size=8, lr=3e-3, patience=0, seed=5), progress=False)
    finally:
        torch.set_num_threads(threads)

    two = tmp_path / "two"
    args = ["train", "inr-classify", "--model", "ng-gnn", "--zoo", str(tiny_zoo), "--out", str(two), "--hidden", "8",
            "--layers", "1", "--augment", "--epochs", str(EPOCHS), "--batch-size", "4", "--lr", "3e-3",
            "--patience", "0", "--seed", "5", "--quiet"]
    epoch = _kill_after_first_checkpoint(_torchrun(*args), two)
    assert 1 <= epoch < EPOCHS - 1, "the run must be interrupted part-way"
    assert not (two / "weights.safetensors").exists()
    proc = _torchrun(*args, "--resume")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    printed = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1, "rank 0 alone prints the metrics"

    one_log, two_log = _log(tmp_path / "one"), _log(two)
    assert len(one_log) == len(two_log) == EPOCHS
    for a, b in zip(one_log, two_log):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-4), (a["epoch"], key)
    assert one_log[-1]["train_loss"] < one_log[0]["train_loss"]  # it trained
    w1, w2 = load_file(str(tmp_path / "one" / "weights.safetensors")), load_file(str(two / "weights.safetensors"))
    assert w1.keys() == w2.keys()
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-3, atol=1e-4)

    stored = json.loads((two / "metrics.json").read_text())
    assert stored["training"]["processes"] == 2
    out = run_cli_ok("evaluate", str(two), "--split", "test", "--json", "--device", "cpu")
    evaluated = json.loads(out.stdout)
    assert evaluated["accuracy"] == stored["test"]["accuracy"]
    assert evaluated["confusion"] == stored["test"]["confusion"]
    assert evaluated["loss"] == pytest.approx(stored["test"]["loss"], rel=1e-5)


def _task_set(task_name: str):
    """A task and 6 small SIRENs with the table columns every task reads."""
    import numpy as np
    import pandas as pd

    from core.network import siren_architecture
    from core.tasks import build_task

    arch = siren_architecture(hidden=(4, 4))
    flat = torch.randn(6, arch.num_parameters, generator=torch.Generator().manual_seed(0)) * 0.3
    table = pd.DataFrame({"label": [0, 1, 0, 1, 0, 1], "image_index": [0, 0, 1, 1, 2, 2],
                          "test_accuracy": np.linspace(0.1, 0.9, 6)})
    task = build_task(task_name, **({"edit": "erode", "resolution": 8} if task_name == "inr-edit" else {}))
    rows = np.arange(6)
    group = Group(arch, flat, torch.as_tensor(rows), task.targets(table, rows), task.extras(arch, flat, table, rows))
    return task, task.out_dim(table), GraphSet([group])


@pytest.mark.parametrize("task_name", ["inr-classify", "inr-edit", "embed", "generalization"])
def test_steps_make_no_tensor_on_the_default_device(task_name: str) -> None:
    """GPU readiness on a CPU machine: with `meta` as the default device, a training and an evaluation step on
    CPU inputs still run, so no model or task creates a tensor without saying where (on a GPU such a tensor
    lands on the CPU next to CUDA inputs and the step fails)."""
    from core.models import MODELS, build_model

    task, out_dim, data = _task_set(task_name)
    batch = next(data.batches(6))  # batches are built on the CPU and then moved; the step is what runs on a GPU
    for name, cls in MODELS.items():
        extra = {"architecture": data.groups[0].architecture} if cls.fixed_architecture else {}
        model = build_model(name, out_dim=out_dim, head=task.head, edge_dim=1, hidden=8, layers=1, **extra)
        if hasattr(model, "fit_normalisation"):
            model.fit_normalisation(batch.graph)
        task.step(model, batch)  # layouts and caches made on the CPU first, as a run makes them
        for training in (True, False):
            model.train(training)
            with torch.device("meta"), torch.set_grad_enabled(training):
                loss, _ = task.step(model, batch)
                if training:
                    loss.backward()
                task.predict_step(model, batch)


def test_bench_gpu_without_cuda_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from core.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bench gpu needs a CUDA GPU")


def test_bench_gpu_parts_and_summary_on_cpu() -> None:
    """The live-edit part runs on any device (CPU here); the summary reports every part and any failure."""
    from core.bench.gpu import format_summary, live_edit_latency

    edit = live_edit_latency(1, device="cpu")
    assert edit["ok"] and edit["run"].startswith("inr-edit") and 0 < edit["median_s"] < 60
    result = {"gpus": ["GPU X"], "machine": "test", "ok": False, "live_edit": edit,
              "exactness": {"ok": True, "counts": {"passed": 70}, "seconds": 3.0},
              "tasks": [{"task": "inr-classify", "model": "ng-gnn", "zoo": "digits-inr", "ok": True,
                         "metric": "accuracy", "value": 0.5, "seconds_per_epoch": 1.0},
                        {"task": "embed", "ok": False, "error": "RuntimeError: boom"}],
              "models": {"ok": True, "rows": [{"model": "ng-gnn", "network": "2-32-32-1", "train_graphs_per_s": 10.0,
                                               "inference_graphs_per_s": 20.0}]}}
    text = format_summary(result)
    assert text.splitlines()[0] == "GPU path on GPU X (test): FAILURES"
    for expected in ("exactness tests on CUDA: ok (70 passed", "test accuracy 0.5000", "embed           FAILED: "
                     "RuntimeError: boom", "live edit (inr-edit", "model ng-gnn      2-32-32-1: train 10 graphs/s"):
        assert expected in text, expected


def test_resume_refuses_another_global_batch(tmp_path: Path) -> None:
    from core.models import build_model
    from core.tasks import ClassifyTask, TaskError
    from core.training import TrainConfig, Trainer

    arch = mlp_architecture([2, 4, 1], "relu")
    data = GraphSet([Group(arch, torch.randn(12, arch.num_parameters), torch.arange(12), torch.arange(12) % 2)])
    task = ClassifyTask(num_classes=2)

    def trainer(batch_size: int) -> Trainer:
        model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=8, layers=1)
        return Trainer(task, model, TrainConfig(epochs=2, batch_size=batch_size, patience=0), tmp_path, progress=False)

    trainer(4).fit(data)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["global_batch"] == 4
    with pytest.raises(TaskError, match="global batch of 4 networks"):
        trainer(2).fit(data, resume=True)
    assert trainer(4).fit(data, resume=True)["epochs_run"] == 2  # the same batch resumes (nothing left to run)
