"""Input encoders of the permutation-only metanetworks (NG-GNN, NG-T).

    h_i = W_x · φ(x_i) + P_role(i) + A[act(i)]
    e_ij = W_e · φ(e_ij) + T[type(ij)]

φ is the identity or a random-Fourier-feature lift φ(w) = [sin(2π B w), cos(2π B w)] (B ~ N(0, σ²), fixed).
P_role is a learned embedding of the input neuron's index (input neurons are not permutable), of the
output neuron's index, or of the hidden layer's index (capped), so the encoders never depend on the
position of a hidden neuron inside its layer: they commute with hidden-neuron permutations.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from core.graph.layout import INPUT, NODE_FEATURES, OUTPUT
from core.models.layers.edge_update import edge_storage_dtype
from core.network.spec import ACTIVATIONS

NUM_EDGE_TYPES = 4


class RandomFourierFeatures(nn.Module):
    """Scalar-wise RFF lift: [*, C] → [*, C·2F] with fixed frequencies (a buffer, not trained)."""

    def __init__(self, in_channels: int, features: int, sigma: float = 1.0, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.in_channels, self.features = in_channels, features
        self.register_buffer("freq", torch.randn(features, generator=gen) * sigma)  # [F]

    @property
    def out_channels(self) -> int:
        return self.in_channels * 2 * self.features

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        z = 2 * math.pi * v[..., None] * self.freq.to(v)  # [*, C, F]
        return torch.cat([z.sin(), z.cos()], dim=-1).flatten(-2)  # [*, C·2F]


def positional_index(node_role: torch.Tensor, node_layer: torch.Tensor, node_index: torch.Tensor,
                     max_positions: int, max_layers: int) -> torch.Tensor:
    """Row of the positional table per node: inputs [0, P), outputs [P, 2P), hidden layers [2P, 2P+L)."""
    p = max_positions
    idx = node_index.clamp(max=p - 1)
    hidden = 2 * p + node_layer.clamp(1, max_layers) - 1
    return torch.where(node_role == INPUT, idx, torch.where(node_role == OUTPUT, p + idx, hidden))


class NodeEncoder(nn.Module):
    """[N, 5] node features (+ role/layer/index/activation) → [N, H]."""

    def __init__(self, hidden: int, max_positions: int, max_layers: int, rff_features: int = 0, rff_sigma: float = 1.0):
        super().__init__()
        self.max_positions, self.max_layers = max_positions, max_layers
        self.rff = RandomFourierFeatures(NODE_FEATURES, rff_features, rff_sigma, seed=1) if rff_features else None
        in_dim = NODE_FEATURES + (self.rff.out_channels if self.rff else 0)
        self.lin = nn.Linear(in_dim, hidden)
        self.position = nn.Embedding(2 * max_positions + max_layers, hidden)
        self.activation = nn.Embedding(len(ACTIVATIONS), hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        nn.init.normal_(self.position.weight, std=0.1)
        nn.init.normal_(self.activation.weight, std=0.1)

    def forward(self, x: torch.Tensor, node_role: torch.Tensor, node_layer: torch.Tensor,
                node_index: torch.Tensor, node_activation: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([x, self.rff(x)], dim=-1) if self.rff is not None else x  # [N, 5(+10F)]
        pos = positional_index(node_role, node_layer, node_index, self.max_positions, self.max_layers)
        return self.lin(feats) + self.position(pos).to(x) + self.activation(node_activation).to(x)  # [N, H]


class EdgeEncoder(nn.Module):
    """[E, D] edge features (+ edge type) → [E, H]."""

    def __init__(self, edge_dim: int, hidden: int, rff_features: int = 0, rff_sigma: float = 1.0):
        super().__init__()
        self.rff = RandomFourierFeatures(edge_dim, rff_features, rff_sigma, seed=2) if rff_features else None
        in_dim = edge_dim + (self.rff.out_channels if self.rff else 0)
        self.lin = nn.Linear(in_dim, hidden)
        self.edge_type = nn.Embedding(NUM_EDGE_TYPES, hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        nn.init.normal_(self.edge_type.weight, std=0.1)

    def forward(self, edge_attr: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
        """[E, H] in `edge_storage_dtype` (bfloat16 under bfloat16 autocast)."""
        feats = torch.cat([edge_attr, self.rff(edge_attr)], dim=-1) if self.rff is not None else edge_attr  # φ(e)
        # W·φ(e) + (b + T[type]) as one product with the gathered rows as its addend, the rows gathered from a
        # table already in the output dtype: no edge-sized sum of mixed dtypes (4 ms per 64 SIRENs in bfloat16)
        table = (self.edge_type.weight + self.lin.bias).to(edge_storage_dtype(feats))
        return torch.addmm(F.embedding(edge_type, table), feats.to(table.dtype), self.lin.weight.t().to(table.dtype))
