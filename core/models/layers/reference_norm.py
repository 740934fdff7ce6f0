"""Invariant features measured from a reference network, on a fixed scale.

    y = (f(θ) − f(θ_ref)) / s      f(θ): a network's invariant features [B, F]; f(θ_ref): those of one fixed
                                   network [1, F] (the training zoo's mean network, run through the same layers);
                                   s: one scalar, the spread of f(θ) − f(θ_ref) over a training sample at fit time

f(θ_ref) and s do not depend on the input, so y is exactly as invariant as f. Why: pooled NFN features of a zoo
whose networks share one initialisation vary by about 1 % around a large common value (nfn-np's pooled features of
64 validation INRs: spread 0.026 around 2.24), and a readout does not learn from such a signal (nfn-np stayed at
chance). Subtracting the reference removes the common value at every step, as the layers that compute it change;
dividing by s brings the rest to unit scale. Batch norm in place of the fixed scale trained faster but diverged in one
of two runs (docs/benchmarks/inr_learning.md, section "nfn's reference-centred head").
"""

from __future__ import annotations

import torch
from torch import nn


class ReferenceNorm(nn.Module):
    """`(x − reference) / scale` over features [B, F]; `fit` sets the scalar `scale` from a sample."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))

    def reset_parameters(self) -> None:
        self.scale.fill_(1.0)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, reference: torch.Tensor) -> None:
        """scale = the standard deviation of every entry of x − reference ([B, F] − [1, F]); 1 if it is zero."""
        s = float((x - reference).double().std()) if x.numel() > 1 else 0.0
        self.scale.fill_(s if s > 1e-12 else 1.0)

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return (x - reference) / self.scale.to(x)  # [B, F] − [1, F] → [B, F]
