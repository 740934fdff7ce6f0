"""Common skeleton of the permutation-only graph metanetworks (NG-GNN, NG-T):

    normalise (per layer group, from the training zoo) → encode nodes/edges → L layers → head

Subclasses provide `make_layer(i)` and `run_layer(layer, h, e, context)`; the `LayerContext` (edge list,
degrees, PNA's δ and the `EdgeLayout` that runs the structure-dependent steps) is built once per forward.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from core.models.base import (
    FeatureNormaliser,
    MetaNetwork,
    ModelConfig,
    ParamsOutput,
    as_batch,
    graph_count,
    graph_index,
    node_groups,
    position_in_layer,
)
from core.models.layers.edge_layout import EdgeLayout, LayerContext, SparseEdges
from core.models.layers.embeddings import EdgeEncoder, NodeEncoder
from core.models.layers.pna_aggregation import DegreeStatistics, log_degrees
from core.models.layers.probe_features import ProbeFeatures
from core.models.layers.readout import GraphReadout, ParamsReadout


@dataclass
class GraphModelConfig(ModelConfig):
    """Config of the permutation-only graph models."""

    rff_features: int = 0  # random-Fourier-feature lift of scalar weights/biases (0 = off)
    rff_sigma: float = 1.0
    probes: int = 0  # INR probe features: activations at this many learned coordinates (0 = off)

    kind: ClassVar[str] = "graph"


class PermutationGraphModel(DegreeStatistics, MetaNetwork, ABC):
    """Base of NG-GNN / NG-T: exactly permutation-equivariant, input normalisation from data."""

    symmetries: ClassVar[tuple[str, ...]] = ("permutation",)

    def __init__(self, config: GraphModelConfig, out_dim: int, head: str = "graph"):
        super().__init__(config, out_dim, head)
        c = config
        self.normaliser = FeatureNormaliser(c.edge_dim, c.max_layers)
        self.node_encoder = NodeEncoder(c.hidden, c.max_positions, c.max_layers, c.rff_features, c.rff_sigma)
        self.edge_encoder = EdgeEncoder(c.edge_dim, self.edge_width, c.rff_features, c.rff_sigma)
        self.layers = nn.ModuleList([self.make_layer(i) for i in range(c.layers)])
        self.probe = ProbeFeatures(c.probes, c.hidden) if c.probes else None
        self.register_degree_statistics()
        if head == "graph":
            self.readout = GraphReadout(c.hidden, c.readout_hidden, out_dim, c.dropout, self.edge_width)
        else:
            self.readout = ParamsReadout(c.hidden, c.edge_dim, self.edge_width)

    @property
    def edge_width(self) -> int:
        """Width of the edge states (the node width unless a subclass says otherwise)."""
        return self.config.hidden

    @abstractmethod
    def make_layer(self, i: int) -> nn.Module:
        """Message-passing / attention layer number i."""

    @abstractmethod
    def run_layer(self, layer: nn.Module, h: torch.Tensor, e: torch.Tensor, ctx: LayerContext):
        """Apply one layer: (h, e) → (h', e')."""

    def edge_layout(self, batch: Any) -> EdgeLayout:
        """How the layers reach the edges' endpoints: the sparse edge list unless a subclass has another."""
        return SparseEdges(batch.edge_index, batch.x.shape[0])

    @torch.no_grad()
    def fit_normalisation(self, graphs: Any) -> "PermutationGraphModel":
        """Per-layer-group feature mean/std and the PNA degree statistics from training graphs."""
        batch = as_batch(graphs)
        self.normaliser.fit(batch)
        self.fit_degree_statistics(batch.edge_index, batch.num_nodes)
        return self

    def forward(self, batch: Any):
        self.check_batch(batch)
        c = self.config
        x, ea, edge_index = batch.x, batch.edge_attr, batch.edge_index
        n = x.shape[0]
        self.fit_degree_statistics(edge_index, n, if_unfitted=True)  # from the first batch seen, if never fitted
        groups = node_groups(batch.node_role, batch.node_layer, c.max_layers)
        if c.normalise:
            x, ea = self.normaliser(x, ea, groups, groups[edge_index[1]])
        h = self.node_encoder(x, batch.node_role, batch.node_layer, position_in_layer(batch), batch.node_activation)
        if self.probe is not None:  # activations of the raw (unnormalised) network at learned coordinates
            h = h + self.probe(batch)
        ctx = LayerContext(edge_index, log_degrees(edge_index, n, like=x), self.delta, self.edge_layout(batch))
        e = self.edge_encoder(ea, batch.edge_type)  # [E, H_e] in `edge_storage_dtype`
        for layer in self.layers:
            h, e = self.run_layer(layer, h, e, ctx)
        e = e.to(h.dtype)  # the readouts pool and map edge states at the node states' precision
        if self.head == "params":
            return ParamsOutput(*self.readout(h, e))
        node_batch, num_graphs = graph_index(batch), graph_count(batch)
        return self.readout(h, e, node_batch, node_batch[edge_index[0]], num_graphs)
