"""`mlp`: the symmetry-blind baseline — flattened parameters → MLP (one fixed architecture).

    y = MLP((θ − μ) / σ),   θ ∈ R^P the flat parameters, μ, σ per parameter from the training zoo

It is not permutation-invariant (the equivariance tests assert that it fails them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from core.models.base import MetaNetwork, ModelConfig, ParamsOutput, as_batch, mlp, register_model, zero_update
from core.models.fixed_arch import architecture_from_config, features_from_flat, flat_from_batch


@dataclass
class MLPConfig(ModelConfig):
    """MLP baseline hyper-parameters; `architecture` is the fixed input architecture (Architecture.to_dict())."""

    architecture: dict | None = None

    kind: ClassVar[str] = "mlp"


@register_model
class MLPBaseline(MetaNetwork):
    """Flat parameters → MLP (graph head) or → per-parameter update (params head)."""

    name: ClassVar[str] = "mlp"
    symmetries: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[type] = MLPConfig
    fixed_architecture: ClassVar[bool] = True
    augment_by_default: ClassVar[bool] = True

    def __init__(self, config: MLPConfig, out_dim: int, head: str = "graph"):
        super().__init__(config, out_dim, head)
        self.architecture = architecture_from_config(self.name, config.architecture)
        p = self.architecture.num_parameters
        out = out_dim if head == "graph" else p
        self.net = mlp([p] + [config.hidden] * config.layers + [out], dropout=config.dropout)
        if head == "params":  # an untrained editor proposes no weight update
            zero_update(*self.net[-1].parameters())
        self.register_buffer("mean", torch.zeros(p))
        self.register_buffer("std", torch.ones(p))

    @torch.no_grad()
    def fit_normalisation(self, graphs: Any) -> "MLPBaseline":
        """Per-parameter mean/std over the training networks."""
        flat, _ = flat_from_batch(self.name, self.architecture, as_batch(graphs))
        self.mean.copy_(flat.double().mean(0))
        std = flat.double().std(0) if flat.shape[0] > 1 else torch.ones_like(self.std, dtype=torch.float64)
        self.std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
        return self

    def forward(self, batch: Any):
        self.check_batch(batch)
        flat, layout = flat_from_batch(self.name, self.architecture, batch)  # [B, P]
        if self.config.normalise:
            flat = (flat - self.mean.to(flat)) / self.std.to(flat)
        out = self.net(flat)
        if self.head == "graph":
            return out  # [B, out_dim]
        return ParamsOutput(*features_from_flat(layout, out))
