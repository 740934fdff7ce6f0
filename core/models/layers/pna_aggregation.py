"""The PNA formulas of NG-GNN (Corso et al. 2020, as used by Kofinas et al. 2024), in one place for every
execution path (`edge_layout.SparseEdges`, `edge_layout.DenseBlocks`):

    a(i)   = [mean, min, max, std]_{messages m received by i}            std = √(E[m²] − E[m]² + ε) − √ε
    ld(i)  = log(deg(i) + 1),   δ = the mean of ld over the training graphs' degree histogram
    s(i)   = [1, ld(i)/δ, δ/ld(i)]                                        (identity, amplification, attenuation)
    z(i)   = ⊕_d ⊕_j s_j,d(i) · a_d(i)        per direction d ∈ {forward (in-degree), backward (out-degree)}
    W_o z(i) + b_o = Σ_d Σ_j s_j,d(i) · (W_o,dj a_d(i)) + b_o                (`scaled_post`: z never built)

Receivers without messages get zero aggregates. The statistics are taken in float32 at least: the std's
E[m²] − E[m]² cancels badly in bfloat16.
"""

from __future__ import annotations

import math

import torch
from torch_geometric.utils import degree, scatter

STD_EPS = 1e-5  # std = √(max(E[m²] − E[m]², 0) + ε) − √ε: 0 for equal messages, with a finite gradient there


def at_least_float32(m: torch.Tensor) -> torch.Tensor:
    """m, upcast to float32 if it is in half precision (the statistics are taken in float32 at least)."""
    return m.float() if m.dtype in (torch.float16, torch.bfloat16) else m


def std_from_moments(mean: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
    """The PNA std aggregator from E[m] and E[m²]."""
    return (sq - mean * mean).clamp_min(0).add(STD_EPS).sqrt() - math.sqrt(STD_EPS)


def scatter_statistics(m: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """[mean, min, max, std] of messages m [E, H] per receiver `index` [E] → [dim_size, 4H] (the sparse form)."""
    m = at_least_float32(m)
    count = scatter(torch.ones_like(index, dtype=m.dtype), index, 0, dim_size=dim_size, reduce="sum")
    moments = scatter(torch.cat([m, m * m], dim=1), index, 0, dim_size=dim_size, reduce="sum")  # [N, 2H]
    mean, sq = (moments / count.clamp_min(1)[:, None]).chunk(2, dim=1)
    mn = scatter(m, index, 0, dim_size=dim_size, reduce="min")
    mx = scatter(m, index, 0, dim_size=dim_size, reduce="max")
    return torch.cat([mean, mn, mx, std_from_moments(mean, sq)], dim=1)


def dense_statistics(m: torch.Tensor, dim: int) -> torch.Tensor:
    """[mean, min, max, std] of messages m [..., H] over axis `dim` → [..., 4H] (the dense-block form)."""
    m = at_least_float32(m)
    mean = m.mean(dim)
    mn, mx = torch.aminmax(m, dim=dim)
    return torch.cat([mean, mn, mx, std_from_moments(mean, (m * m).mean(dim))], dim=-1)


def log_degrees(edge_index: torch.Tensor, num_nodes: int, like: torch.Tensor) -> torch.Tensor:
    """ld = log(deg + 1) [2, N]: row 0 the in-degree (forward messages), row 1 the out-degree (backward)."""
    src, dst = edge_index
    return torch.stack([degree(dst, num_nodes), degree(src, num_nodes)]).add(1).log().to(like)


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
    """[1, ld/δ, δ/ld] on a new last axis, δ broadcast to ld (ld floored at log 2 in the attenuation:
    receivers without messages have zero aggregates anyway)."""
    return torch.stack([torch.ones_like(log_deg), log_deg / delta, delta / log_deg.clamp_min(math.log(2))], dim=-1)


def scaled_post(agg: torch.Tensor, scalers: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """W_o z + b_o for aggregates agg [2, N, 4H] and per-node scalers [2, N, 3] → [N, H_out].

    W_o's columns are ordered (direction, scaler, statistic); three products per direction, scaled
    afterwards, instead of the 24H-wide z."""
    h_out, width = weight.shape[0], agg.shape[-1]
    w = weight.view(h_out, 2, 3, width).permute(1, 3, 2, 0).reshape(2, width, 3 * h_out)  # [2, 4H, 3·H_out]
    y = torch.bmm(agg, w).view(*agg.shape[:2], 3, h_out)  # [2, N, 3, H_out] (bfloat16 under autocast)
    return (y.to(scalers.dtype) * scalers[..., None]).sum((0, 2)) + bias


def folded_post_weight(weight: torch.Tensor, scalers: torch.Tensor) -> torch.Tensor:
    """Σ_j s_j,d W_o,dj [2, H_out, 4H] for receivers that share their scalers [2, 3] (one neuron layer):
    W_o z = Σ_d (folded_d a_d), a third of `scaled_post`'s products."""
    h_out = weight.shape[0]
    w = weight.view(h_out, 2, 3, -1)  # [H_out, direction, scaler, 4H]
    return (w * scalers[None, :, :, None].to(w.dtype)).sum(2).transpose(0, 1)


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
