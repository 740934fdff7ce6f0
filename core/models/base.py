"""Shared pieces of every metanetwork: typed configs, the `MetaNetwork` base class, the params-head
output type and symmetry-aware input normalisation.

A metanetwork reads a PyG `Batch` of `NeuralGraph`s and returns either
- head="graph":  an invariant per-graph output `[B, out_dim]`, or
- head="params": an equivariant per-node / per-edge output `ParamsOutput(x [N, 5], edge_attr [E, D])` with
  the shapes of `batch.x` / `batch.edge_attr`; `GraphLayout.params_from_features` turns it into a
  per-parameter update of each input network (only positions that hold parameters matter).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Iterable, NamedTuple, TypeVar

import torch
from torch import nn

from core.errors import WeightSpaceError
from core.graph.layout import INPUT, NODE_FEATURES, OUTPUT
from core.options import Option, names_where, register_by_name

HEADS = ("graph", "params")

# Config fields `python -m core train` offers; a model takes the ones its config class has.
MODEL_OPTIONS = (
    Option("hidden", int, "metanetwork width"),
    Option("layers", int, "metanetwork depth"),
    Option("edge_hidden", int, "width of the edge states (default: --hidden)"),
    Option("dropout", float, "dropout rate in the layers and the readout while training (default 0)"),
    Option("probes", int, "probe features: activations at this many learned coordinates (INRs) or fixed "
                          "MNIST-5k probe images (networks on images)"),
    Option("reference_centred", bool, "graph head: pooled features minus those of the training networks' mean, "
                                      "on a fitted scale (default); --no-reference-centred: the NFN paper's head"),
)


class ModelError(WeightSpaceError, ValueError):
    """A metanetwork cannot be built or cannot read the given input."""


class ParamsOutput(NamedTuple):
    """Equivariant per-node / per-edge output (same shapes as `batch.x` / `batch.edge_attr`)."""

    x: torch.Tensor  # [N_total, 5]
    edge_attr: torch.Tensor  # [E_total, D]


@torch.no_grad()
def zero_update(*params: torch.Tensor) -> None:
    """Zero the parameters of a params head's last map, so an untrained editor proposes Δθ = 0 (it starts at the
    identity edit; the gradients of these parameters are their inputs times the loss gradient, so they still learn).
    Without it a random first update of the order of the weights themselves ruins the INR before training starts."""
    for p in params:
        p.zero_()


@dataclass
class ModelConfig:
    """Hyper-parameters shared by every metanetwork (subclasses add model-specific ones)."""

    hidden: int = 64  # width of node (and edge) representations
    layers: int = 4  # message-passing / transformer / MLP layers
    dropout: float = 0.0
    edge_dim: int = 1  # input edge feature size = grid_size² of the graphs the model reads
    readout_hidden: int = 64  # width of the graph-level readout MLP
    max_positions: int = 64  # learned positional embeddings for input/output neurons (index capped)
    max_layers: int = 16  # learned embeddings per hidden neuron layer (layer index capped)
    normalise: bool = True  # apply the statistics of `fit_normalisation` (permutation-only models)

    kind: ClassVar[str] = "base"

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (with the config kind) for saving a run."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Inverse of `to_dict`; unknown keys are an error (catches typos in saved configs)."""
        d = dict(d)
        d.pop("kind", None)
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ModelError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def replace(self, **overrides: Any) -> "ModelConfig":
        """A copy with some fields changed; unknown field names are an error."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise ModelError(f"{type(self).__name__} has no field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)


def require_cpp_compiler() -> None:
    """Raise ModelError unless torch.compile's CPU backend finds the C++ compiler it builds its code with."""
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as exc:  # torch's InvalidCxxCompiler (its module moves between releases)
        raise ModelError("compiling on the CPU (--compile) needs a C++ compiler for torch.compile, e.g. "
                         "`apt-get install g++`; or run without --compile (same results)") from exc


class MetaNetwork(nn.Module):
    """Base class: `forward(batch) -> Tensor[B, out_dim]` (head="graph") or `ParamsOutput` (head="params")."""

    name: ClassVar[str] = "base"
    symmetries: ClassVar[tuple[str, ...]] = ()  # symmetry kinds the model is exactly equivariant to
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    heads: ClassVar[tuple[str, ...]] = HEADS  # the heads it can be built with
    # reads one architecture's flat parameter vector: runs build it with `architecture=` the zoo's only one
    fixed_architecture: ClassVar[bool] = False
    # trained with random symmetry transforms of its inputs unless told otherwise (models that do not build
    # all of the symmetries in)
    augment_by_default: ClassVar[bool] = False
    normalises_input: ClassVar[bool] = True  # its config's `normalise` applies mean/std statistics of the zoo
    benchmark: ClassVar[bool] = True  # part of `bench tasks` by default

    @classmethod
    def weight_limit(cls, config: ModelConfig, dtype: torch.dtype = torch.float32) -> float:
        """The largest |weight| (and probe activation) of an input network that this model, built with `config`,
        reads finitely in `dtype`: zoos are screened with it (`core.tasks.generalization.unusable_networks`)."""
        from core.models.layers.probe_features import safe_magnitude

        return safe_magnitude(dtype)

    @classmethod
    def options(cls) -> tuple[Option, ...]:
        """The `MODEL_OPTIONS` this model's config has (the train CLI offers them)."""
        names = {f.name for f in fields(cls.config_class)}
        return tuple(o for o in MODEL_OPTIONS if o.name in names)

    def __init__(self, config: ModelConfig, out_dim: int, head: str = "graph"):
        super().__init__()
        if head not in self.heads:
            raise ModelError(f"{self.name} has no {head!r} head; choose one of {', '.join(self.heads)}")
        if out_dim < 1 and head == "graph":
            raise ModelError(f"out_dim must be ≥ 1, got {out_dim}")
        self.config = config
        self.out_dim = int(out_dim)
        self.head = head

    # ------------------------------------------------------------------ input checks
    def check_batch(self, batch: Any) -> None:
        """Raise ModelError when the batch does not look like a Batch of NeuralGraphs this model reads."""
        for key in ("x", "edge_index", "edge_attr"):
            if getattr(batch, key, None) is None:
                raise ModelError(f"{self.name} reads NeuralGraph batches; the input has no {key!r}")
        if batch.x.dim() != 2 or batch.x.shape[1] != NODE_FEATURES:
            raise ModelError(f"node features must be [N, {NODE_FEATURES}], got {tuple(batch.x.shape)}")
        if batch.edge_attr.dim() != 2 or batch.edge_attr.shape[1] != self.config.edge_dim:
            raise ModelError(
                f"{self.name} was built for edge_dim={self.config.edge_dim} (grid_size²) but the graphs have "
                f"{batch.edge_attr.shape[1] if batch.edge_attr.dim() == 2 else tuple(batch.edge_attr.shape)}; "
                "convert all graphs with one grid_size and build the model with edge_dim=grid_size**2")

    def compile_layers(self, backend: str = "inductor") -> "MetaNetwork":
        """torch.compile each layer in place: same weights and state_dict, faster steps after a one-off
        compilation (tens of seconds; again when batch shapes change). `backend="eager"` traces only (tests)."""
        if backend == "inductor" and any(p.device.type == "cpu" for p in self.parameters()):
            require_cpp_compiler()
        for layer in getattr(self, "layers", []):
            # Dynamo keys compiled graphs by code object, so every model's layers share one cache of 8
            # entries by default: {train, eval} × {float32, bfloat16} × a few architectures overflow it
            # and the rest silently runs eagerly (seen in `bench models`). Room for many variants:
            layer.compile(backend=backend, recompile_limit=64)
        return self

    # ------------------------------------------------------------------ normalisation
    def fit_normalisation(self, graphs: Any) -> "MetaNetwork":
        """Compute input statistics from training graphs (a Batch or list of NeuralGraphs); no-op by default."""
        return self

    def extra_repr(self) -> str:
        return f"name={self.name}, head={self.head}, out_dim={self.out_dim}"


MODELS: dict[str, type[MetaNetwork]] = {}
M = TypeVar("M", bound=type[MetaNetwork])


def register_model(cls: M) -> M:
    """Class decorator: make a MetaNetwork available by its `name` (CLI, runs, benchmarks, l2o, app)."""
    return register_by_name(MODELS, cls, ModelError, "model")


def model_names(where: Callable[[type[MetaNetwork]], bool] = lambda cls: True) -> list[str]:
    """Names of the registered models whose class satisfies `where`, in registration order."""
    return names_where(MODELS, where)


def graph_index(batch: Any) -> torch.Tensor:
    """Graph id of each node [N] on the nodes' device (all zeros for a single graph that was never batched)."""
    ids = getattr(batch, "batch", None)
    if ids is not None:
        return ids
    return torch.zeros(batch.x.shape[0], dtype=torch.long, device=batch.x.device)


def graph_count(batch: Any) -> int:
    """Number of graphs in a batch (1 for a single graph)."""
    return int(batch.num_graphs) if hasattr(batch, "num_graphs") else 1


def as_batch(graphs: Any):
    """A Batch from a Batch, a NeuralGraph or a list of NeuralGraphs."""
    from torch_geometric.data import Batch, Data

    if isinstance(graphs, Batch):
        return graphs
    if isinstance(graphs, Data):
        return Batch.from_data_list([graphs])
    graphs = list(graphs)
    if not graphs:
        raise ModelError("fit_normalisation needs at least one graph")
    if all(isinstance(g, Batch) for g in graphs):
        graphs = [d for b in graphs for d in b.to_data_list()]
    return Batch.from_data_list(graphs)


def position_in_layer(batch: Any) -> torch.Tensor:
    """Index of each neuron inside its layer [N], recomputed from the structure.

    (`Batch.from_data_list` offsets `node_index` like an edge index because of its name, so the stored
    attribute is not reliable after batching; nodes of one layer of one graph are contiguous.)
    """
    from torch_geometric.utils import scatter

    n = batch.x.shape[0]
    key = graph_index(batch) * (int(batch.node_layer.max()) + 1) + batch.node_layer
    ar = torch.arange(n, device=batch.x.device)
    first = scatter(ar, key, 0, reduce="min")
    return ar - first[key]


def node_groups(node_role: torch.Tensor, node_layer: torch.Tensor, max_layers: int) -> torch.Tensor:
    """Normalisation / embedding group of each node: 0 input, 1..max_layers hidden layer (capped),
    max_layers+1 output."""
    hidden = node_layer.clamp(1, max_layers)
    g = torch.where(node_role == INPUT, torch.zeros_like(node_layer), hidden)
    return torch.where(node_role == OUTPUT, torch.full_like(node_layer, max_layers + 1), g)


class FeatureNormaliser(nn.Module):
    """Per-group (input / hidden layer l / output) and per-feature mean/std of node and edge features.

    Groups do not depend on a neuron's position inside its layer, so normalising commutes with
    permutations (never with scaling: scale-equivariant models must not use it).
    """

    def __init__(self, edge_dim: int, max_layers: int):
        super().__init__()
        g = max_layers + 2
        self.max_layers = max_layers
        self.register_buffer("node_mean", torch.zeros(g, NODE_FEATURES))
        self.register_buffer("node_std", torch.ones(g, NODE_FEATURES))
        self.register_buffer("edge_mean", torch.zeros(g, edge_dim))
        self.register_buffer("edge_std", torch.ones(g, edge_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, batch: Any) -> None:
        """Statistics over all nodes/edges of the batch, per group and column (edges take the target's group)."""
        from torch_geometric.utils import scatter

        groups = node_groups(batch.node_role, batch.node_layer, self.max_layers)
        egroups = groups[batch.edge_index[1]]
        g = self.node_mean.shape[0]
        for feat, grp, mean_buf, std_buf in ((batch.x, groups, self.node_mean, self.node_std),
                                             (batch.edge_attr, egroups, self.edge_mean, self.edge_std)):
            feat = feat.to(torch.float64)
            count = scatter(torch.ones_like(grp, dtype=torch.float64), grp, 0, dim_size=g, reduce="sum")[:, None]
            mean = scatter(feat, grp, 0, dim_size=g, reduce="sum") / count.clamp_min(1)
            var = scatter((feat - mean[grp]) ** 2, grp, 0, dim_size=g, reduce="sum") / count.clamp_min(1)
            std = var.sqrt()
            # constant columns (e.g. norm defaults, empty kernel cells) and unseen groups: leave as is
            std = torch.where(std > 1e-8, std, torch.ones_like(std))
            mean = torch.where(count > 0, mean, torch.zeros_like(mean))
            mean_buf.copy_(mean)
            std_buf.copy_(std)
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor, edge_attr: torch.Tensor, groups: torch.Tensor,
                edge_groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (x, edge_attr)."""
        x = (x - self.node_mean[groups].to(x)) / self.node_std[groups].to(x)
        edge_attr = (edge_attr - self.edge_mean[edge_groups].to(edge_attr)) / self.edge_std[edge_groups].to(edge_attr)
        return x, edge_attr


def mlp(sizes: Iterable[int], act: type[nn.Module] = nn.SiLU, dropout: float = 0.0,
        last_act: bool = False, norm: bool = False,
        layer_norm: Callable[[int], nn.Module] = nn.LayerNorm) -> nn.Sequential:
    """Plain MLP: Linear (→ `layer_norm` with `norm`) → act (→ dropout) … → Linear."""
    sizes = list(sizes)
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_act:
            if norm:
                mods.append(layer_norm(b))
            mods.append(act())
            if dropout > 0:
                mods.append(nn.Dropout(dropout))
    return nn.Sequential(*mods)
