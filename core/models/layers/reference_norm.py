"""Invariant features measured from a reference network, then batch-normalised.

    y = BN(f(θ) − f(θ_ref))      f(θ): a network's invariant features [B, F]; f(θ_ref): those of one fixed
                                 network [1, F] (the training zoo's mean network, run through the same layers)

f(θ_ref) does not depend on the input, so y is exactly as invariant as f. Why: pooled NFN features of a zoo
whose networks share one initialisation vary by about 1 % around a large common value (nfn-np's pooled features
of 64 validation INRs: spread 0.026 around 2.24); a readout cannot use such a signal, and batch norm alone cannot
either, since its running mean lags the common value as training moves it (docs/benchmarks/inr_learning.md).
Subtracting the reference removes the common value in every step, and the norm scales what is left.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ReferenceNorm(nn.Module):
    """`BN(x − reference)` over features [B, F]; a training batch of one network uses the running statistics."""

    def __init__(self, features: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(features)

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        centred = x - reference  # [B, F] − [1, F]
        if self.training and centred.shape[0] < 2:  # batch statistics need two networks
            n = self.norm
            return F.batch_norm(centred, n.running_mean, n.running_var, n.weight, n.bias, False, 0.0, n.eps)
        return self.norm(centred)  # [B, F]
