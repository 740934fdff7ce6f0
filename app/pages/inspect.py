"""Inspect: a checkpoint's architecture, neural graph, weight statistics, spectra and downloads."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from app.resources import network_picker
from core.io import network_to_bytes
from core.summary import summarize
from core.viz import graph_figure, graph_json_bytes, graphml_bytes, spectra_figure, weight_histograms

st.title("Inspect a checkpoint")
st.caption("Any state_dict, training checkpoint or safetensors file becomes a *neural graph*: one node per neuron, "
           "one edge per weight.")

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
    max_edges = st.slider("Edges to draw (strongest first)", 100, 10_000, 3_000, step=100)
    fig, hidden = graph_figure(net, max_edges=max_edges)
    st.plotly_chart(fig, width="stretch")
    st.caption("Columns are layers (input on the left). Node colour = bias (red negative, blue positive); "
               "edge colour = sign of the weight, width = its magnitude tercile; dotted grey = skip connections. "
               + (f"**{hidden:,} weaker edges are hidden** for speed." if hidden else "All edges are drawn."))
with tab_layers:
    rows = [{"#": l["index"], "layer": f"{l['kind']} {l.get('name', l.get('activation', ''))}".strip(),
             "input": str(tuple(l["input_shape"])), "output": str(tuple(l["output_shape"])),
             "parameters": l.get("parameters"),
             "weight mean": l["weight"]["mean"] if "weight" in l else None,
             "weight std": l["weight"]["std"] if "weight" in l else None} for l in summary["layers"]]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.plotly_chart(weight_histograms(net), width="stretch")
    st.caption("Histograms of each Linear/Conv layer's weights (left) and biases (right).")
with tab_spectra:
    fig, table = spectra_figure(net)
    st.plotly_chart(fig, width="stretch")
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
    st.caption("Singular values of each weight matrix (conv kernels reshaped to out × in·k). Stable rank "
               "‖W‖²_F / ‖W‖²₂ counts the directions that carry most of the energy.")
with tab_download:
    stem = str(net.meta.get("file", "network")).rsplit(".", 1)[0]
    st.download_button("Network (export format, .safetensors)", network_to_bytes(net), f"{stem}.safetensors",
                       help="safetensors with the architecture description in its metadata: loads without code.")
    if st.button("Prepare graph downloads (GraphML / JSON)"):
        st.download_button("Neural graph (GraphML)", graphml_bytes(net), f"{stem}.graphml")
        st.download_button("Neural graph (JSON)", graph_json_bytes(net), f"{stem}.json")
st.caption(f"Server time for this page: {time.perf_counter() - started:.2f} s")
