"""`nfn-np`, `nfn-hnp`: Neural Functional Networks (Zhou et al. 2023) from the `nfn` package, wrapped to read
our NeuralGraph batches. Fixed-architecture zoos of plain Linear/Conv chains only (no residual, flatten
or normalisation edges); anything else raises a ModelError.

    [W_l, b_l] → NPLinear/HNPLinear (1 → H) → ReLU → … (L layers) → NPPool/HNPPool → f(θ)
    graph head:  MLP((f(θ) − f(θ̄)) / s)    θ̄ = the training networks' mean, s a scalar (`fit_normalisation`)
    params head: … → NP/HNPLinear (H → 1) → Δθ
    The params head's last layer starts at zero (Δθ = 0 untrained; the nfn package initialises it randomly).

The graph head's reference centring and scale (`layers/reference_norm.py`) are this project's, not the NFN
paper's (which feeds the pooled features to the MLP as they are; `reference_centred=False` restores that). Without
them nfn-np stayed at chance on the shared-init MNIST-5k zoo (0.094) and reached 0.465 ± 0.004 on the bundled one
(30 epochs); figures with them in docs/benchmarks/inr_learning.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from core.graph.layout import EDGE_CONV, EDGE_LINEAR, layout_for
from core.models.base import (
    MetaNetwork,
    ModelConfig,
    ModelError,
    ParamsOutput,
    as_batch,
    mlp,
    register_model,
    zero_update,
)
from core.models.fixed_arch import architecture_from_config, features_from_flat, flat_from_batch
from core.models.layers.reference_norm import ReferenceNorm
from core.network.spec import Architecture, BatchNorm, Conv, LayerNorm, Linear, unflatten_params


@dataclass
class NFNConfig(ModelConfig):
    """NFN hyper-parameters; `architecture` is the fixed input architecture (Architecture.to_dict())."""

    architecture: dict | None = None
    io_embed: bool = True  # NP only: learned input/output position embeddings
    # graph head: pooled features measured from those of the training networks' mean, on a fitted scale
    # (`layers/reference_norm.py`); False: the pooled features as they are, as in the NFN paper
    reference_centred: bool = True

    kind: ClassVar[str] = "nfn"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NFNConfig":
        """As `ModelConfig.from_dict`; a config saved before `reference_centred` existed has no such head."""
        return super().from_dict({"reference_centred": False, **d})


def network_spec(arch: Architecture):
    """nfn NetworkSpec of a plain Linear/Conv chain (ModelError otherwise)."""
    from nfn.common import ArraySpec, NetworkSpec

    layout = layout_for(arch)
    if any(isinstance(op, (BatchNorm, LayerNorm)) for op in arch.ops):
        raise ModelError("nfn models read plain Linear/Conv chains; this network has normalisation layers")
    if not all(int(t) in (EDGE_LINEAR, EDGE_CONV) for t in layout.edge_type.unique()):
        raise ModelError("nfn models read plain Linear/Conv chains; this network has residual or flatten→linear edges")
    weights, biases = [], []
    for i in arch.weight_layers():
        op = arch.ops[i]
        if isinstance(op, Conv) and op.dims != 2:
            raise ModelError("nfn models support 2-d convolutions only")
        if isinstance(op, Linear):
            shape = (op.out_features, op.in_features)
        else:
            shape = (op.out_channels, op.in_channels, *op.kernel_size)
        weights.append(ArraySpec(shape))
        biases.append(ArraySpec((shape[0],)))
    return NetworkSpec(weights, biases)


class NFNBase(MetaNetwork):
    """Common wrapper: NeuralGraph batch → nfn WeightSpaceFeatures → nfn layers → head."""

    symmetries: ClassVar[tuple[str, ...]] = ("permutation",)
    config_class: ClassVar[type] = NFNConfig
    fixed_architecture: ClassVar[bool] = True
    # Off although the scale / sign symmetries are not built in: with every symmetry kind drawn nfn-np stayed at
    # chance on every MNIST-5k INR zoo (0.106 faithful, 0.094 shared init), without them it reaches 0.465 ± 0.004
    # (3 seeds). The culprit was the sine phase shifts, which training augmentation no longer draws; with
    # permutations and sign flips it reaches 0.464, no gain (docs/benchmarks/inr_learning.md). `--augment` turns
    # them on.
    augment_by_default: ClassVar[bool] = False
    benchmark: ClassVar[bool] = False
    hnp: ClassVar[bool] = False

    def __init__(self, config: NFNConfig, out_dim: int, head: str = "graph"):
        super().__init__(config, out_dim, head)
        from nfn.layers import HNPLinear, HNPPool, NPLinear, NPPool

        self.architecture = architecture_from_config(self.name, config.architecture)
        self.spec = network_spec(self.architecture)
        h = config.hidden

        def layer(c_in: int, c_out: int) -> nn.Module:
            if self.hnp:
                return HNPLinear(self.spec, c_in, c_out)
            return NPLinear(self.spec, c_in, c_out, io_embed=config.io_embed)

        self.nfn_layers = nn.ModuleList([layer(1 if i == 0 else h, h) for i in range(config.layers)])
        if head == "graph":
            pool = HNPPool if self.hnp else NPPool
            self.pool = pool(self.spec)
            features = pool.get_num_outs(self.spec) * h
            self.reference_norm = ReferenceNorm() if config.reference_centred else None
            if self.reference_norm is not None:  # θ̄, flat [1, P]; zeros until `fit_normalisation`
                self.register_buffer("reference", torch.zeros(1, self.architecture.num_parameters))
            self.readout = mlp([features, config.readout_hidden, out_dim], dropout=config.dropout)
        else:
            self.reference_norm = None
            self.out_layer = layer(h, 1)
            # an untrained editor proposes no weight update: every map of the last layer starts at zero (its
            # position embeddings stay random: they only feed those maps)
            zero_update(*(p for n, p in self.out_layer.named_parameters() if not n.endswith("embed")))
        self.register_buffer("scale", torch.ones(len(self.spec), 2))  # per layer: weight, bias std

    def weight_space_features(self, flat: torch.Tensor):
        """Flat parameters [B, P] → nfn WeightSpaceFeatures with one channel."""
        from nfn.common import WeightSpaceFeatures

        params = unflatten_params(self.architecture, flat)
        weights, biases = [], []
        for i, op_index in enumerate(self.architecture.weight_layers()):
            op = self.architecture.ops[op_index]
            w = params[f"{op.name}.weight"]
            b = params.get(f"{op.name}.bias", w.new_zeros(w.shape[0], w.shape[1]))
            weights.append(w[:, None])  # [B, 1, out, in, (h, w)]
            biases.append(b[:, None])  # [B, 1, out]
        return WeightSpaceFeatures(weights, biases)

    @torch.no_grad()
    def fit_normalisation(self, graphs: Any) -> "NFNBase":
        """Per weight layer: std of its weights and of its biases (a scalar per tensor keeps permutation symmetry);
        with a reference-centred graph head, the reference θ̄ = the networks' mean and the head's scale."""
        flat, _ = flat_from_batch(self.name, self.architecture, as_batch(graphs))
        wsf = self.weight_space_features(flat)
        for i, (w, b) in enumerate(zip(wsf.weights, wsf.biases)):
            for j, t in enumerate((w, b)):
                s = float(t.double().std()) if t.numel() > 1 else 1.0
                self.scale[i, j] = s if s > 1e-8 else 1.0
        if self.reference_norm is not None:
            self.reference = flat.double().mean(0, keepdim=True).to(self.reference)
            pooled = torch.cat([self._features(flat[i:i + 64]) for i in range(0, len(flat), 64)])  # bounded memory
            self.reference_norm.fit(pooled, self._features(self.reference.to(flat)))
        return self

    def _features(self, flat: torch.Tensor):
        """Flat parameters [B, P] → the NFN layers' output (WeightSpaceFeatures); pooled [B, F] for the graph head."""
        from nfn.common import WeightSpaceFeatures

        wsf = self.weight_space_features(flat)
        if self.config.normalise:
            wsf = WeightSpaceFeatures([w / self.scale[i, 0].to(w) for i, w in enumerate(wsf.weights)],
                                      [v / self.scale[i, 1].to(v) for i, v in enumerate(wsf.biases)])
        for layer in self.nfn_layers:
            wsf = layer(wsf).map(F.relu)
        return self.pool(wsf).flatten(1) if self.head == "graph" else wsf

    def forward(self, batch: Any):
        self.check_batch(batch)
        flat, layout = flat_from_batch(self.name, self.architecture, batch)
        b = flat.shape[0]
        if self.head == "graph":
            if self.reference_norm is None:
                return self.readout(self._features(flat))  # [B, out_dim]
            pooled = self._features(torch.cat([flat, self.reference.to(flat)]))  # θ̄ rides along: [B + 1, F]
            return self.readout(self.reference_norm(pooled[:b], pooled[b:]))
        out = self.out_layer(self._features(flat))
        flat = torch.cat([t.reshape(b, -1) for w, v in zip(out.weights, out.biases) for t in (w, v)], dim=1)  # [B, P]
        if flat.shape[1] != layout.num_parameters:  # layers without a bias: drop the bias outputs
            flat = torch.cat([t.reshape(b, -1) for w, v, op in zip(out.weights, out.biases, self._ops()) for t in
                              ((w, v) if op.bias else (w,))], dim=1)
        return ParamsOutput(*features_from_flat(layout, flat))

    def _ops(self):
        return [self.architecture.ops[i] for i in self.architecture.weight_layers()]


@register_model
class NFNNP(NFNBase):
    """NFN with NP layers (hidden neurons and — without io embeddings — input/output neurons exchangeable)."""

    name: ClassVar[str] = "nfn-np"


@register_model
class NFNHNP(NFNBase):
    """NFN with HNP layers (only hidden neurons exchangeable)."""

    name: ClassVar[str] = "nfn-hnp"
    hnp: ClassVar[bool] = True
