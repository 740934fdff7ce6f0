"""`python -m core check`: lists symmetries, per-symmetry errors, exit codes 0 / 1 / 2, JSON output, and a
wrong `--activation` that must fail rather than pass silently."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.cli import COMMANDS, main
from core.io import save_network
from core.network import (
    Activation,
    Architecture,
    BatchNorm,
    Conv,
    GlobalAvgPool,
    Linear,
    Network,
    mlp_architecture,
    siren_architecture,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    monkeypatch.setitem(COMMANDS, "check", "core.cli.check_cmd")


def _net(arch: Architecture, seed: int = 0, scale: float = 0.5) -> Network:
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for key, shape in arch.parameter_shapes():
        t = torch.randn(*shape, generator=gen) * scale
        params[key] = t.abs() + 0.5 if key.endswith("running_var") else t
    return Network(arch, params)


def _check(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["check", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _json(capsys, *argv: str) -> tuple[int, dict]:
    rc, out, _ = _check(capsys, *argv, "--json")
    return rc, json.loads(out)


def test_siren_state_dict_passes(tmp_path, capsys):
    path = tmp_path / "siren.pth"
    torch.save(_net(siren_architecture(), scale=0.3).state_dict(), path)  # DWSNets key layout: sine, w0 = 30
    rc, report = _json(capsys, str(path), "--trials", "3", "--seed", "4")
    assert rc == 0
    assert report["symmetries"]["summary"] == (
        "permutation of 32+32 hidden neurons; sign flips on 64 neurons; bias periodicity 2π/30")
    assert [c["symmetry"] for c in report["checks"]] == ["permutation", "sign", "phase"]
    for c in report["checks"]:
        assert set(c) >= {"symmetry", "max_abs_error", "max_rel_error", "passed"}
        assert c["passed"] and c["max_rel_error"] < 1e-9
    rc, text, _ = _check(capsys, str(path))
    assert rc == 0 and "symmetries: permutation of 32+32" in text and "phase" in text and "FAIL" not in text


def test_wrong_activation_fails(tmp_path, capsys):
    path = tmp_path / "relu.safetensors"
    save_network(_net(mlp_architecture([3, 8, 8, 2], "relu")), path)  # the export records relu
    rc, report = _json(capsys, str(path))
    assert rc == 0 and [c["symmetry"] for c in report["checks"]] == ["permutation", "scale"]
    rc, report = _json(capsys, str(path), "--activation", "tanh")
    assert rc == 1
    checks = {c["symmetry"]: c for c in report["checks"]}
    assert checks["permutation"]["passed"] and not checks["sign"]["passed"]
    assert checks["sign"]["max_rel_error"] > 1e-3
    rc, text, _ = _check(capsys, str(path), "--activation", "tanh")
    assert rc == 1 and "FAIL" in text and "differs from the recorded relu" in text


def test_state_dict_needs_activation(tmp_path, capsys):
    path = tmp_path / "mlp.pt"
    torch.save(_net(mlp_architecture([4, 6, 3], "relu")).state_dict(), path)
    rc, out, err = _check(capsys, str(path))
    assert rc == 2 and out == "" and err.startswith("error:") and "--activation" in err
    rc, report = _json(capsys, str(path), "--activation", "leaky_relu")
    assert rc == 0 and report["passed"] and "scale" in report["symmetries"]["kinds"]


def test_cnn_with_batchnorm(tmp_path, capsys):
    arch = Architecture((Conv("c1", 2, 4, (3, 3), padding=(1, 1)), BatchNorm("b1", 4), Activation("relu"),
                         Conv("c2", 4, 4, (5, 5), padding=(2, 2)), Activation("tanh"), GlobalAvgPool(),
                         Linear("fc", 4, 3)), (2, 6, 6))
    path = tmp_path / "cnn.safetensors"
    save_network(_net(arch, 3), path)
    rc, report = _json(capsys, str(path), "--trials", "2")
    assert rc == 0
    assert report["symmetries"]["kinds"] == ["permutation", "scale", "sign"]
    assert all(c["passed"] and c["max_rel_error"] < 1e-9 for c in report["checks"])


def test_network_without_hidden_layers(tmp_path, capsys):
    path = tmp_path / "linear.safetensors"
    save_network(_net(mlp_architecture([3, 2], "relu")), path)
    rc, text, _ = _check(capsys, str(path))
    assert rc == 0 and "no weight-space symmetries" in text


def test_network_with_dead_relus_is_flagged(tmp_path, capsys):
    """Every ReLU dead: the output ignores the input and a pass tests little, so the report says so."""
    net = _net(mlp_architecture([3, 8, 8, 2], "relu"))
    alive = tmp_path / "alive.safetensors"
    save_network(net, alive)
    rc, report = _json(capsys, str(alive))
    assert rc == 0 and report["warning"] is None
    rc, text, _ = _check(capsys, str(alive))
    assert "warning" not in text
    dead = tmp_path / "dead.safetensors"
    key = [k for k, _ in net.architecture.parameter_shapes() if k.endswith("bias")][1]  # the second hidden layer
    params = dict(net.params, **{key: torch.full_like(net.params[key], -1e3)})
    save_network(Network(net.architecture, params), dead)
    rc, report = _json(capsys, str(dead))
    assert rc == 0 and all(c["passed"] for c in report["checks"])
    assert "same output for every probe input" in report["warning"]
    rc, text, _ = _check(capsys, str(dead))
    assert rc == 0 and "warning: the network gives the same output" in text


@pytest.mark.parametrize("argv", [["{missing}"], ["{garbage}"], ["{good}", "--trials", "0"]])
def test_bad_input_exits_2(tmp_path, capsys, argv):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    good = tmp_path / "good.safetensors"
    save_network(_net(mlp_architecture([2, 3, 1], "tanh")), good)
    names = {"missing": str(tmp_path / "missing.pt"), "garbage": str(garbage), "good": str(good)}
    rc, out, err = _check(capsys, *[a.format(**names) for a in argv])
    assert rc == 2 and err.startswith("error:") and "Traceback" not in err


def test_module_entry_point(tmp_path):
    path = tmp_path / "tanh.safetensors"
    save_network(_net(mlp_architecture([2, 5, 5, 1], "tanh")), path)
    proc = subprocess.run([sys.executable, "-m", "core", "check", str(path), "--json", "--trials", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [c["symmetry"] for c in report["checks"]] == ["permutation", "sign"]
    assert all(math.isfinite(c["max_abs_error"]) for c in report["checks"])
