"""Empirical spectral densities and their power-law α (core.spectral): the fit, small layers, the CLI and the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from core.io import load_network
from core.spectral import MIN_EIGENVALUES, esd, fit_power_law, layer_spectra
from core.summary import summarize
from core.viz import esd_histograms
from tests.cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "assets" / "examples" / "mlp-784-128-64-10.pt"


def _matrix_with_esd(eigenvalues: np.ndarray, rows: int, seed: int) -> torch.Tensor:
    """W = U diag(√(λ·N)) Vᵀ with random orthonormal U [rows, M], V [M, M]: the ESD of WᵀW/N is exactly λ."""
    gen = torch.Generator().manual_seed(seed)
    m = eigenvalues.size
    u, _ = torch.linalg.qr(torch.randn(rows, m, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    scale = torch.from_numpy(np.sqrt(eigenvalues * max(rows, m)))
    return u @ torch.diag(scale) @ v.T


@pytest.mark.parametrize("alpha", [2.5, 4.0])
def test_alpha_of_a_known_pareto_spectrum_is_recovered(alpha: float) -> None:
    rng = np.random.default_rng(0)
    # inverse-CDF samples of p(λ) ∝ λ^-alpha on λ ≥ 1
    eigenvalues = (1.0 - rng.random(800)) ** (-1.0 / (alpha - 1.0))
    matrix = _matrix_with_esd(eigenvalues, rows=1200, seed=1)
    spectrum = esd(matrix)
    np.testing.assert_allclose(spectrum, np.sort(eigenvalues), rtol=1e-8)
    fitted, xmin, reason = fit_power_law(spectrum)
    assert reason is None and xmin is not None and xmin >= 1.0 - 1e-9
    assert fitted == pytest.approx(alpha, abs=0.35)


def test_a_gaussian_matrix_is_not_heavy_tailed() -> None:
    """A random Gaussian W has a Marchenko–Pastur ESD (bounded support): its fitted α is far above a heavy tail's."""
    matrix = torch.randn(1000, 500, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fitted, _, reason = fit_power_law(esd(matrix))
    assert reason is None and fitted > 5.0


def test_small_and_degenerate_layers_get_no_alpha(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).state_dict(), path)
    spectra = layer_spectra(load_network(path, "relu"))
    assert [s.shape for s in spectra] == [(7, 5), (3, 7)]
    assert [s.eigenvalues.size for s in spectra] == [5, 3]
    for s in spectra:
        assert s.alpha is None and s.xmin is None
        assert f"at least {MIN_EIGENVALUES}" in s.reason
    orthogonal, _ = torch.linalg.qr(torch.randn(200, 200, generator=torch.Generator().manual_seed(0)))
    assert fit_power_law(esd(orthogonal)) == (None, None, "all eigenvalues are equal (no tail to fit)")


def test_fit_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    fit_power_law((1.0 - rng.random(300)) ** -0.5)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_conv_kernels_are_flattened_per_output_channel(tmp_path: Path) -> None:
    path = tmp_path / "cnn.pt"
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    torch.save(model.state_dict(), path)
    spectra = layer_spectra(load_network(path, "relu"))
    assert spectra[0].shape == (8, 27)
    w = model[0].weight.detach().double().reshape(8, -1)
    np.testing.assert_allclose(spectra[0].eigenvalues, np.sort(torch.linalg.svdvals(w).numpy() ** 2 / 27), rtol=1e-9)


def test_inspect_json_and_readable_output_carry_alpha() -> None:
    run = ["inspect", str(MLP), "--activation", "relu"]
    out = run_cli(*run, "--json")
    assert out.returncode == 0, out.stderr
    layers = {lay["index"]: lay for lay in json.loads(out.stdout)["layers"]}
    expected = {s.name: s for s in layer_spectra(load_network(MLP, "relu"))}
    for index in (0, 2):  # 128 and 64 eigenvalues: fitted
        lay = layers[index]
        assert 1.0 < lay["alpha"] < 10.0 and lay["alpha_xmin"] > 0 and lay["alpha_reason"] is None
        assert lay["alpha"] == pytest.approx(expected[lay["name"]].alpha)
    assert layers[4]["alpha"] is None and "eigenvalues" in layers[4]["alpha_reason"]  # 64→10: 10 eigenvalues
    assert "alpha" not in layers[1]  # an activation has no weights
    readable = run_cli(*run)
    assert readable.returncode == 0, readable.stderr
    assert "alpha" in readable.stdout and f"{layers[0]['alpha']:.2f}" in readable.stdout


def test_esd_figure_has_a_log_axis_and_names_alpha_per_layer() -> None:
    spectra = layer_spectra(load_network(MLP, "relu"))
    fig = esd_histograms(spectra)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("0 (128×784): α = ") and "no α" in titles[2]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis3.type == "log"
    bars = [t for t in fig.data if t.type == "bar"]
    assert [int(sum(b.y)) for b in bars] == [128, 64, 10]  # every eigenvalue lands in a bin


def test_inspect_page_layers_table_shows_alpha() -> None:
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.run()
    at.selectbox(key="inspect-example").set_value("mlp-784-128-64-10.pt").run()
    assert not at.exception, at.exception
    at.session_state["inspect-tab"] = "Layers"  # what clicking the tab does (only the open tab is computed)
    at.run()
    table = next(d.value for d in at.dataframe if "α (ESD tail)" in d.value.columns)
    summary = summarize(load_network(MLP, "relu"))
    assert list(table["α (ESD tail)"]) == [f"{summary['layers'][0]['alpha']:.2f}", "",
                                           f"{summary['layers'][2]['alpha']:.2f}", "", "–"]
