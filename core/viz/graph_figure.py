"""Plotly drawing of a neural graph: layered layout, nodes coloured by bias, edges by sign and |weight|.

Which edges are drawn: every weight layer (linear, conv, flatten) and every skip connection is an edge
group with its own share of the budget (`layer_budgets`: equal shares, a small group's unused share goes to
the others), the strongest edges of each group first, so no layer vanishes because another one has larger
weights. Edge intensity is |weight| relative to its own layer (its 99th percentile), or to the whole
network's (`normalise="global"`). Edges are bucketed into a few traces (strength level × sign), drawn weak
to strong with the two signs alternating at each level, so neither sign systematically covers the other;
each trace is one `Scattergl` with gaps between segments, so drawing stays fast.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import plotly.graph_objects as go

from core.graph.layout import EDGE_RESIDUAL, layout_for
from core.graph.neural_graph import NeuralGraph, to_graph
from core.network.spec import ACTIVATIONS, Network

POSITIVE, NEGATIVE = "#1f77b4", "#d62728"  # colour-blind-safe blue / red pair
LEVELS = ("weak", "medium", "strong", "strongest")
WIDTHS = (0.5, 1.0, 1.8, 2.8)
OPACITIES = (0.25, 0.4, 0.6, 0.85)
NORMALISATIONS = ("layer", "global")


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


def edge_groups(network: Network) -> np.ndarray:
    """[E] group id per edge: its weight layer (block) for linear / conv / flatten edges, and one group per skip
    connection (by the layer it adds into), numbered after the weight layers."""
    layout = layout_for(network.architecture)
    groups = layout.edge_layer.numpy().copy()
    residual = layout.edge_type.numpy() == EDGE_RESIDUAL
    if residual.any():
        target_layer = layout.node_layer.numpy()[layout.edge_index.numpy()[1, residual]]
        _, pair = np.unique(target_layer, return_inverse=True)
        groups[residual] = len(layout.blocks) + pair
    return groups


def layer_budgets(group_sizes: np.ndarray, budget: int) -> np.ndarray:
    """Edges to draw per group: equal shares of `budget`, a group smaller than its share takes all its edges and
    leaves the rest to the others; every non-empty group gets at least one edge."""
    sizes = np.asarray(group_sizes, dtype=np.int64)
    alloc = np.zeros_like(sizes)
    remaining = max(int(budget), int((sizes > 0).sum()))
    order = np.argsort(sizes, kind="stable")  # smallest first, so their leftovers flow to the larger groups
    for k, g in enumerate(order):
        share = remaining // (len(order) - k)
        alloc[g] = min(sizes[g], max(share, 1 if sizes[g] else 0))
        remaining -= alloc[g]
    return alloc


def select_edges(strength: np.ndarray, groups: np.ndarray, budget: int) -> np.ndarray:
    """Indices of the edges to draw: each group's strongest |strength| edges, up to its `layer_budgets` share."""
    ids, inverse = np.unique(groups, return_inverse=True)
    alloc = layer_budgets(np.bincount(inverse, minlength=len(ids)), budget)
    chosen = []
    for gi in range(len(ids)):
        members = np.flatnonzero(inverse == gi)
        chosen.append(members[np.argsort(-np.abs(strength[members]), kind="stable")[: alloc[gi]]])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def edge_intensity(strength: np.ndarray, groups: np.ndarray, normalise: str = "layer") -> np.ndarray:
    """[E] |strength| in [0, 1], relative to the 99th percentile of its own group ("layer") or of all edges
    ("global"); a layer of small weights is then as visible as one of large weights."""
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, not {normalise!r}")
    mag = np.abs(strength)
    if normalise == "global":
        scale = np.full(len(mag), np.quantile(mag, 0.99) if len(mag) else 1.0)
    else:
        ids, inverse = np.unique(groups, return_inverse=True)
        scale = np.array([np.quantile(mag[inverse == g], 0.99) for g in range(len(ids))])[inverse]
    return np.clip(mag / np.where(scale > 0, scale, 1.0), 0.0, 1.0)


def neuron_weight_statistics(strength: np.ndarray, src: np.ndarray, dst: np.ndarray, num_nodes: int) -> np.ndarray:
    """[N, 6] per neuron, over all its edges: incoming count, mean, mean |w|; outgoing count, mean, mean |w|."""
    cols = []
    for end in (dst, src):
        count = np.bincount(end, minlength=num_nodes).astype(float)
        safe = np.maximum(count, 1)
        cols += [count, np.bincount(end, strength, num_nodes) / safe,
                 np.bincount(end, np.abs(strength), num_nodes) / safe]
    return np.stack(cols, 1)


def _segments(pos: np.ndarray, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of line segments src → dst separated by gaps (NaN), for one Scattergl trace."""
    gap = np.full(len(src), np.nan)
    return (np.stack([pos[src, 0], pos[dst, 0], gap], 1).ravel(),
            np.stack([pos[src, 1], pos[dst, 1], gap], 1).ravel())


def graph_figure(network: Network, max_edges: int = 3000, title: str | None = None, normalise: str = "layer",
                 highlight: np.ndarray | None = None, highlight_label: str = "highlighted neurons",
                 layers: tuple[int, int] | None = None) -> tuple[go.Figure, int]:
    """(figure, number of hidden edges). Every layer keeps its share of `max_edges` (`select_edges`); edge
    intensity per layer or global (`edge_intensity`); `highlight`: node ids ringed in black; `layers`: (first,
    last) neuron layer to zoom into (edges between them only). Hover a node for its bias, activation and in/out
    weight statistics, an edge midpoint for its weight."""
    graph = to_graph(network)
    pos = node_positions(network)
    w = edge_strengths(graph)
    src, dst = graph.edge_index.numpy()
    residual = graph.edge_type.numpy() == EDGE_RESIDUAL
    groups = edge_groups(network)
    node_layer = graph.node_layer.numpy()
    in_view = np.ones(len(node_layer), dtype=bool) if layers is None else \
        (node_layer >= layers[0]) & (node_layer <= layers[1])
    candidates = np.flatnonzero(in_view[src] & in_view[dst])
    shown = candidates[select_edges(w[candidates], groups[candidates], max_edges)]
    hidden = len(candidates) - len(shown)
    level = np.minimum((edge_intensity(w, groups, normalise)[shown] * len(LEVELS)).astype(int), len(LEVELS) - 1)
    fig = go.Figure()
    signs = ((1, POSITIVE, "positive"), (-1, NEGATIVE, "negative"))
    for b in range(len(LEVELS)):  # weak to strong; the signs alternate which goes first at each level
        for sign, colour, label in (signs if b % 2 == 0 else signs[::-1]):
            same_sign = (w[shown] >= 0) if sign > 0 else (w[shown] < 0)
            sel = shown[same_sign & (level == b) & ~residual[shown]]
            if len(sel) == 0:
                continue
            xs, ys = _segments(pos, src[sel], dst[sel])
            fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color=colour, width=WIDTHS[b]),
                                       opacity=OPACITIES[b], hoverinfo="skip", legendgroup=label,
                                       name=f"{label} weights ({LEVELS[b]})"))
    res = shown[residual[shown]]
    if len(res):
        xs, ys = _segments(pos, src[res], dst[res])
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color="#7f7f7f", width=1, dash="dot"),
                                   name="skip connections", hoverinfo="skip"))
    # edge hover: invisible markers at midpoints of the drawn edges
    mid = shown[np.argsort(-np.abs(w[shown]), kind="stable")[:3000]]  # hover on the strongest drawn edges
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
    hover = np.empty((len(bias), 11), dtype=object)  # numbers stay numbers, so the hover formats apply
    for c, column in enumerate((graph.node_layer.numpy(), graph.node_index.numpy(), bias, roles, np.array(acts))):
        hover[:, c] = column.tolist()
    hover[:, 5:] = neuron_weight_statistics(w, src, dst, len(bias)).tolist()
    visible = np.flatnonzero(in_view)
    fig.add_trace(go.Scattergl(
        x=pos[visible, 0], y=pos[visible, 1], mode="markers", name="neurons (colour = bias)",
        marker=dict(size=7 if len(visible) < 400 else 4, color=bias[visible], colorscale="RdBu", cmin=-lim,
                    cmax=lim, line=dict(width=0.5, color="#333"), colorbar=dict(title="bias", thickness=12)),
        customdata=hover[visible],
        hovertemplate="layer %{customdata[0]} neuron %{customdata[1]} (%{customdata[3]})<br>bias %{customdata[2]:.4g}"
                      "<br>activation %{customdata[4]}<br>in: %{customdata[5]:.0f} weights, mean %{customdata[6]:.3g}, "
                      "mean |w| %{customdata[7]:.3g}<br>out: %{customdata[8]:.0f} weights, mean %{customdata[9]:.3g}, "
                      "mean |w| %{customdata[10]:.3g}<extra></extra>",
    ))
    highlight = None if highlight is None else np.asarray(highlight, dtype=np.int64)[in_view[highlight]]
    if highlight is not None and len(highlight):
        fig.add_trace(go.Scattergl(
            x=pos[highlight, 0], y=pos[highlight, 1], mode="markers", name=highlight_label, hoverinfo="skip",
            marker=dict(symbol="circle-open", size=14 if len(bias) < 400 else 9, color="#000000", line=dict(width=2)),
        ))
    caption = f"{len(shown):,} of {len(candidates):,} edges drawn" + (f" ({hidden:,} weakest hidden)" if hidden else "")
    if layers is not None:
        caption += f", layers {layers[0]}–{layers[1]}"
    caption += f", intensity relative to {'each layer' if normalise == 'layer' else 'the whole network'}"
    fig.update_layout(
        title=title or caption, showlegend=True, height=560, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="layer", tickmode="array", tickvals=list(range(len(layout_for(network.architecture).layers))),
                   showgrid=False, zeroline=False),
        # the legend sits below the x-axis title rather than on it
        yaxis=dict(visible=False), plot_bgcolor="white", legend=dict(orientation="h", y=-0.18, yanchor="top"),
    )
    return fig, hidden

