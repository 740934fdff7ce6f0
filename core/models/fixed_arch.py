"""Helpers of the fixed-architecture baselines (`mlp`, `nfn-*`): flat parameters in and out of a Batch."""

from __future__ import annotations

from typing import Any

import torch

from core.graph.layout import GraphLayout, layout_for
from core.models.base import ModelError
from core.network.spec import Architecture


def architecture_from_config(name: str, arch: dict | Architecture | None) -> Architecture:
    """The Architecture a fixed-architecture model was built for (clear error when missing)."""
    if arch is None:
        raise ModelError(f"{name} reads one fixed architecture: build it with architecture=<Architecture>")
    return arch if isinstance(arch, Architecture) else Architecture.from_dict(arch)


def flat_from_batch(name: str, arch: Architecture, batch: Any) -> tuple[torch.Tensor, GraphLayout]:
    """[B, P] parameters of a Batch whose graphs all have `arch` (one gather)."""
    archs = batch.architecture if isinstance(batch.architecture, (list, tuple)) else [batch.architecture]
    if any(a != arch for a in archs):
        raise ModelError(f"{name} was built for one fixed architecture; the batch holds a different or mixed one")
    grid = batch.grid_size
    grid = grid.reshape(-1)[0] if torch.is_tensor(grid) else (grid[0] if isinstance(grid, (list, tuple)) else grid)
    layout = layout_for(arch, int(grid))
    b = len(archs)
    x = batch.x.reshape(b, layout.num_nodes, -1)
    e = batch.edge_attr.reshape(b, layout.num_edges, -1)
    return layout.params_from_features(x, e), layout


def features_from_flat(layout: GraphLayout, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-parameter outputs [B, P] → (x [B·N, 5], edge_attr [B·E, D]), zero where no parameter lives."""
    x, e = layout.features_from_params(flat)
    zeros = flat.new_zeros(flat.shape)
    x0, e0 = layout.features_from_params(zeros)  # the constant defaults
    return (x - x0).reshape(-1, x.shape[-1]), (e - e0).reshape(-1, e.shape[-1])
