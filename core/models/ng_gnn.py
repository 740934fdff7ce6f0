"""NG-GNN (Kofinas et al., ICLR 2024): PNA message passing on neural graphs, FiLM edge modulation, edge
updates every layer, optional random-Fourier-feature lifting of scalar weights (see
`layers/pna_edge_conv.py` for the layer formula). Exactly permutation-equivariant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch_geometric.utils import degree

from core.kernels.film_message_stats import fused_extension
from core.models.base import register_model
from core.models.graph_model import GraphModelConfig, PermutationGraphModel
from core.models.layers.dense_blocks import DenseBlocks
from core.models.layers.edge_update import AffineEdges, EdgeStates, edge_storage_dtype, materialise
from core.models.layers.pna_edge_conv import PNAEdgeConv


@dataclass
class NGGNNConfig(GraphModelConfig):
    """NG-GNN hyper-parameters."""

    edge_hidden: int = 0  # width of the edge states (0: same as `hidden`); narrower edges are much faster

    kind: ClassVar[str] = "ng-gnn"


@register_model
class NGGNN(PermutationGraphModel):
    """Neural-graph GNN: node encoder → L × PNAEdgeConv → invariant or equivariant head."""

    name: ClassVar[str] = "ng-gnn"
    config_class: ClassVar[type] = NGGNNConfig
    dense_path: bool = True  # take the dense-block fast path on single-architecture batches (same result)
    fold_edge_features: bool = True  # dense path: the first layer's edge products on φ (`AffineEdges`; same result)

    def make_layer(self, i: int) -> nn.Module:
        return PNAEdgeConv(self.config.hidden, self.config.dropout, self.edge_width)

    @property
    def edge_width(self) -> int:
        return self.config.edge_hidden or self.config.hidden

    def layer_info(self, batch: Any, n: int) -> dict[str, Any]:
        ei = batch.edge_index
        log_deg = torch.stack([degree(ei[1], n), degree(ei[0], n)]).add(1).log().to(batch.x)  # [2, N]
        dense = DenseBlocks.for_batch(batch) if self.dense_path else None
        if dense is not None and batch.x.device.type == "cpu":
            fused_extension()  # build or load the fused kernel here, outside any torch.compile'd layer
        return {"edge_index": ei, "log_deg": log_deg, "dense": dense}

    def encode_edges(self, edge_attr: torch.Tensor, edge_type: torch.Tensor, info: dict[str, Any]) -> EdgeStates:
        """On the dense path, per-block edge states: `AffineEdges` (e = φ Mᵀ + c, unmaterialised) when φ is
        narrower than the edge states, so that the first layer's edge products run on φ; else tensors."""
        dense = info["dense"]
        if dense is None:
            return super().encode_edges(edge_attr, edge_type, info)
        enc = self.edge_encoder
        if self.fold_edge_features and enc.in_dim < self.edge_width:
            offsets = enc.type_offsets()
            return tuple(AffineEdges(phi.contiguous(), enc.lin.weight, offsets[k.edge_type])
                         for phi, k in zip(dense.split_edges(enc.features(edge_attr)), dense.blocks))
        # one contiguous tensor per block (a strided view would send the products to a slow batched path),
        # cast to the storage dtype in the same copy
        return tuple(x.to(edge_storage_dtype(x)).contiguous() for x in dense.split_edges(enc(edge_attr, edge_type)))

    def run_layers(self, h: torch.Tensor, e: EdgeStates, info: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """On the dense path the layers pass per-block edge states (`encode_edges`), joined at the end."""
        dense = info["dense"]
        if dense is None:
            return super().run_layers(h, e, info)
        h, blocks = self.apply_layers(h, e, info)
        return h, dense.join_edges(tuple(materialise(x) for x in blocks))  # materialised only without layers

    def run_layer(self, layer: nn.Module, h: torch.Tensor, e: torch.Tensor, info: dict[str, Any]):
        return layer(h, e, info["edge_index"], info["log_deg"], self.delta, info["dense"])
