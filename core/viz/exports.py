"""A network's neural graph as a networkx DiGraph, GraphML or node-link JSON (for other tools)."""

from __future__ import annotations

import io
import json

import networkx as nx

from core.graph.layout import EDGE_TYPE_NAMES, layout_for
from core.graph.neural_graph import to_graph
from core.network.spec import ACTIVATIONS, Network
from core.viz.graph_figure import edge_strengths

ROLE_NAMES = ("input", "hidden", "output")


def to_networkx(network: Network) -> nx.DiGraph:
    """One node per neuron (bias, layer, role, activation), one edge per weight (value or kernel as a list)."""
    graph = to_graph(network)
    layout = layout_for(network.architecture)
    g = nx.DiGraph()
    x = graph.x.double()
    for n in range(layout.num_nodes):
        g.add_node(
            int(n),
            layer=int(graph.node_layer[n]),
            index=int(graph.node_index[n]),
            role=ROLE_NAMES[int(graph.node_role[n])],
            activation=ACTIVATIONS[int(graph.node_activation[n])],
            bias=float(x[n, 0]),
        )
    strength = edge_strengths(graph)
    src, dst = graph.edge_index.tolist()
    types = graph.edge_type.tolist()
    for e, (s, t) in enumerate(zip(src, dst)):
        g.add_edge(int(s), int(t), weight=float(strength[e]), kind=EDGE_TYPE_NAMES[types[e]])
    return g


def graphml_bytes(network: Network) -> bytes:
    """GraphML document of `to_networkx(network)`."""
    buf = io.BytesIO()
    nx.write_graphml(to_networkx(network), buf)
    return buf.getvalue()


def graph_json_bytes(network: Network) -> bytes:
    """Node-link JSON of the neural graph plus the architecture description."""
    data = nx.node_link_data(to_networkx(network), edges="edges")
    data["architecture"] = network.architecture.to_dict()
    return json.dumps(data).encode()
