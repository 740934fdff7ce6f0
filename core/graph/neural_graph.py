"""`NeuralGraph`: a network as a PyG graph (DESIGN.md §1), and conversions to and from `Network`.

Attributes (N nodes, E edges, D = grid_size² edge channels):
    x               [N, 5]  bias, norm_weight, norm_bias, norm_mean, norm_var
    edge_index      [2, E]  source (input neuron) → target (output neuron)
    edge_attr       [E, D]  weight / kernel patch (see `core.graph.layout`)
    edge_type       [E]     linear / conv / flatten / residual
    edge_layer      [E]     index of the Linear/Conv op block (-1 for residual edges)
    node_role       [N]     input / hidden / output
    node_layer      [N]     neuron-layer index (0 = input)
    node_activation [N]     id of the activation applied to the neuron (core.network.spec.ACTIVATIONS)
    node_index      [N]     position of the neuron inside its layer
    architecture            the Architecture (python object; a list after batching)
    grid_size               int
"""

from __future__ import annotations

import torch
from torch_geometric.data import Batch, Data

from core.errors import ArchitectureError
from core.graph.layout import GraphLayout, layout_for
from core.network.spec import Architecture, Network

_NODE_KEYS = ("x", "node_role", "node_layer", "node_activation", "node_index")
_EDGE_KEYS = ("edge_attr", "edge_type", "edge_layer")


class NeuralGraph(Data):
    """A PyG `Data` holding one network's neural graph; `to_network()` goes back exactly."""

    def __inc__(self, key: str, value, *args, **kwargs):
        # PyG offsets every attribute whose name contains "index" when batching; node_index is a position
        # inside a layer, not a node id
        if key == "node_index":
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    @property
    def layout(self) -> GraphLayout:
        return layout_for(self.architecture, self.grid_size)

    def to_network(self) -> Network:
        """The Network this graph encodes (parameters bit for bit)."""
        return from_graph(self)

    @property
    def bias(self) -> torch.Tensor:
        return self.x[:, 0]


def _template(layout: GraphLayout) -> dict[str, torch.Tensor]:
    return dict(
        edge_index=layout.edge_index,
        edge_type=layout.edge_type,
        edge_layer=layout.edge_layer,
        node_role=layout.node_role,
        node_layer=layout.node_layer,
        node_activation=layout.node_activation,
        node_index=layout.node_index,
    )


def to_graph(network: Network, grid_size: int | None = None) -> NeuralGraph:
    """Network → NeuralGraph (features keep the parameters' dtype)."""
    layout = layout_for(network.architecture, grid_size)
    x, e = layout.features_from_params(network.flat()[None])
    return NeuralGraph(x=x[0], edge_attr=e[0], architecture=network.architecture,
                       grid_size=layout.grid_size, **_template(layout))


def to_graphs(architecture: Architecture, flat: torch.Tensor, grid_size: int | None = None) -> Batch:
    """Many same-architecture networks (flat parameters [B, P]) → one PyG `Batch` of NeuralGraphs.

    Fully vectorised: one scatter for the features and index arithmetic for the structure, no
    per-network Python work. `batch.get_example(i)` / `to_data_list()` work as usual.
    """
    layout = layout_for(architecture, grid_size)
    b, n, e = flat.shape[0], layout.num_nodes, layout.num_edges
    x, edge_attr = layout.features_from_params(flat)
    template = _template(layout)
    one = NeuralGraph(x=x[0], edge_attr=edge_attr[0], architecture=architecture,
                      grid_size=layout.grid_size, **template)
    batch = Batch.from_data_list([one])  # gives the right class and slice bookkeeping for B = 1
    graph_ids = torch.arange(b)
    batch.x = x.reshape(b * n, -1)
    batch.edge_attr = edge_attr.reshape(b * e, -1)
    # broadcast-add instead of repeat + repeat_interleave: one pass over the largest tensor
    batch.edge_index = (layout.edge_index[:, None, :] + (graph_ids * n)[None, :, None]).reshape(2, b * e)
    for key in (*_NODE_KEYS[1:], *_EDGE_KEYS[1:]):
        batch[key] = template[key].expand(b, -1).reshape(-1)
    batch.batch = graph_ids[:, None].expand(b, n).reshape(-1)
    batch.ptr = torch.arange(b + 1) * n
    batch.architecture = [architecture] * b
    batch.grid_size = [layout.grid_size] * b
    node_slices, edge_slices = torch.arange(b + 1) * n, torch.arange(b + 1) * e
    for key in _NODE_KEYS:
        batch._slice_dict[key] = node_slices
    for key in ("edge_index", *_EDGE_KEYS):
        batch._slice_dict[key] = edge_slices
    for key in ("architecture", "grid_size"):
        batch._slice_dict[key] = torch.arange(b + 1)
    batch._inc_dict["edge_index"] = graph_ids * n
    for key in batch._inc_dict:
        if key != "edge_index":
            is_tensor = isinstance(batch._inc_dict[key], torch.Tensor)
            batch._inc_dict[key] = torch.zeros(b, dtype=torch.long) if is_tensor else [0] * b
    batch._num_graphs = b
    return batch


def from_graph(graph: NeuralGraph) -> Network:
    """NeuralGraph → Network (inverse of `to_graph`, bit for bit)."""
    layout = layout_for(graph.architecture, graph.grid_size)
    if graph.x.shape[0] != layout.num_nodes or graph.edge_attr.shape[0] != layout.num_edges:
        raise ArchitectureError("graph does not match its architecture (node or edge count differs)")
    flat = layout.params_from_features(graph.x[None], graph.edge_attr[None])[0]
    return Network.from_flat(graph.architecture, flat)


def from_graphs(batch: Batch) -> tuple[Architecture, torch.Tensor]:
    """A Batch of same-architecture NeuralGraphs → (architecture, flat parameters [B, P])."""
    archs = batch.architecture
    arch, grid = archs[0], batch.grid_size[0]
    if any(a != arch for a in archs):
        raise ArchitectureError("from_graphs needs a batch of one architecture; use from_graph per graph")
    layout = layout_for(arch, grid)
    b = batch.num_graphs
    x = batch.x.reshape(b, layout.num_nodes, -1)
    e = batch.edge_attr.reshape(b, layout.num_edges, -1)
    return arch, layout.params_from_features(x, e)
