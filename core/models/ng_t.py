"""NG-T (Kofinas et al., ICLR 2024): a relational transformer on neural graphs; attention over graph
neighbours in both directions plus self, with edge features in keys and values and edge updates (see
`layers/relational_attention.py`). Exactly permutation-equivariant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from core.models.base import ModelError, register_model
from core.models.graph_model import GraphModelConfig, PermutationGraphModel
from core.models.layers.edge_layout import LayerContext
from core.models.layers.relational_attention import RelationalAttention


@dataclass
class NGTConfig(GraphModelConfig):
    """NG-T hyper-parameters."""

    heads: int = 4

    kind: ClassVar[str] = "ng-t"


@register_model
class NGT(PermutationGraphModel):
    """Neural-graph transformer: node encoder → L × RelationalAttention → invariant or equivariant head."""

    name: ClassVar[str] = "ng-t"
    config_class: ClassVar[type] = NGTConfig

    def make_layer(self, i: int) -> nn.Module:
        if self.config.hidden % self.config.heads:
            raise ModelError(f"ng-t: hidden ({self.config.hidden}) must be divisible by heads ({self.config.heads})")
        return RelationalAttention(self.config.hidden, self.config.heads, self.config.dropout)

    def run_layer(self, layer: nn.Module, h: torch.Tensor, e: torch.Tensor, ctx: LayerContext):
        return layer(h, e, ctx.edge_index)
