"""ScaleGMN and ScaleGMN-B (Kalogeropoulos et al., NeurIPS 2024): graph metanetworks equivariant to
hidden-neuron permutations *and* to the scaling (relu/leaky_relu: q > 0) and sign (tanh/sine: ±1)
symmetries, chosen per neuron from its activation, so zoos that mix activations are handled per network.

    lift:    h_i = (W x̄_i) ⊙ g(canon(x̄_i), emb_i) (+ c(·) for plain neurons),  x̄_i = bias (scaled neurons) or
             all 5 node columns (plain neurons);   e_ij = (W_e w_ij) ⊙ g_e(canon(w_ij), type) (+ c_e for plain edges)
    layers:  `layers/scale_message_passing.py` (ScaleGMN-B adds reciprocal backward messages)
    readout: y = MLP([mean_i, max_i] MLP(canon(h_i), emb_i) ⊕ mean_ij canon(e_ij))             (invariant)
    params:  x̂_i = (W h_i) ⊙ g(·) (+ c(·) plain),  ê_ij = W' e_ij                               (equivariant)
             W, c and W' start at zero, so an untrained editor proposes Δθ = 0 (this project's choice, as for every
             params head; with the default init the first update was as large as the INR's weights)

No input normalisation (mean/std shifts would break scale equivariance); `fit_normalisation` only
computes the degree statistics δ. The invariant MLPs (every gate g / c, the readout) have a LayerNorm
(`gate_norm`, as in the reference code's MLPs): it acts on invariant values only, and without it the states of
networks with large weights overflow float32 (see `layers/equivariant.py`; issue #22's Wild Park zoo).
The scale/sign guarantees are for networks without normalisation layers (BatchNorm moves the scale to γ, β,
which this model reads as plain features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch_geometric.utils import scatter

from core.graph.layout import NODE_FEATURES
from core.models.base import (
    MetaNetwork,
    ModelConfig,
    ParamsOutput,
    as_batch,
    graph_count,
    graph_index,
    mlp,
    position_in_layer,
    register_model,
    zero_update,
)
from core.models.layers.embeddings import NUM_EDGE_TYPES, positional_index
from core.models.layers.equivariant import GatedEquivariantLinear, RangeSafeLayerNorm
from core.models.layers.invariant import NONE, canonicalise, edge_kinds, node_kinds
from core.models.layers.pna_aggregation import DegreeStatistics
from core.models.layers.probe_features import ProbeFeatures
from core.models.layers.scale_message_passing import ScaleMessagePassing, degree_terms
from core.network.spec import ACTIVATIONS

# Without `gate_norm` the states grow like w^(10 · 4^(layers−1)) in float32's range (fitted to the first non-finite
# weight scale of untrained models, parameters × 1.5: 3e4, 32, 5.6, 3.2 for 1–4 layers; docs/benchmarks/tasks.md)
OLD_GATE_EXPONENT = 10


@dataclass
class ScaleGMNConfig(ModelConfig):
    """ScaleGMN hyper-parameters (`normalise` is ignored: the model never normalises its input)."""

    bidirectional: bool = False
    edge_gate_hidden: int = 32  # width of the invariant gate of the edge lift
    probes: int = 0  # INR probe features at this many learned coordinates (bias-free lift; 0 = off)
    # LayerNorm in every invariant MLP (gates, readout): keeps the states of networks with large weights and
    # activations without a scaling symmetry finite (see `layers/equivariant.py`); False: the model before the fix
    gate_norm: bool = True

    kind: ClassVar[str] = "scalegmn"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScaleGMNConfig":
        """As `ModelConfig.from_dict`; a config saved before `gate_norm` existed describes a model without it."""
        return super().from_dict({"gate_norm": False, **d})


@dataclass
class ScaleGMNBConfig(ScaleGMNConfig):
    """ScaleGMN-B hyper-parameters."""

    bidirectional: bool = True

    kind: ClassVar[str] = "scalegmn-b"


@register_model
class ScaleGMN(DegreeStatistics, MetaNetwork):
    """Permutation-, scale- and sign-equivariant graph metanetwork."""

    name: ClassVar[str] = "scalegmn"
    symmetries: ClassVar[tuple[str, ...]] = ("permutation", "scale", "sign")
    config_class: ClassVar[type] = ScaleGMNConfig
    normalises_input: ClassVar[bool] = False  # mean/std shifts would break scale equivariance

    def __init__(self, config: ScaleGMNConfig, out_dim: int, head: str = "graph"):
        super().__init__(config, out_dim, head)
        c, h = config, config.hidden
        self.position = nn.Embedding(2 * c.max_positions + c.max_layers, h)
        self.activation = nn.Embedding(len(ACTIVATIONS), h)
        self.edge_type = nn.Embedding(NUM_EDGE_TYPES, c.edge_gate_hidden)
        norm = c.gate_norm
        self.node_lift = GatedEquivariantLinear(NODE_FEATURES, h, NODE_FEATURES + (NODE_FEATURES - 1) + h, h, norm)
        self.edge_lift = GatedEquivariantLinear(c.edge_dim, h, c.edge_dim + c.edge_gate_hidden, c.edge_gate_hidden,
                                                norm)
        self.layers = nn.ModuleList([ScaleMessagePassing(h, h, c.bidirectional, c.dropout, norm)
                                     for _ in range(c.layers)])
        self.probe = ProbeFeatures(c.probes, h, bias=False) if c.probes else None
        self.register_degree_statistics()
        if head == "graph":
            self.node_readout = mlp([2 * h, h, h], last_act=True, norm=norm, layer_norm=RangeSafeLayerNorm)
            self.readout = mlp([3 * h, c.readout_hidden, out_dim], dropout=c.dropout, norm=norm,
                               layer_norm=RangeSafeLayerNorm)
        else:
            self.node_out = GatedEquivariantLinear(h, NODE_FEATURES, 2 * h, h, norm)
            self.edge_out = nn.Linear(h, c.edge_dim, bias=False)
        self.reset_parameters()

    @classmethod
    def weight_limit(cls, config: ModelConfig, dtype: torch.dtype = torch.float32) -> float:
        """Node states grow like w^(layers+1) with the input's weights w (each layer multiplies a state by its edges'
        weights, as the network's own forward pass does); with a factor w to spare they stay finite up to
        max^(1/(layers+2)): the screening limit (4.3e9 in float32) for ≤ 2 layers, 5.1e7 for 3, 2.6e6 for 4.
        ScaleGMN-B's backward messages add a growth of their own beyond 4 layers (measured: non-finite from 5.6e3 at
        8 layers, below max^(1/10) = 7.1e3), so its exponent is (layers+2)·layers/4 there: 2.5e4 for 5 layers, 1.6e3
        for 6, 84 for 8. Configs without `gate_norm` (saved runs from before it) square a row at every gated map, so
        their states grow doubly exponentially with depth: `OLD_GATE_EXPONENT` gives their much lower limit (7.1e3 for
        1 layer, 9.2 for 2, 1.7 for 3, 1.15 for 4; beyond 6 layers no limit helps: with its parameters grown 1.5× an
        8-layer one overflows on weights of standard deviation 0.56)."""
        layers = config.layers
        if not getattr(config, "gate_norm", True):
            exponent = OLD_GATE_EXPONENT * 4 ** (layers - 1)
        else:
            backward = getattr(config, "bidirectional", False) and layers > 4
            exponent = (layers + 2) * (layers / 4 if backward else 1.0)
        return min(super().weight_limit(config, dtype), float(torch.finfo(dtype).max) ** (1.0 / exponent))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.position.weight, std=0.1)
        nn.init.normal_(self.activation.weight, std=0.1)
        nn.init.normal_(self.edge_type.weight, std=0.1)
        if self.head == "params":  # an untrained editor proposes no weight update: W of x̂, its plain term c, and W'
            gate = self.node_out.gate2
            zero_update(self.node_out.lin.weight, gate.weight[NODE_FEATURES:], gate.bias[NODE_FEATURES:],
                        self.edge_out.weight)

    @torch.no_grad()
    def fit_normalisation(self, graphs: Any) -> "ScaleGMN":
        """Only the degree statistics δ: scale-equivariant models must not normalise their input."""
        batch = as_batch(graphs)
        self.fit_degree_statistics(batch.edge_index, batch.num_nodes)
        return self

    def forward(self, batch: Any):
        self.check_batch(batch)
        c = self.config
        x, ea, edge_index = batch.x, batch.edge_attr, batch.edge_index
        n = x.shape[0]
        self.fit_degree_statistics(edge_index, n, if_unfitted=True)
        kind = node_kinds(batch.node_role, batch.node_activation)  # [N]
        ekind = edge_kinds(kind, edge_index)  # [E]
        pos = positional_index(batch.node_role, batch.node_layer, position_in_layer(batch), c.max_positions,
                               c.max_layers)
        emb = (self.position(pos) + self.activation(batch.node_activation)).to(x)  # [N, H] invariant
        # lift: scaled neurons read only their bias (∝ q_i); the other columns are plain invariant inputs
        plain = (kind == NONE)[:, None]
        col0 = torch.zeros(NODE_FEATURES, dtype=torch.bool, device=x.device)
        col0[0] = True
        x_eq = torch.where(plain | col0, x, torch.zeros_like(x))  # [N, 5]
        inv = torch.cat([canonicalise(x_eq, kind), x[:, 1:], emb], dim=1)
        h = self.node_lift(x_eq, inv, kind)  # [N, H] ∝ q_i
        if self.probe is not None:
            h = h + self.probe(batch).to(h)  # ∝ q_i as well (see ProbeFeatures)
        einv = torch.cat([canonicalise(ea, ekind), self.edge_type(batch.edge_type).to(ea)], dim=1)
        e = self.edge_lift(ea, einv, ekind)  # [E, H] ∝ q_i/q_j
        inv_deg, amp = degree_terms(edge_index, n, self.delta, x.dtype)
        for layer in self.layers:
            h, e = layer(h, e, edge_index, kind, ekind, emb, inv_deg, amp)
        if self.head == "params":
            x_out = self.node_out(h, torch.cat([canonicalise(h, kind), emb], dim=1), kind)  # [N, 5]
            return ParamsOutput(x_out, self.edge_out(e))  # [E, D]
        node_batch, b = graph_index(batch), graph_count(batch)
        r = self.node_readout(torch.cat([canonicalise(h, kind), emb], dim=1))  # [N, H] invariant
        pooled = torch.cat([
            scatter(r, node_batch, 0, dim_size=b, reduce="mean"),
            scatter(r, node_batch, 0, dim_size=b, reduce="max"),
            scatter(canonicalise(e, ekind), node_batch[edge_index[0]], 0, dim_size=b, reduce="mean"),
        ], dim=1)  # [B, 3H]
        return self.readout(pooled)  # [B, out_dim]


@register_model
class ScaleGMNB(ScaleGMN):
    """Bidirectional ScaleGMN: also passes messages backwards along edges (reciprocal edge relation)."""

    name: ClassVar[str] = "scalegmn-b"
    config_class: ClassVar[type] = ScaleGMNBConfig
