"""NG-GNN (Kofinas et al., ICLR 2024): PNA message passing on neural graphs, FiLM edge modulation, edge
updates every layer, optional random-Fourier-feature lifting of scalar weights (see
`layers/pna_edge_conv.py` for the layer formula). Exactly permutation-equivariant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from core.models.base import register_model
from core.models.graph_model import GraphModelConfig, PermutationGraphModel
from core.models.layers.edge_layout import DenseBlocks, EdgeLayout, LayerContext, SparseEdges
from core.models.layers.pna_edge_conv import PNAEdgeConv


@dataclass
class NGGNNConfig(GraphModelConfig):
    """NG-GNN hyper-parameters."""

    edge_hidden: int = 0  # width of the edge states (0: same as `hidden`); narrower edges are much faster
    dense_path: bool = True  # dense per-architecture blocks on single-architecture batches (same result, faster)

    kind: ClassVar[str] = "ng-gnn"


@register_model
class NGGNN(PermutationGraphModel):
    """Neural-graph GNN: node encoder → L × PNAEdgeConv → invariant or equivariant head."""

    name: ClassVar[str] = "ng-gnn"
    config_class: ClassVar[type] = NGGNNConfig

    def make_layer(self, i: int) -> nn.Module:
        return PNAEdgeConv(self.config.hidden, self.config.dropout, self.edge_width)

    @property
    def edge_width(self) -> int:
        return self.config.edge_hidden or self.config.hidden

    def edge_layout(self, batch: Any) -> EdgeLayout:
        """`DenseBlocks` where the batch allows it and `dense_path` is on, else the sparse reference."""
        dense = DenseBlocks.for_batch(batch) if self.config.dense_path else None
        return dense if dense is not None else SparseEdges(batch.edge_index, batch.x.shape[0])

    def run_layer(self, layer: nn.Module, h: torch.Tensor, e: torch.Tensor, ctx: LayerContext):
        return layer(h, e, ctx)
