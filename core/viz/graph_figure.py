"""Plotly drawing of a neural graph: layered layout, nodes coloured by bias, edges by sign and |weight|.

Edges are bucketed into a few traces (sign × strength tercile), each one `Scatter` with gaps between
segments, so drawing stays fast; above `max_edges` only the strongest edges are drawn and the figure
says how many are hidden.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import plotly.graph_objects as go

from core.graph.layout import EDGE_RESIDUAL, layout_for
from core.graph.neural_graph import NeuralGraph, to_graph
from core.network.spec import ACTIVATIONS, Network

POSITIVE, NEGATIVE = "#1f77b4", "#d62728"  # colour-blind-safe blue / red pair
WIDTHS = (0.6, 1.4, 2.8)


def edge_strengths(graph: NeuralGraph) -> np.ndarray:
    """Signed scalar per edge: the weight, or the entry of largest |value| in a kernel patch."""
    e = graph.edge_attr.detach().double()
    idx = e.abs().argmax(dim=1, keepdim=True)
    return e.gather(1, idx).squeeze(1).numpy()


def node_positions(network: Network) -> np.ndarray:
    """[N, 2] layered positions: networkx's multipartite layout, then one column per layer and a y span per layer
    that grows with its size (networkx stretches every layer to the same height)."""
    layout = layout_for(network.architecture)
    g = nx.Graph()
    for li, layer in enumerate(layout.layers):
        g.add_nodes_from(range(layer.start, layer.start + layer.size), layer=li)
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical")
    out = np.array([pos[n] for n in range(layout.num_nodes)], dtype=float)
    # one column per layer; a layer's y span grows with its size so small layers are not stretched
    for li, layer in enumerate(layout.layers):
        sl = slice(layer.start, layer.start + layer.size)
        out[sl, 0] = li
        k = np.arange(layer.size)
        out[sl, 1] = (k - (layer.size - 1) / 2) / max(layer.size - 1, 1) * min(1.0, 0.15 + layer.size / 64)
    return out


def graph_figure(network: Network, max_edges: int = 3000, title: str | None = None) -> tuple[go.Figure, int]:
    """(figure, number of hidden edges). Hover a node for its bias and activation, an edge midpoint for its weight."""
    graph = to_graph(network)
    pos = node_positions(network)
    w = edge_strengths(graph)
    src, dst = graph.edge_index.numpy()
    residual = graph.edge_type.numpy() == EDGE_RESIDUAL
    order = np.argsort(-np.abs(w), kind="stable")
    shown = order[: max_edges]
    hidden = len(w) - len(shown)
    fig = go.Figure()
    mags = np.abs(w[shown])
    cuts = np.quantile(mags, [1 / 3, 2 / 3]) if len(mags) else np.array([0.0, 0.0])
    bucket = np.searchsorted(cuts, mags, side="right")
    for sign, colour, label in ((1, POSITIVE, "positive"), (-1, NEGATIVE, "negative")):
        for b in range(3):
            same_sign = (w[shown] >= 0) if sign > 0 else (w[shown] < 0)
            sel = shown[same_sign & (bucket == b) & ~residual[shown]]
            if len(sel) == 0:
                continue
            xs = np.stack([pos[src[sel], 0], pos[dst[sel], 0], np.full(len(sel), np.nan)], 1).ravel()
            ys = np.stack([pos[src[sel], 1], pos[dst[sel], 1], np.full(len(sel), np.nan)], 1).ravel()
            fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color=colour, width=WIDTHS[b]),
                                       opacity=0.35 + 0.2 * b, hoverinfo="skip",
                                       name=f"{label} weights, {('weak', 'medium', 'strong')[b]}", legendgroup=label))
    res = shown[residual[shown]]
    if len(res):
        xs = np.stack([pos[src[res], 0], pos[dst[res], 0], np.full(len(res), np.nan)], 1).ravel()
        ys = np.stack([pos[src[res], 1], pos[dst[res], 1], np.full(len(res), np.nan)], 1).ravel()
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color="#7f7f7f", width=1, dash="dot"),
                                   name="skip connections", hoverinfo="skip"))
    # edge hover: invisible markers at midpoints of the drawn edges
    mid = shown[: min(len(shown), 3000)]
    fig.add_trace(go.Scattergl(
        x=(pos[src[mid], 0] + pos[dst[mid], 0]) / 2, y=(pos[src[mid], 1] + pos[dst[mid], 1]) / 2, mode="markers",
        marker=dict(size=6, opacity=0), showlegend=False,
        hovertemplate="weight %{customdata[0]:.4g}<br>from node %{customdata[1]} to %{customdata[2]}<extra></extra>",
        customdata=np.stack([w[mid], src[mid], dst[mid]], 1),
    ))
    x = graph.x.detach().double().numpy()
    acts = [ACTIVATIONS[a] for a in graph.node_activation.tolist()]
    roles = np.array(["input", "hidden", "output"])[graph.node_role.numpy()]
    bias = x[:, 0]
    lim = float(np.abs(bias).max()) or 1.0
    fig.add_trace(go.Scattergl(
        x=pos[:, 0], y=pos[:, 1], mode="markers", name="neurons (colour = bias)",
        marker=dict(size=7 if len(bias) < 400 else 4, color=bias, colorscale="RdBu", cmin=-lim, cmax=lim,
                    line=dict(width=0.5, color="#333"), colorbar=dict(title="bias", thickness=12)),
        customdata=np.stack([graph.node_layer.numpy(), graph.node_index.numpy(), bias, roles, acts], 1),
        hovertemplate="layer %{customdata[0]} neuron %{customdata[1]} (%{customdata[3]})<br>bias %{customdata[2]:.4g}"
                      "<br>activation %{customdata[4]}<extra></extra>",
    ))
    caption = f"{len(shown):,} of {len(w):,} edges drawn" + (f" ({hidden:,} weakest hidden)" if hidden else "")
    fig.update_layout(
        title=title or caption, showlegend=True, height=520, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="layer", tickmode="array", tickvals=list(range(len(layout_for(network.architecture).layers))),
                   showgrid=False, zeroline=False),
        yaxis=dict(visible=False), plot_bgcolor="white", legend=dict(orientation="h", y=-0.08),
    )
    return fig, hidden

