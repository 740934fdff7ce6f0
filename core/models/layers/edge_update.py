"""The edge update shared by the NG-GNN and NG-T layers (Kofinas et al. 2024):

    e_st ← LayerNorm(e_st + W_2 SiLU(W_e e_st + P h_s + Q h_t))

A mixin rather than a submodule so that its parameters keep the layer-level names (`edge_in`, `edge_src`,
`edge_dst`, `edge_out`, `edge_norm`) that saved runs use.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from core.models.layers.dense_blocks import DenseBlocks


class EdgeUpdate:
    """Mixin for an `nn.Module` layer with a `dropout` module: adds the edge-update weights and `update_edges`."""

    def init_edge_update(self, hidden: int, edge_hidden: int) -> None:
        """Create W_e, P, Q, W_2 and the LayerNorm for node width `hidden` and edge width `edge_hidden`."""
        self.edge_in = nn.Linear(edge_hidden, edge_hidden)  # W_e
        self.edge_src = nn.Linear(hidden, edge_hidden, bias=False)  # P
        self.edge_dst = nn.Linear(hidden, edge_hidden, bias=False)  # Q
        self.edge_out = nn.Linear(edge_hidden, edge_hidden)  # W_2
        self.edge_norm = nn.LayerNorm(edge_hidden)

    def update_edges(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor,
                     dense: DenseBlocks | None = None) -> torch.Tensor:
        """(h [N, H], e [E, H_e]) → e' [E, H_e]; `dense` takes the dense-block path for the endpoint sum."""
        if dense is None:
            src, dst = edge_index
            ends = self.edge_src(h).index_select(0, src) + self.edge_dst(h).index_select(0, dst)  # [E, H_e]
        else:
            ends = dense.pair_sum(self.edge_src(h), self.edge_dst(h))
        upd = F.silu(self.edge_in(e) + ends)  # [E, H_e]
        return self.edge_norm(e + self.dropout(self.edge_out(upd)))  # [E, H_e]
