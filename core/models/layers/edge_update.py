"""The edge update shared by the NG-GNN and NG-T layers (Kofinas et al. 2024):

    e_st ← LayerNorm(e_st + W_2 SiLU(W_e e_st + P h_s + Q h_t))

A mixin rather than a submodule so that its parameters keep the layer-level names (`edge_in`, `edge_src`,
`edge_dst`, `edge_out`, `edge_norm`) that saved runs use.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from core.models.layers.edge_layout import EdgeLayout


def edge_storage_dtype(e: torch.Tensor) -> torch.dtype:
    """The dtype edge states are kept in between layers: autocast's on e's device where it is on, else e's own.

    Between layers the edge states only feed products (which autocast runs in its dtype anyway) and the
    residual sum of the next edge update, so keeping them in bfloat16/float16 loses little and halves the
    memory traffic of the largest tensors of a step (measured: bfloat16 training ~15 % faster on the CPU)."""
    kind = e.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else e.dtype


def silu_of_sum(x: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """SiLU(x + ends): the edge update's hidden activation from W_e e and the endpoint terms."""
    return F.silu(x + ends)


class EdgeUpdate:
    """Mixin for an `nn.Module` layer with a `dropout` module: adds the edge-update weights and `update_edges`."""

    def init_edge_update(self, hidden: int, edge_hidden: int) -> None:
        """Create W_e, P, Q, W_2 and the LayerNorm for node width `hidden` and edge width `edge_hidden`."""
        self.edge_in = nn.Linear(edge_hidden, edge_hidden)  # W_e
        self.edge_src = nn.Linear(hidden, edge_hidden, bias=False)  # P
        self.edge_dst = nn.Linear(hidden, edge_hidden, bias=False)  # Q
        self.edge_out = nn.Linear(edge_hidden, edge_hidden)  # W_2
        self.edge_norm = nn.LayerNorm(edge_hidden)

    def update_edges(self, h: torch.Tensor, e: torch.Tensor, edges: EdgeLayout) -> torch.Tensor:
        """(h [N, H], e [E, H_e]) → e' [E, H_e], stored in `edge_storage_dtype`."""
        # W_e's bias joins the node-level term and W_2's is added after its product, where `torch.compile`
        # fuses it: the products on the edges need no broadcast bias copy
        at_src, at_dst = self.edge_src(h) + self.edge_in.bias, self.edge_dst(h)  # P h_s, Q h_t: [N, H_e]
        upd = edges.map_edges(silu_of_sum, F.linear(e, self.edge_in.weight), at_src, at_dst)  # [E, H_e]
        out = self.edge_norm(e + self.dropout(F.linear(upd, self.edge_out.weight) + self.edge_out.bias))
        return out.to(edge_storage_dtype(e))
