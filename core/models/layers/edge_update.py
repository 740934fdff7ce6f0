"""The edge update shared by the NG-GNN and NG-T layers (Kofinas et al. 2024):

    e_st ← LayerNorm(e_st + W_2 SiLU(W_e e_st + P h_s + Q h_t))

A mixin rather than a submodule so that its parameters keep the layer-level names (`edge_in`, `edge_src`,
`edge_dst`, `edge_out`, `edge_norm`) that saved runs use.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from core.models.layers.dense_blocks import DenseBlocks


def edge_storage_dtype(e: torch.Tensor) -> torch.dtype:
    """The dtype edge states are kept in between layers: autocast's on e's device where it is on, else e's own.

    Between layers the edge states only feed products (which autocast runs in its dtype anyway) and the
    residual sum of the next edge update, so keeping them in bfloat16/float16 loses little and halves the
    memory traffic of the largest tensors of a step (measured: bfloat16 training ~15 % faster on the CPU)."""
    kind = e.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else e.dtype


class AffineEdges(NamedTuple):
    """Edge states of one dense block kept factored, e = φ · Mᵀ + c, as the edge encoder makes them.

    φ has d ≪ H_e columns (d = 1 for an MLP's scalar weights), so a product W e + b of the first layer is
    φ (W M)ᵀ + (W c + b): d instead of H_e multiply-adds per edge and output, with W M and W c computed
    once per call, a weight-sized product (`linear_terms`). The same function as with e materialised (up
    to summation order); a NamedTuple so that `torch.compile` traces it like a tuple of tensors."""

    features: torch.Tensor  # φ [B, T, S, d]
    basis: torch.Tensor  # M [H_e, d]
    offset: torch.Tensor  # c [H_e]


EdgeStates = torch.Tensor | tuple[torch.Tensor | AffineEdges, ...]  # [E, H_e], or per dense block [B, T, S, H_e]


def linear_terms(e: torch.Tensor | AffineEdges, weight: torch.Tensor,
                 bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(x, W', b') with F.linear(x, W') + b' = F.linear(e, weight) + bias: (e, weight, bias) for a tensor, the
    folded product (φ, W M, W c + b) for `AffineEdges` (W M and W c in the weight's dtype, outside autocast)."""
    if not isinstance(e, AffineEdges):
        return e, weight, bias
    with torch.autocast(e.features.device.type, enabled=False):
        folded_bias = weight @ e.offset.to(weight.dtype)
        return e.features, weight @ e.basis.to(weight.dtype), folded_bias if bias is None else folded_bias + bias


def materialise(e: torch.Tensor | AffineEdges) -> torch.Tensor:
    """The edge states as a tensor [..., H_e]; `AffineEdges` in `edge_storage_dtype`, as the encoder writes them."""
    if not isinstance(e, AffineEdges):
        return e
    dtype = edge_storage_dtype(e.features)
    flat = e.features.reshape(-1, e.features.shape[-1]).to(dtype)
    out = torch.addmm(e.offset.to(dtype), flat, e.basis.t().to(dtype))  # the encoder's own product
    return out.view(*e.features.shape[:-1], -1)


class EdgeUpdate:
    """Mixin for an `nn.Module` layer with a `dropout` module: adds the edge-update weights and `update_edges`."""

    def init_edge_update(self, hidden: int, edge_hidden: int) -> None:
        """Create W_e, P, Q, W_2 and the LayerNorm for node width `hidden` and edge width `edge_hidden`."""
        self.edge_in = nn.Linear(edge_hidden, edge_hidden)  # W_e
        self.edge_src = nn.Linear(hidden, edge_hidden, bias=False)  # P
        self.edge_dst = nn.Linear(hidden, edge_hidden, bias=False)  # Q
        self.edge_out = nn.Linear(edge_hidden, edge_hidden)  # W_2
        self.edge_norm = nn.LayerNorm(edge_hidden)

    def update_edges(self, h: torch.Tensor, e: EdgeStates, edge_index: torch.Tensor,
                     dense: DenseBlocks | None = None) -> EdgeStates:
        """(h [N, H], e [E, H_e]) → e' [E, H_e]; with `dense`, e and e' are per-block tensors [B, T, S, H_e]."""
        # W_e's bias joins the node-level term: the product on the edges then needs no broadcast bias copy
        at_src, at_dst = self.edge_src(h) + self.edge_in.bias, self.edge_dst(h)  # [N, H_e]
        if dense is None:
            src, dst = edge_index
            return self._edge_step(e, at_src.index_select(0, src) + at_dst.index_select(0, dst))
        return tuple(self._edge_step(e_k, dense.endpoints(at_src, at_dst, k)) for k, e_k in zip(dense.blocks, e))

    def _edge_step(self, e: torch.Tensor | AffineEdges, ends: torch.Tensor) -> torch.Tensor:
        """LayerNorm(e + W_2 SiLU(W_e e + ends) + b_2) for edges e [..., H_e] (or `AffineEdges`) with endpoint
        terms ends [..., H_e] (W_e's bias included); biases are added outside the products, where
        `torch.compile` fuses them; the result is stored in `edge_storage_dtype`."""
        x, w_in, folded = linear_terms(e, self.edge_in.weight)
        pre = F.linear(x, w_in) + ends
        upd = F.silu(pre if folded is None else pre + folded.to(pre.dtype))
        e = materialise(e)
        out = self.edge_norm(e + self.dropout(F.linear(upd, self.edge_out.weight) + self.edge_out.bias))
        return out.to(edge_storage_dtype(e))
