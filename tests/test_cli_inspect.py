"""`python -m core inspect` as a user runs it (in-process: `tests/cli_runner.py`): JSON and readable output, clear
errors without tracebacks, pickled modules refused."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tests.cli_runner import run_cli


def test_inspect_mlp_json(tmp_path: Path) -> None:
    path = tmp_path / "mlp.pt"
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    torch.save(model.state_dict(), path)
    out = run_cli("inspect", str(path), "--activation", "relu", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["num_nodes"] == 784 + 128 + 64 + 10
    assert data["num_edges"] == 784 * 128 + 128 * 64 + 64 * 10
    assert data["num_parameters"] == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert isinstance(data["layers"], list) and len(data["layers"]) == 5
    assert data["activations"] == ["relu"]


def test_inspect_readable_summary_reports_unknown_activation(tmp_path: Path) -> None:
    path = tmp_path / "mlp.pth"
    torch.save({"model": nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).state_dict()}, path)
    out = run_cli("inspect", str(path))
    assert out.returncode == 0, out.stderr
    assert "unknown" in out.stdout and "parameters: 21" in out.stdout and "--activation" in out.stdout


def test_inspect_siren_recognised(tmp_path: Path) -> None:
    from tests.zoo_of_modules import Siren

    path = tmp_path / "inr.pth"
    torch.save(Siren().state_dict(), path)
    data = json.loads(run_cli("inspect", str(path), "--json", "--spectra").stdout)
    assert data["activations"] == ["sine(w0=30)"]
    assert data["num_nodes"] == 2 + 32 + 32 + 1
    spectrum = data["layers"][2]["spectrum"]
    assert len(spectrum["singular_values"]) == 32 and 1.0 <= spectrum["stable_rank"] <= 32


def test_inspect_bad_input_exit_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"\x00" * 100)
    out = run_cli("inspect", str(path))
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    missing = run_cli("inspect", str(tmp_path / "nope.pt"), "--json")
    assert missing.returncode == 2 and "no such file" in missing.stderr and missing.stdout == ""


def test_inspect_refuses_pickled_module(tmp_path: Path) -> None:
    path = tmp_path / "full.pt"
    torch.save(nn.Sequential(nn.Linear(2, 2)), path)
    out = run_cli("inspect", str(path))
    assert out.returncode == 2 and "state_dict" in out.stderr and "Traceback" not in out.stderr
