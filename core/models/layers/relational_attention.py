"""Relational transformer layer (the NG-T layer, after Diao & Loynd's relational attention as used by
Kofinas et al. 2024).

Attention choice: node i attends to its graph neighbours in *both* edge directions plus itself, i.e.
over the sparse set {j : j→i} ∪ {j : i→j} ∪ {i} — not over all nodes. This keeps the cost linear in
the number of weights and keeps the graph structure (and with it the network's layer order) in the
scores; the self-loop gives every node a term independent of the neighbourhood. Per head:

    q_i = W_q h_i,   k_ij = W_k h_j + U_k^{dir} e_ij,   v_ij = W_v h_j + U_v^{dir} e_ij
    α_ij = softmax_j(q_i · k_ij / √d)                     (over the neighbourhood of i, `utils.softmax`)
    h_i ← LN(h_i + W_o Σ_j α_ij v_ij);   h_i ← LN(h_i + FFN(h_i))
    e_ij ← LN(e_ij + W_2 SiLU(W_e e_ij + P h_i + Q h_j))

dir ∈ {forward, backward, self}; the self-loop uses a learned edge vector instead of e.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.utils import scatter, softmax

from core.models.layers.edge_layout import SparseEdges
from core.models.layers.edge_update import EdgeUpdate


class RelationalAttention(EdgeUpdate, nn.Module):
    """One NG-T layer: (h [N, H], e [E, H], edge_index [2, E]) → (h', e')."""

    def __init__(self, hidden: int, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        h = hidden
        self.hidden, self.heads, self.dk = h, heads, h // heads
        self.q = nn.Linear(h, h)
        self.kv = nn.Linear(h, 2 * h)
        self.edge_kv = nn.Linear(h, 4 * h, bias=False)  # forward k, v | backward k, v
        self.self_edge = nn.Parameter(torch.zeros(2 * h))  # k, v edge term of the self-loop
        self.out = nn.Linear(h, h)
        self.norm1 = nn.LayerNorm(h)
        self.ffn = nn.Sequential(nn.Linear(h, 2 * h), nn.SiLU(), nn.Linear(2 * h, h))
        self.norm2 = nn.LayerNorm(h)
        self.init_edge_update(h, h)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mod in self.modules():
            if mod is not self and hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
        nn.init.normal_(self.self_edge, std=0.02)

    def forward(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, hd, nh, dk = h.shape[0], self.hidden, self.heads, self.dk
        src, dst = edge_index
        loops = torch.arange(n, device=h.device)
        q = self.q(h)  # [N, H]
        k, v = self.kv(h).split(hd, dim=1)  # [N, H] each
        ekf, evf, ekb, evb = self.edge_kv(e).split(hd, dim=1)  # [E, H] each
        sk, sv = self.self_edge.to(h).split(hd)
        # receivers / senders of the three relation kinds: forward (j=src → i=dst), backward, self
        recv = torch.cat([dst, src, loops])  # [2E+N]
        send = torch.cat([src, dst, loops])
        keys = k.index_select(0, send) + torch.cat([ekf, ekb, sk.expand(n, hd)])  # [2E+N, H]
        vals = v.index_select(0, send) + torch.cat([evf, evb, sv.expand(n, hd)])
        # [2E+N, heads]
        score = (q.index_select(0, recv).view(-1, nh, dk) * keys.view(-1, nh, dk)).sum(-1) / math.sqrt(dk)
        alpha = self.dropout(softmax(score, recv, num_nodes=n))  # [2E+N, heads]
        att = scatter((alpha[..., None] * vals.view(-1, nh, dk)).view(-1, hd), recv, 0, dim_size=n, reduce="sum")
        h = self.norm1(h + self.dropout(self.out(att)))  # [N, H]
        h = self.norm2(h + self.dropout(self.ffn(h)))
        return h, self.update_edges(h, e, SparseEdges(edge_index, n))
