"""Neural graphs: networks as PyG graphs (one node per neuron, one edge per weight)."""

from core.graph.layout import GraphLayout, layout_for
from core.graph.neural_graph import NeuralGraph, from_graph, from_graphs, to_graph, to_graphs

__all__ = ["GraphLayout", "NeuralGraph", "from_graph", "from_graphs", "layout_for", "to_graph", "to_graphs"]
