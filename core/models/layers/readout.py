"""Heads of the permutation-only graph models.

Graph head (invariant):  y = MLP([mean_i h_i, max_i h_i, mean_ij e_ij])   per graph
Params head (equivariant): x̂_i = W_x h_i  [N, 5],  ê_ij = W_e e_ij  [E, D]
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from core.graph.layout import NODE_FEATURES
from core.models.base import mlp, zero_update


class GraphReadout(nn.Module):
    """Permutation-invariant pooling of node and edge states → [B, out_dim]."""

    def __init__(self, hidden: int, readout_hidden: int, out_dim: int, dropout: float = 0.0,
                 edge_hidden: int | None = None):
        super().__init__()
        self.net = mlp([2 * hidden + (edge_hidden or hidden), readout_hidden, out_dim], dropout=dropout)

    def reset_parameters(self) -> None:
        for mod in self.net:
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()

    def forward(self, h: torch.Tensor, e: torch.Tensor, node_batch: torch.Tensor, edge_batch: torch.Tensor,
                num_graphs: int) -> torch.Tensor:
        pooled = torch.cat([
            scatter(h, node_batch, 0, dim_size=num_graphs, reduce="mean"),  # [B, H]
            scatter(h, node_batch, 0, dim_size=num_graphs, reduce="max"),  # [B, H]
            scatter(e, edge_batch, 0, dim_size=num_graphs, reduce="mean"),  # [B, H_e]
        ], dim=1)
        return self.net(pooled)  # [B, out_dim]


class ParamsReadout(nn.Module):
    """Per-node [N, 5] and per-edge [E, D] outputs (the shapes of the input features)."""

    def __init__(self, hidden: int, edge_dim: int, edge_hidden: int | None = None):
        super().__init__()
        self.node = mlp([hidden, hidden, NODE_FEATURES])
        self.edge = mlp([edge_hidden or hidden, hidden, edge_dim])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero the last layers: an untrained model proposes no update (an editor starts at the identity)."""
        for net in (self.node, self.edge):
            for mod in net:
                if hasattr(mod, "reset_parameters"):
                    mod.reset_parameters()
            zero_update(*[m for m in net if isinstance(m, nn.Linear)][-1].parameters())

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.node(h), self.edge(e)
