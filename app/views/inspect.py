"""Inspect: a checkpoint's architecture, neural graph, weight statistics, spectra and downloads."""

from __future__ import annotations

import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.resources import cached_summary, network_fingerprint, network_picker
from core.graph.layout import layout_for
from core.io import network_to_bytes
from core.network.spec import Network
from core.spectral import MIN_EIGENVALUES, layer_spectra
from core.viz import esd_histograms, graph_figure, graph_json_bytes, graphml_bytes, spectra_figure, weight_histograms

st.title("Inspect a checkpoint")
st.caption("Any state_dict, training checkpoint or safetensors file becomes a *neural graph*: one node per neuron, "
           "one edge per weight.")


@st.cache_data(max_entries=16, show_spinner="Fitting each layer's spectral density…",
               hash_funcs={Network: network_fingerprint})
def cached_esd_figure(network: Network) -> go.Figure:
    """The ESD histogram and power-law α of each weight layer (an SVD and a fit per layer: once per network)."""
    return esd_histograms(layer_spectra(network))


@st.cache_data(max_entries=16, show_spinner="Computing each layer's singular values…",
               hash_funcs={Network: network_fingerprint})
def cached_spectra(network: Network) -> tuple[go.Figure, list[dict]]:
    """Singular values and stable rank per layer (once per network)."""
    return spectra_figure(network)


@st.cache_data(max_entries=16, show_spinner="Drawing weight histograms…", hash_funcs={Network: network_fingerprint})
def cached_weight_histograms(network: Network) -> go.Figure:
    """Weight and bias histograms per layer (once per network)."""
    return weight_histograms(network)


net = network_picker("inspect")
if net is None:
    st.stop()

started = time.perf_counter()
summary = cached_summary(net)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Parameters", f"{summary['num_parameters']:,}")
c2.metric("Graph nodes", f"{summary['num_nodes']:,}")
c3.metric("Graph edges", f"{summary['num_edges']:,}")
c4.metric("Activations", ", ".join(summary["activations"]) or "none")
for note in summary["assumptions"]:
    st.info(note)

# only the open tab's content is computed (spectra: an SVD and a power-law fit per layer), so a cold page waits for
# what it shows; the graph tab always runs, so its controls keep their values while another tab is open
tab_graph, tab_layers, tab_spectra, tab_download = st.tabs(["Neural graph", "Layers", "Spectra", "Download"],
                                                           key="inspect-tab", on_change="rerun")
with tab_graph:
    num_edges = int(summary["num_edges"])
    g1, g2 = st.columns([3, 1])
    if num_edges > 100:  # the slider ends at this model's edge count: its right end draws every edge
        max_edges = g1.slider("Edges to draw (each layer keeps its share, strongest first)", 100, num_edges,
                              min(3_000, num_edges), step=1 if num_edges < 2_000 else 100, key="inspect-edges")
    else:
        max_edges = num_edges
    per_layer = g2.toggle("Intensity per layer", value=True, key="inspect-normalise",
                          help="On: an edge's width and opacity are relative to the weights of its own layer. "
                               "Off: relative to the whole network's.")
    num_layers = len(layout_for(net.architecture).layers)
    view = (0, num_layers - 1)
    if num_layers > 2:
        view = st.slider("Zoom into layers", 0, num_layers - 1, view, key="inspect-layers",
                         help="Draw only the neuron layers in this range (0 = the input) and the edges between them.")
    fig, hidden = graph_figure(net, max_edges=max_edges, normalise="layer" if per_layer else "global",
                               layers=None if view == (0, num_layers - 1) else view)
    st.plotly_chart(fig, width="stretch")
    st.caption("Columns are layers (input on the left). Node colour = bias (red negative, blue positive); "
               "edge colour = sign of the weight, width and opacity = its magnitude "
               f"{'within its layer' if per_layer else 'within the network'}; dotted grey = skip connections. "
               + (f"**{hidden:,} weaker edges are hidden** for speed; every layer keeps its share."
                  if hidden else "All edges are drawn."))
if tab_layers.open:
    with tab_layers:
        rows = [{"#": lay["index"], "layer": f"{lay['kind']} {lay.get('name') or lay.get('activation') or ''}".strip(),
                 "input": str(tuple(lay["input_shape"])), "output": str(tuple(lay["output_shape"])),
                 "parameters": lay.get("parameters"),
                 "weight mean": lay["weight"]["mean"] if "weight" in lay else None,
                 "weight std": lay["weight"]["std"] if "weight" in lay else None} for lay in summary["layers"]]
        # rows without weights (activations, pooling) show an empty cell, not "None"
        table = pd.DataFrame(rows)
        table["parameters"] = [f"{int(v):,}" if pd.notna(v) else "" for v in table["parameters"]]
        for column in ("weight mean", "weight std"):
            table[column] = [f"{v:.4g}" if pd.notna(v) else "" for v in table[column]]
        # a weight layer too small to fit shows "–" (its reason is in the ESD figure's title), not a number
        table["α (ESD tail)"] = [f"{lay['alpha']:.2f}" if lay.get("alpha") is not None else "–" if "weight" in lay
                                 else "" for lay in summary["layers"]]
        st.dataframe(table, hide_index=True, width="stretch")
        st.plotly_chart(cached_weight_histograms(net), width="stretch")
        st.caption("Histograms of each Linear/Conv layer's weights (left) and biases (right).")
if tab_spectra.open:
    with tab_spectra:
        fig, table = cached_spectra(net)
        st.plotly_chart(fig, width="stretch")
        st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
        st.caption("Singular values of each weight matrix (conv kernels reshaped to out × in·k). Stable rank "
                   "‖W‖²_F / ‖W‖²₂ counts the directions that carry most of the energy.")
        st.plotly_chart(cached_esd_figure(net), width="stretch")
        st.caption("Empirical spectral density of each layer: eigenvalues of WᵀW/N (N = the larger side). α is the "
                   "exponent of a power law fitted to its tail (from the dashed xmin on), as WeightWatcher reports it; "
                   f"layers with fewer than {MIN_EIGENVALUES} eigenvalues get no α.")
if tab_download.open:
    with tab_download:
        stem = str(net.meta.get("file", "network")).rsplit(".", 1)[0]
        st.download_button("Network (export format, .safetensors)", network_to_bytes(net), f"{stem}.safetensors",
                           help="safetensors with the architecture description in its metadata: loads without code.")
        if st.button("Prepare graph downloads (GraphML / JSON)"):
            st.download_button("Neural graph (GraphML)", graphml_bytes(net), f"{stem}.graphml")
            st.download_button("Neural graph (JSON)", graph_json_bytes(net), f"{stem}.json")
st.caption(f"Server time for this page: {time.perf_counter() - started:.2f} s")
