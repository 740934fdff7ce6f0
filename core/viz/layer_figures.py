"""Per-layer figures: weight/bias histograms, singular-value spectra and empirical spectral densities."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.network.spec import Network
from core.spectral import LayerSpectrum
from core.summary import spectrum, weight_matrix


def _weight_ops(network: Network) -> list:
    arch = network.architecture
    return [arch.ops[i] for i in arch.weight_layers()]


def weight_histograms(network: Network, bins: int = 40) -> go.Figure:
    """One row per Linear/Conv layer: histogram of its weights and of its biases."""
    ops = _weight_ops(network)
    titles = [t for op in ops for t in (f"{op.name} weights", f"{op.name} biases")]
    # room between rows for the subplot titles; only the bottom row carries the x-axis title, so no axis title
    # sits on the next row's subplot title
    fig = make_subplots(rows=len(ops), cols=2, subplot_titles=titles,
                        vertical_spacing=min(0.12, 0.9 / max(len(ops), 1)))
    for r, op in enumerate(ops, start=1):
        w = network.params[f"{op.name}.weight"].detach().double().reshape(-1).numpy()
        fig.add_trace(go.Histogram(x=w, nbinsx=bins, marker_color="#1f77b4", showlegend=False), row=r, col=1)
        if f"{op.name}.bias" in network.params:
            b = network.params[f"{op.name}.bias"].detach().double().reshape(-1).numpy()
            fig.add_trace(go.Histogram(x=b, nbinsx=bins, marker_color="#ff7f0e", showlegend=False), row=r, col=2)
        fig.update_yaxes(title_text="count", row=r, col=1)
    fig.update_xaxes(title_text="value", row=len(ops), col=1)
    fig.update_xaxes(title_text="value", row=len(ops), col=2)
    fig.update_layout(height=max(300, 230 * len(ops)), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def spectra_figure(network: Network) -> tuple[go.Figure, list[dict]]:
    """Singular values of each layer's weight matrix (conv kernels reshaped to [out, in·k]) on a log scale,
    plus a table of spectral norm and stable rank ‖W‖_F²/‖W‖_2² per layer."""
    fig = go.Figure()
    rows = []
    for op in _weight_ops(network):
        spec = spectrum(weight_matrix(network, op.name))
        s = spec["singular_values"]
        shape = "×".join(map(str, weight_matrix(network, op.name).shape))
        # the legend names the layer by kind and shape too: a Sequential's layers are only called 0, 2, 4
        fig.add_trace(go.Scatter(x=list(range(1, len(s) + 1)), y=s, mode="lines+markers",
                                 name=f"{op.kind} {op.name} ({shape})"))
        rows.append({"layer": op.name, "shape": shape,
                     "spectral norm": round(spec["spectral_norm"], 4), "stable rank": round(spec["stable_rank"], 3)})
    fig.update_layout(xaxis_title="singular value index", yaxis_title="singular value", yaxis_type="log", height=400,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(title="layer"))
    return fig, rows


def esd_histograms(spectra: list[LayerSpectrum], bins: int = 40) -> go.Figure:
    """One row per weight layer: histogram of its ESD (eigenvalues of WᵀW/N) on log-spaced bins and a log x axis,
    with the fitted power-law tail's start xmin marked and α in the title."""
    titles = [f"{s.name} ({s.shape[0]}×{s.shape[1]}): " + (f"α = {s.alpha:.2f}" if s.alpha is not None
                                                          else f"no α: {s.reason}") for s in spectra]
    fig = make_subplots(rows=max(len(spectra), 1), cols=1, subplot_titles=titles,
                        vertical_spacing=min(0.12, 0.9 / max(len(spectra), 1)))
    for r, s in enumerate(spectra, start=1):
        positive = s.eigenvalues[s.eigenvalues > 0]
        if positive.size == 0:
            continue
        # log-spaced bins: on a log axis, linear bins would crowd the bulk into one bar
        lo, hi = np.log10(positive.min()), np.log10(positive.max())
        edges = np.logspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
        edges[0], edges[-1] = positive.min(), max(positive.max(), edges[-1])  # 10**log10(x) may round past x
        counts, _ = np.histogram(positive, edges)
        centers = np.sqrt(edges[:-1] * edges[1:])
        fig.add_trace(go.Bar(x=centers, y=counts, width=np.diff(edges), marker_color="#1f77b4", showlegend=False,
                             hovertemplate="λ ≈ %{x:.3g}: %{y} eigenvalues<extra></extra>"), row=r, col=1)
        if s.xmin is not None:  # a trace, not a shape: trace coordinates are data values on a log axis too
            fig.add_trace(go.Scatter(x=[s.xmin, s.xmin], y=[0, int(counts.max())], mode="lines", showlegend=False,
                                     line=dict(dash="dash", color="#d62728"), hoverinfo="skip"), row=r, col=1)
        fig.update_xaxes(type="log", row=r, col=1)
        fig.update_yaxes(title_text="count", row=r, col=1)
    fig.update_xaxes(title_text="eigenvalue λ of WᵀW/N (log scale; dashed: xmin of the power-law fit)",
                     row=max(len(spectra), 1), col=1)
    fig.update_layout(height=max(300, 230 * len(spectra)), margin=dict(l=10, r=10, t=40, b=10), bargap=0)
    return fig
