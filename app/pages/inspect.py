"""Inspect: a checkpoint's architecture, neural graph, weight statistics, spectra and downloads."""

from __future__ import annotations

import hashlib
import json
import time

import pandas as pd
import streamlit as st
import torch

from app.resources import network_picker
from core.graph.layout import layout_for
from core.io import network_to_bytes
from core.network.spec import Network
from core.spectral import MIN_EIGENVALUES, LayerSpectrum, layer_spectra
from core.summary import summarize
from core.viz import esd_histograms, graph_figure, graph_json_bytes, graphml_bytes, spectra_figure, weight_histograms

st.title("Inspect a checkpoint")
st.caption("Any state_dict, training checkpoint or safetensors file becomes a *neural graph*: one node per neuron, "
           "one edge per weight.")


def network_fingerprint(network: Network) -> str:
    """A digest of the architecture and every parameter's bytes: the cache key of a Network."""
    digest = hashlib.sha256(json.dumps(network.architecture.to_dict(), sort_keys=True).encode())
    for name in sorted(network.params):
        digest.update(name.encode())
        # raw bytes (a uint8 view): numpy has no bfloat16
        digest.update(network.params[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@st.cache_data(max_entries=16, show_spinner=False, hash_funcs={Network: network_fingerprint})
def cached_layer_spectra(network: Network) -> list[LayerSpectrum]:
    """The ESD and power-law α of each weight layer (an SVD and a fit per layer: once per network)."""
    return layer_spectra(network)


net = network_picker("inspect")
if net is None:
    st.stop()

started = time.perf_counter()
summary = summarize(net)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Parameters", f"{summary['num_parameters']:,}")
c2.metric("Graph nodes", f"{summary['num_nodes']:,}")
c3.metric("Graph edges", f"{summary['num_edges']:,}")
c4.metric("Activations", ", ".join(summary["activations"]) or "none")
for note in summary["assumptions"]:
    st.info(note)

tab_graph, tab_layers, tab_spectra, tab_download = st.tabs(["Neural graph", "Layers", "Spectra", "Download"])
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
    st.plotly_chart(weight_histograms(net), width="stretch")
    st.caption("Histograms of each Linear/Conv layer's weights (left) and biases (right).")
with tab_spectra:
    fig, table = spectra_figure(net)
    st.plotly_chart(fig, width="stretch")
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
    st.caption("Singular values of each weight matrix (conv kernels reshaped to out × in·k). Stable rank "
               "‖W‖²_F / ‖W‖²₂ counts the directions that carry most of the energy.")
    st.plotly_chart(esd_histograms(cached_layer_spectra(net)), width="stretch")
    st.caption("Empirical spectral density of each layer: eigenvalues of WᵀW/N (N = the larger side). α is the "
               "exponent of a power law fitted to its tail (from the dashed xmin on), as WeightWatcher reports it; "
               f"layers with fewer than {MIN_EIGENVALUES} eigenvalues get no α.")
with tab_download:
    stem = str(net.meta.get("file", "network")).rsplit(".", 1)[0]
    st.download_button("Network (export format, .safetensors)", network_to_bytes(net), f"{stem}.safetensors",
                       help="safetensors with the architecture description in its metadata: loads without code.")
    if st.button("Prepare graph downloads (GraphML / JSON)"):
        st.download_button("Neural graph (GraphML)", graphml_bytes(net), f"{stem}.graphml")
        st.download_button("Neural graph (JSON)", graph_json_bytes(net), f"{stem}.json")
st.caption(f"Server time for this page: {time.perf_counter() - started:.2f} s")
