"""PNA-style message passing over a neural graph in both edge directions, with FiLM edge modulation and
an edge update (the NG-GNN layer, Kofinas et al. 2024).

For every edge s → t and direction d ∈ {forward (receiver t), backward (receiver s)}:

    m_d = SiLU(γ_d(e_st) ⊙ (A_d h_s + B_d h_t) + β_d(e_st))                    (FiLM message)
    a_d(i) = [mean, min, max, std]_{messages of direction d received by i}
    z(i) = ⊕_d [a_d, a_d · log(deg_d+1)/δ_d, a_d · δ_d/log(deg_d+1)]            (PNA degree scalers)
    h_i ← LayerNorm(h_i + W_o z(i))
    e_st ← LayerNorm(e_st + W_2 SiLU(W_e e_st + P h_s + Q h_t))                 (edge update)

δ_d is the mean of log(deg+1) over the training graphs (computed from data by `degree_statistics`).
Everything is a gather / scatter over the sparse edge list; no dense N×N tensors. Batches of one
plain layered architecture take the equivalent dense-block path (`dense_blocks.DenseBlocks`), whose
FiLM product and message step run as one fused kernel on the CPU (`core.kernels.film_message_stats`),
whose first layer runs its edge products on the encoder's narrow features (`edge_update.AffineEdges`)
and whose degree scalers, constant per neuron layer there, fold into W_o (`dense_scaled_post`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.utils import degree, scatter

from core.kernels.film_message_stats import at_least_float32, film_message_stats, std_from_moments
from core.models.layers.dense_blocks import DenseBlocks
from core.models.layers.edge_update import EdgeStates, EdgeUpdate, linear_terms


def degree_statistics(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """δ per direction [2] (forward = in-degree, backward = out-degree): mean log(deg+1) over the degree histogram."""
    out = []
    for row in (1, 0):
        deg = degree(edge_index[row], num_nodes, dtype=torch.long)
        hist = torch.bincount(deg).double()  # degree histogram
        d = torch.arange(hist.numel(), dtype=torch.float64)
        out.append(float((hist * torch.log(d + 1)).sum() / hist.sum()))
    return torch.tensor(out)


def degree_scalers(log_deg: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """PNA's [identity, amplification, attenuation] = [1, ld/δ, δ/ld] on a new last axis, for ld = log(deg+1)
    (floored at log 2 in the attenuation: isolated neurons get 0 aggregates anyway) and δ broadcast to it."""
    return torch.stack([torch.ones_like(log_deg), log_deg / delta, delta / log_deg.clamp_min(math.log(2))], dim=-1)


class DegreeStatistics:
    """Mixin for metanetworks with PNA degree scalers: the δ buffers and their fitting from data."""

    def register_degree_statistics(self) -> None:
        """Add the buffers `delta` [2] (mean log(deg+1) per direction) and `delta_fitted`."""
        self.register_buffer("delta", torch.ones(2))
        self.register_buffer("delta_fitted", torch.zeros((), dtype=torch.bool))

    def fit_degree_statistics(self, edge_index: torch.Tensor, num_nodes: int, if_unfitted: bool = False) -> None:
        """δ from these graphs; with `if_unfitted` only when never fitted (a forward before `fit_normalisation`)."""
        if if_unfitted and bool(self.delta_fitted):
            return
        self.delta.copy_(degree_statistics(edge_index, num_nodes))
        self.delta_fitted.fill_(True)


def multi_aggregate(m: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """[mean, min, max, std] of messages m [E, H] per receiver → [dim_size, 4H] (zeros for receivers with none);
    in float32 at least (`at_least_float32`)."""
    m = at_least_float32(m)
    count = scatter(torch.ones_like(index, dtype=m.dtype), index, 0, dim_size=dim_size, reduce="sum").clamp_min(1)[:, None]
    sums = scatter(torch.cat([m, m * m], dim=1), index, 0, dim_size=dim_size, reduce="sum") / count  # [N, 2H]
    mean, sq = sums.chunk(2, dim=1)
    std = std_from_moments(mean, sq)
    mn = scatter(m, index, 0, dim_size=dim_size, reduce="min")
    mx = scatter(m, index, 0, dim_size=dim_size, reduce="max")
    return torch.cat([mean, mn, mx, std], dim=1)


class PNAEdgeConv(EdgeUpdate, nn.Module):
    """One NG-GNN layer: (h [N, H], e [E, H_e], edge_index [2, E]) → (h', e'); H_e = `edge_hidden` (default H)."""

    def __init__(self, hidden: int, dropout: float = 0.0, edge_hidden: int | None = None):
        super().__init__()
        h, he = hidden, edge_hidden or hidden
        self.hidden = h
        self.sender = nn.Linear(h, 2 * h, bias=False)  # A_fwd, A_bwd applied to the source endpoint
        self.receiver = nn.Linear(h, 2 * h)  # B_fwd, B_bwd applied to the target endpoint
        self.film = nn.Linear(he, 4 * h)  # γ_fwd, γ_bwd, β_fwd, β_bwd from the edge
        self.post = nn.Linear(2 * 3 * 4 * h, h)
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

    def forward(self, h: torch.Tensor, e: EdgeStates, edge_index: torch.Tensor,
                log_deg: torch.Tensor, delta: torch.Tensor, dense: DenseBlocks | None = None) -> tuple[torch.Tensor, EdgeStates]:
        """log_deg [2, N]: log(deg+1) per direction; delta [2]: its training mean; with `dense` (the fast
        path), e is a tuple of per-block edge tensors and so is the returned e'."""
        n, hd = h.shape[0], self.hidden
        src, dst = edge_index
        if dense is None:
            gamma, beta = self.film(e).split(2 * hd, dim=1)  # [E, 2H] each
            pre = self.sender(h).index_select(0, src) + self.receiver(h).index_select(0, dst)  # [E, 2H]
            m = F.silu(gamma * pre + beta)  # [E, 2H]: forward | backward message
            # both directions in one scatter: forward messages go to dst, backward ones to N + src
            msgs = torch.cat([m[:, :hd], m[:, hd:]], dim=0)  # [2E, H]
            index = torch.cat([dst, src + n])  # [2E]
            update = self.scaled_post(multi_aggregate(msgs, index, 2 * n), log_deg, delta)  # aggregates [2N, 4H]
        else:  # e: per block [B, T, S, H_e] (`DenseBlocks.split_edges`) or `AffineEdges`; broadcasts, no gathers
            snd, rcv = self.sender(h), self.receiver(h)  # [N, 2H]: node level, cheap
            into, out_of = {}, {}
            for k, e_k in zip(dense.blocks, e):
                # FiLM product [B, T, S, 4H] = [γ | β] and the forward messages' statistics over the senders
                # [B, T, 4H], backward ones' over the receivers [B, S, 4H]; one fused CPU kernel where it
                # applies (same result, see core/kernels)
                x, w, b = linear_terms(e_k, self.film.weight, self.film.bias)  # folded for `AffineEdges`
                into[k], out_of[k] = film_message_stats(x, w, *dense.endpoint_terms(snd, rcv, k), b)
            update = self.dense_scaled_post(into, out_of, dense, log_deg, delta, h.dtype)
        h = self.node_norm(h + self.dropout(update))  # [N, H]
        return h, self.update_edges(h, e, edge_index, dense)

    def dense_scaled_post(self, into: dict, out_of: dict, dense: DenseBlocks, log_deg: torch.Tensor,
                          delta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`scaled_post` on the dense path, from the per-block aggregates into[k] [B, T_k, 4H] and out_of[k]
        [B, S_k, 4H] → [N, H] in `dtype`.

        The neurons of a layer share their degrees, so per layer and direction the three scaled products
        fold into one: Σ_j scaler_dj · W_o,dj a_d = (W_o,d0 + ld/δ_d · W_o,d1 + δ_d/ld · W_o,d2) a_d, a third
        of the products; the scalers are read from log_deg, as the sparse path's."""
        hd = self.hidden
        w = self.post.weight.view(hd, 2, 3, 4 * hd)  # [H, direction, scaler, 4H]
        rows = []
        for start, size, receives, sends in dense.layer_blocks():
            y = None
            for d, (k, aggregates) in enumerate(((receives, into), (sends, out_of))):
                if k is None:  # no messages in this direction: zero aggregates, no term
                    continue
                scalers = degree_scalers(log_deg[d, start].to(w.dtype), delta[d].to(w.dtype))  # [3]
                folded = (w[:, d] * scalers[:, None]).sum(1)  # [H, 4H]
                part = F.linear(aggregates[k], folded).to(dtype)  # [B, size, H]
                y = part if y is None else y + part
            rows.append(y if y is not None else self.post.bias.new_zeros(dense.graphs, size, hd, dtype=dtype))
        return torch.cat(rows, dim=1).reshape(-1, hd) + self.post.bias

    def scaled_post(self, agg: torch.Tensor, log_deg: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """W_o z(i) + b_o for aggregates agg [2N, 4H] (rows: forward direction, then backward) → [N, H].

        The degree scalers are per node and direction, so W_o z = Σ_d Σ_j scaler_dj · (W_o,dj a_d): three
        products per direction, scaled afterwards, instead of building z [N, 24H] (the same sum, ≈ 6× less
        memory traffic). W_o's columns are ordered (direction, scaler, aggregate), as z was."""
        hd, n = self.hidden, agg.shape[0] // 2
        scalers = degree_scalers(log_deg.reshape(2, n), delta.to(log_deg).view(2, 1))  # [2, N, 3]
        w = self.post.weight.view(hd, 2, 3, 4 * hd).permute(1, 3, 2, 0).reshape(2, 4 * hd, 3 * hd)  # [2, 4H, 3H]
        y = torch.bmm(agg.view(2, n, 4 * hd), w).view(2, n, 3, hd)  # [2, N, 3, H] (bfloat16 under autocast)
        return (y.to(scalers.dtype) * scalers[..., None]).sum((0, 2)) + self.post.bias
