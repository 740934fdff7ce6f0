"""PNA-style message passing over a neural graph in both edge directions, with FiLM edge modulation and
an edge update (the NG-GNN layer, Kofinas et al. 2024).

For every edge s → t and direction d ∈ {forward (receiver t), backward (receiver s)}:

    m_d = SiLU(γ_d(e_st) ⊙ (A_d h_s + B_d h_t) + β_d(e_st))                    (FiLM message)
    a_d(i) = [mean, min, max, std]_{messages of direction d received by i}
    z(i) = ⊕_d [a_d, a_d · log(deg_d+1)/δ_d, a_d · δ_d/log(deg_d+1)]            (PNA degree scalers)
    h_i ← LayerNorm(h_i + W_o z(i))
    e_st ← LayerNorm(e_st + W_2 SiLU(W_e e_st + P h_s + Q h_t))                 (edge update)

δ_d is the mean of log(deg+1) over the training graphs. The formulas of the aggregation and the scalers
are in `pna_aggregation`; the three steps that depend on how the edges are stored (an edge-wise function of
the endpoint terms, the aggregation of the messages, the scaled product W_o z) are called through
`LayerContext.edges`, an `edge_layout.EdgeLayout`: the sparse edge list (the reference) or dense
per-architecture blocks (same result).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from core.models.layers.edge_layout import LayerContext
from core.models.layers.edge_update import EdgeUpdate


def film_message(film: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """m = SiLU(γ ⊙ ends + β) for film = [γ | β] [..., 4H] and endpoint terms ends [..., 2H] (forward | backward)."""
    gamma, beta = film.chunk(2, dim=-1)
    return F.silu(gamma * ends + beta)


class PNAEdgeConv(EdgeUpdate, nn.Module):
    """One NG-GNN layer: (h [N, H], e [E, H_e], context) → (h', e'); H_e = `edge_hidden` (default H)."""

    def __init__(self, hidden: int, dropout: float = 0.0, edge_hidden: int | None = None):
        super().__init__()
        h, he = hidden, edge_hidden or hidden
        self.hidden = h
        self.sender = nn.Linear(h, 2 * h, bias=False)  # A_fwd, A_bwd applied to the source endpoint
        self.receiver = nn.Linear(h, 2 * h)  # B_fwd, B_bwd applied to the target endpoint
        self.film = nn.Linear(he, 4 * h)  # γ_fwd, γ_bwd, β_fwd, β_bwd from the edge
        self.post = nn.Linear(2 * 3 * 4 * h, h)  # W_o; columns ordered (direction, scaler, statistic)
        self.node_norm = nn.LayerNorm(h)
        self.init_edge_update(h, he)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mod in self.modules():
            if mod is not self and hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
        with torch.no_grad():  # start the FiLM scale near 1
            self.film.bias[: 2 * self.hidden].add_(1.0)

    def forward(self, h: torch.Tensor, e: torch.Tensor, ctx: LayerContext) -> tuple[torch.Tensor, torch.Tensor]:
        edges = ctx.edges
        # m_d = SiLU(γ_d ⊙ (A_d h_s + B_d h_t) + β_d), aggregated per receiver: [2, N, 4H] (a_fwd, a_bwd)
        agg = edges.aggregate(film_message, self.film(e), self.sender(h), self.receiver(h))
        update = edges.scaled_post(agg, ctx.log_deg, ctx.delta, self.post.weight, self.post.bias)  # W_o z [N, H]
        h = self.node_norm(h + self.dropout(update.to(h.dtype)))
        return h, self.update_edges(h, e, edges)
