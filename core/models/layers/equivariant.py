"""Scale/sign-equivariant map (ScaleGMN): bias-free linear map of x gated by an invariant function.

    y_i = (W x_i) ⊙ g(u_i) + [kind_i = NONE] · c(u_i),    [g | c](u) = W_2 silu(LN(W_1 u + b_1)) + b_2

x_i transforms by a per-row factor q_i (a positive scale or a sign); u_i is invariant (canonicalised
features and embeddings), so (W q x) ⊙ g(u) = q (W x) ⊙ g(u). Rows without a symmetry (input/output
neurons) also get the unconstrained term c(u), which makes them a plain MLP of their (uncanonicalised) input.

LN (LayerNorm, `norm=True`; the reference code's invariant MLPs have it too) bounds g and c whatever the size of u.
Without it, u of a row without a symmetry is the raw row itself, so g grows with x and (W x) ⊙ g(x) squares the
row's magnitude at every such map: on networks with large weights and non-symmetric activations (silu, gelu) the
states reach 1e35 after two layers and overflow float32. LN acts on invariant values only, so every symmetry is kept.
The states still grow with the network's weights (∝ w^(layers+1), like the network's own forward pass), so LN is
`RangeSafeLayerNorm`: a row whose squares would overflow is normalised from a power-of-two rescaling of itself (the
same function up to ε's share of its variance, below float32's resolution; bit for bit on rows in range).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from core.models.layers.invariant import NONE, power_of_two_scale


class RangeSafeLayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` over the last dim that stays finite for rows with values up to float's largest: a row beyond
    2³² (`power_of_two_scale`) is normalised from v / m, m a power of two that brings it within 2³², so its squared
    deviations cannot overflow. Rows in range give `nn.LayerNorm`'s bits; a rescaled row differs from LN(v) in exact
    arithmetic only by ε's share of its variance, below float32's resolution (a row of float32 values ≥ 2³¹ that is
    not constant has variance ≥ ~10², against ε = 1e-5). Same parameters (loads LayerNorm weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = power_of_two_scale(x)
        return F.layer_norm(x if m is None else x / m, self.normalized_shape, self.weight, self.bias, self.eps)


class GatedEquivariantLinear(nn.Module):
    """[M, in] (+ invariant [M, inv]) → [M, out], equivariant per row."""

    def __init__(self, in_dim: int, out_dim: int, inv_dim: int, hidden: int, norm: bool = False):
        super().__init__()
        self.out_dim = out_dim
        self.lin = nn.Linear(in_dim, out_dim, bias=False)  # W
        self.gate1 = nn.Linear(inv_dim, hidden)
        self.norm = RangeSafeLayerNorm(hidden) if norm else nn.Identity()
        self.gate2 = nn.Linear(hidden, 2 * out_dim)  # g | c
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        self.gate1.reset_parameters()
        self.gate2.reset_parameters()
        if hasattr(self.norm, "reset_parameters"):  # an Identity without `norm`
            self.norm.reset_parameters()
        with torch.no_grad():  # start with g ≈ 1
            self.gate2.bias[: self.out_dim].add_(1.0)

    def forward(self, x: torch.Tensor, inv: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        g, c = self.gate2(F.silu(self.norm(self.gate1(inv)))).split(self.out_dim, dim=-1)  # [M, out] each
        return self.lin(x) * g + (kind == NONE)[:, None].to(x) * c  # [M, out]
