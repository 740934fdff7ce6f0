"""Scale/sign-equivariant map (ScaleGMN): bias-free linear map of x gated by an invariant function.

    y_i = (W x_i) ⊙ g(u_i) + [kind_i = NONE] · c(u_i)

x_i transforms by a per-row factor q_i (a positive scale or a sign); u_i is invariant (canonicalised
features and embeddings), so (W q x) ⊙ g(u) = q (W x) ⊙ g(u). Rows without a symmetry (input/output
neurons) also get the unconstrained term c(u), which makes them a plain MLP of their (uncanonicalised) input.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from core.models.layers.invariant import NONE


class GatedEquivariantLinear(nn.Module):
    """[M, in] (+ invariant [M, inv]) → [M, out], equivariant per row."""

    def __init__(self, in_dim: int, out_dim: int, inv_dim: int, hidden: int):
        super().__init__()
        self.out_dim = out_dim
        self.lin = nn.Linear(in_dim, out_dim, bias=False)  # W
        self.gate1 = nn.Linear(inv_dim, hidden)
        self.gate2 = nn.Linear(hidden, 2 * out_dim)  # g | c
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        self.gate1.reset_parameters()
        self.gate2.reset_parameters()
        with torch.no_grad():  # start with g ≈ 1
            self.gate2.bias[: self.out_dim].add_(1.0)

    def forward(self, x: torch.Tensor, inv: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
        g, c = self.gate2(F.silu(self.gate1(inv))).split(self.out_dim, dim=-1)  # [M, out] each
        return self.lin(x) * g + (kind == NONE)[:, None].to(x) * c  # [M, out]
