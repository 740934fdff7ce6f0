"""Where every parameter of an architecture lives in its neural graph.

A `GraphLayout` is computed once per (architecture, grid size) and cached. It fixes the node and edge
structure and two index maps, flat parameter index → (node, column) and → (edge, position), so that
converting a whole zoo of same-architecture networks is one scatter, and going back is one gather.

Graph conventions (see DESIGN.md §1):
- one node per neuron: input features (or input channels for a CNN), then every Linear/Conv output,
  layer by layer; node features `x` = [bias, norm_weight, norm_bias, norm_mean, norm_var]
  (identity defaults 0, 1, 0, 0, 1 where a layer has no bias or normalisation);
- one edge per weight (per kernel for a conv), source = input neuron, target = output neuron; the edge
  feature is a G×G patch flattened (G = `grid_size`): a conv kernel is placed centrally, a linear weight
  sits in the centre cell, and a linear layer that reads a flattened conv map gets one edge per
  (channel, output) whose patch is the channel's H×W block of weights;
- identity skip connections add `residual` edges (channel c → channel c, 1 in the centre cell).

Each op kind adds itself to the layout in one `layout_op` handler.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch

from core.errors import ArchitectureError, UnsupportedLayerError
from core.network.spec import (
    ACTIVATION_IDS,
    Activation,
    Architecture,
    BatchNorm,
    Conv,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    Linear,
    Offset,
    Pool,
    Residual,
)

# node feature columns
BIAS, NORM_WEIGHT, NORM_BIAS, NORM_MEAN, NORM_VAR = range(5)
NODE_FEATURES = 5
NODE_DEFAULTS = (0.0, 1.0, 0.0, 0.0, 1.0)

# node roles
INPUT, HIDDEN, OUTPUT = 0, 1, 2

# edge types
EDGE_LINEAR, EDGE_CONV, EDGE_FLATTEN, EDGE_RESIDUAL = 0, 1, 2, 3
EDGE_TYPE_NAMES = ("linear", "conv", "flatten", "residual")


@dataclass(frozen=True)
class NeuronLayer:
    """A contiguous block of nodes: the neurons (or channels) one layer outputs."""

    start: int
    size: int
    role: int
    activation: str = "identity"
    norm: str | None = None  # "batch_norm" | "layer_norm" | None
    op_index: int = -1  # index of the Linear/Conv op that produced it (-1 for the input layer)


@dataclass(frozen=True)
class WeightBlock:
    """The edges of one Linear/Conv op."""

    op_index: int
    name: str
    source_layer: int
    target_layer: int
    edge_start: int
    patch: tuple[int, int]  # (rows, cols) of each edge's patch: kernel, (1, 1) or flattened spatial map
    edge_type: int


@dataclass
class LayoutBuilder:
    """State while the ops of an architecture are laid out one by one (see `layout_op`)."""

    shapes: list[tuple[int, ...]]  # value shapes of the architecture (entry i is op i's input)
    last_weight_op: int
    flattens_input: bool
    layers: list[dict]  # NeuronLayer fields, mutable while activations and norms attach
    blocks: list[WeightBlock] = field(default_factory=list)
    residual_pairs: list[tuple[int, int]] = field(default_factory=list)  # (source layer, target layer)
    norms: list[tuple[str, int]] = field(default_factory=list)  # (norm op name, neuron layer it normalises)
    value_layer: list[int] = field(default_factory=lambda: [0])  # layer carrying the value after op i (i + 1)
    pending_flatten: tuple[int, ...] | None = None  # spatial shape of a flattened conv map
    num_nodes: int = 0
    num_edges: int = 0

    @property
    def current(self) -> int:
        """The neuron layer that carries the value the next op reads."""
        return self.value_layer[-1]

    def add_weight_layer(self, i: int, op: Linear | Conv, size: int, patch: tuple[int, ...], edge_type: int,
                         fan_in: int) -> None:
        """Append the neuron layer a Linear/Conv op outputs and the block of edges that feed it."""
        cur = self.current
        have = self.layers[cur]["size"]
        if fan_in != have:
            raise ArchitectureError(
                f"op {i} ({op.name}) reads {fan_in} inputs but the previous layer has {have} neurons"
            )
        role = OUTPUT if i == self.last_weight_op else HIDDEN
        self.layers.append(dict(start=self.num_nodes, size=size, role=role, activation="identity", norm=None,
                                op_index=i))
        self.blocks.append(WeightBlock(i, op.name, cur, len(self.layers) - 1, self.num_edges, tuple(patch), edge_type))
        self.num_nodes += size
        self.num_edges += size * fan_in
        self.pending_flatten = None
        self.value_layer.append(len(self.layers) - 1)


@functools.singledispatch
def layout_op(op: object, b: LayoutBuilder, i: int) -> None:
    """Add op `i` to the layout under construction; one handler per op kind. A handler that outputs a new
    neuron layer appends it through `b.add_weight_layer`; any other leaves the value on `b.current`."""
    raise UnsupportedLayerError(f"op {i} ({op!r}) has no place in a neural graph")


@layout_op.register(Linear)
def _(op: Linear, b: LayoutBuilder, i: int) -> None:
    if b.pending_flatten is None:
        b.add_weight_layer(i, op, op.out_features, (1, 1), EDGE_LINEAR, op.in_features)
        return
    # a linear layer reading a flattened conv map: one edge per (channel, output), patch = the channel's map
    flat = b.pending_flatten
    patch = (1, flat[0]) if len(flat) == 1 else tuple(flat)
    if len(patch) != 2:
        raise UnsupportedLayerError(f"op {i} ({op.name}): flattening a map with >2 spatial dims")
    b.add_weight_layer(i, op, op.out_features, patch, EDGE_FLATTEN, b.layers[b.current]["size"])


@layout_op.register(Conv)
def _(op: Conv, b: LayoutBuilder, i: int) -> None:
    patch = (1, op.kernel_size[0]) if op.dims == 1 else tuple(op.kernel_size)
    if op.dims > 2:
        raise UnsupportedLayerError(f"op {i} ({op.name}): only 1-d and 2-d convolutions are supported")
    b.add_weight_layer(i, op, op.out_channels, patch, EDGE_CONV, op.in_channels)


@layout_op.register(Activation)
def _(op: Activation, b: LayoutBuilder, i: int) -> None:
    layer = b.layers[b.current]
    if layer["activation"] != "identity" and op.fn != "identity":
        raise UnsupportedLayerError(f"op {i}: two activations on the same layer cannot be represented")
    layer["activation"] = op.fn
    b.value_layer.append(b.current)


@layout_op.register(BatchNorm)
@layout_op.register(LayerNorm)
def _(op: BatchNorm | LayerNorm, b: LayoutBuilder, i: int) -> None:
    layer = b.layers[b.current]
    if b.pending_flatten is not None:
        raise UnsupportedLayerError(f"op {i} ({op.name}): normalisation of a flattened conv map")
    if layer["norm"] is not None:
        raise UnsupportedLayerError(f"op {i} ({op.name}): two normalisations on the same layer")
    if op.num_features != layer["size"]:
        raise ArchitectureError(f"op {i} ({op.name}) normalises {op.num_features} features, layer has {layer['size']}")
    layer["norm"] = op.kind
    b.norms.append((op.name, b.current))  # its parameters become node features of this layer
    b.value_layer.append(b.current)


@layout_op.register(Flatten)
def _(op: Flatten, b: LayoutBuilder, i: int) -> None:
    spatial = b.shapes[i][1:]
    if b.current != 0 and math.prod(spatial) > 1:
        b.pending_flatten = spatial
    b.value_layer.append(b.current)


@layout_op.register(Residual)
def _(op: Residual, b: LayoutBuilder, i: int) -> None:
    src, cur = b.value_layer[op.source + 1], b.current
    if src == 0 and b.flattens_input:
        raise UnsupportedLayerError(f"op {i}: a skip connection from a flattened input")
    if b.layers[src]["size"] != b.layers[cur]["size"]:
        raise ArchitectureError(
            f"op {i}: skip connection joins layers of {b.layers[src]['size']} and {b.layers[cur]['size']} neurons"
        )
    b.residual_pairs.append((src, cur))  # residual edges go after all weight edges
    b.value_layer.append(cur)


@layout_op.register(GlobalAvgPool)
@layout_op.register(Pool)
@layout_op.register(Offset)
def _(op: GlobalAvgPool | Pool | Offset, b: LayoutBuilder, i: int) -> None:
    b.value_layer.append(b.current)  # no parameters and no new neurons: the value stays on its layer


class GraphLayout:
    """Node/edge structure of an architecture's neural graph and the parameter ↔ feature index maps."""

    def __init__(self, architecture: Architecture, grid_size: int | None = None):
        self.architecture = architecture
        ops = architecture.ops
        weight_ops = architecture.weight_layers()
        if not weight_ops:
            raise UnsupportedLayerError("the network has no Linear or Conv layer, so it has no neural graph")

        # Flattening the raw input (an MLP on images) makes every input pixel an input neuron.
        first = ops[weight_ops[0]]
        flattens_input = any(isinstance(op, Flatten) for op in ops[: weight_ops[0]])
        n_inputs = math.prod(architecture.input_shape) if flattens_input else architecture.input_shape[0]
        if isinstance(first, Linear) and first.in_features != n_inputs:
            raise ArchitectureError(f"the first layer reads {first.in_features} features, the input has {n_inputs}")

        input_layer = dict(start=0, size=n_inputs, role=INPUT, activation="identity", norm=None, op_index=-1)
        b = LayoutBuilder(architecture.value_shapes(), weight_ops[-1], flattens_input, [input_layer],
                          num_nodes=n_inputs)
        for i, op in enumerate(ops):
            layout_op(op, b, i)

        if b.layers[-1]["role"] != OUTPUT:  # pragma: no cover - the last weight op is the output
            raise ArchitectureError("the last layer is not an output layer")
        needed = max(max(block.patch) for block in b.blocks)
        self.grid_size = needed if grid_size is None else int(grid_size)
        if self.grid_size < needed:
            raise ArchitectureError(f"grid size {self.grid_size} is smaller than the largest kernel/patch ({needed})")
        self.layers = [NeuronLayer(**d) for d in b.layers]
        self.blocks = b.blocks
        self.num_nodes = b.num_nodes
        self.num_edges = b.num_edges + sum(b.layers[c]["size"] for _, c in b.residual_pairs)
        self.edge_dim = self.grid_size ** 2
        self._build_structure(b.residual_pairs)
        self._build_index_maps(b.norms)

    # ------------------------------------------------------------------ structure
    def _patch_positions(self, patch: tuple[int, int]) -> torch.Tensor:
        """Flat grid cell of each patch entry (row-major), placing the patch centrally."""
        g, (r, c) = self.grid_size, patch
        rows = torch.arange(r) + (g - r) // 2
        cols = torch.arange(c) + (g - c) // 2
        return (rows[:, None] * g + cols[None, :]).reshape(-1)

    def _build_structure(self, residual_pairs: list[tuple[int, int]]) -> None:
        src, dst, etype, elayer = [], [], [], []
        for k, b in enumerate(self.blocks):
            s, t = self.layers[b.source_layer], self.layers[b.target_layer]
            # edge e = out * fan_in + in, matching weight.reshape(out, in, ...) order
            dst.append((torch.arange(t.size) + t.start).repeat_interleave(s.size))
            src.append((torch.arange(s.size) + s.start).repeat(t.size))
            etype.append(torch.full((t.size * s.size,), b.edge_type))
            elayer.append(torch.full((t.size * s.size,), k))
        centre = (self.grid_size // 2) * self.grid_size + self.grid_size // 2
        self.residual_edge_start = sum(x.numel() for x in src)
        for a, c in residual_pairs:
            la, lc = self.layers[a], self.layers[c]
            src.append(torch.arange(la.size) + la.start)
            dst.append(torch.arange(lc.size) + lc.start)
            etype.append(torch.full((la.size,), EDGE_RESIDUAL))
            elayer.append(torch.full((la.size,), -1))
        self.edge_index = torch.stack([torch.cat(src), torch.cat(dst)]).long()
        self.edge_type = torch.cat(etype).long()
        self.edge_layer = torch.cat(elayer).long()

        n = self.num_nodes
        self.node_role = torch.empty(n, dtype=torch.long)
        self.node_layer = torch.empty(n, dtype=torch.long)
        self.node_activation = torch.empty(n, dtype=torch.long)
        self.node_index = torch.empty(n, dtype=torch.long)
        for li, layer in enumerate(self.layers):
            sl = slice(layer.start, layer.start + layer.size)
            self.node_role[sl] = layer.role
            self.node_layer[sl] = li
            self.node_activation[sl] = ACTIVATION_IDS[layer.activation]
            self.node_index[sl] = torch.arange(layer.size)
        self.base_x = torch.tensor(NODE_DEFAULTS, dtype=torch.float64).repeat(n, 1)
        self.base_edge_attr = torch.zeros(self.num_edges, self.edge_dim, dtype=torch.float64)
        self.base_edge_attr[self.residual_edge_start:, centre] = 1.0

    def _build_index_maps(self, norms: list[tuple[str, int]]) -> None:
        """flat parameter index → linear index into x.view(-1) or edge_attr.view(-1)."""
        offsets, start = {}, 0
        for key, shape in self.architecture.parameter_shapes():
            offsets[key] = (start, math.prod(shape))
            start += math.prod(shape)
        self.num_parameters = start
        x_src, x_dst, e_src, e_dst = [], [], [], []
        for b in self.blocks:
            s, t = self.layers[b.source_layer], self.layers[b.target_layer]
            off, n = offsets[f"{b.name}.weight"]
            area = b.patch[0] * b.patch[1]
            edge = torch.arange(t.size * s.size).repeat_interleave(area) + b.edge_start
            pos = self._patch_positions(b.patch).repeat(t.size * s.size)
            e_src.append(torch.arange(off, off + n))
            e_dst.append(edge * self.edge_dim + pos)
            if f"{b.name}.bias" in offsets:
                off, n = offsets[f"{b.name}.bias"]
                x_src.append(torch.arange(off, off + n))
                x_dst.append((torch.arange(t.size) + t.start) * NODE_FEATURES + BIAS)
        # normalisation parameters go to the nodes of the layer they normalise
        for name, li in norms:
            layer = self.layers[li]
            for suffix, col in (("weight", NORM_WEIGHT), ("bias", NORM_BIAS),
                                ("running_mean", NORM_MEAN), ("running_var", NORM_VAR)):
                if f"{name}.{suffix}" in offsets:
                    off, n = offsets[f"{name}.{suffix}"]
                    x_src.append(torch.arange(off, off + n))
                    x_dst.append((torch.arange(layer.size) + layer.start) * NODE_FEATURES + col)
        empty = torch.zeros(0, dtype=torch.long)
        self.x_source = torch.cat(x_src) if x_src else empty
        self.x_target = torch.cat(x_dst) if x_dst else empty
        self.edge_source = torch.cat(e_src)
        self.edge_target = torch.cat(e_dst)
        assert self.x_source.numel() + self.edge_source.numel() == self.num_parameters

    # ------------------------------------------------------------------ conversion
    def features_from_params(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat parameters [B, P] → node features [B, N, 5] and edge features [B, E, D] (one scatter)."""
        b = flat.shape[0]
        x = self.base_x.to(flat).repeat(b, 1, 1).view(b, -1)
        x[:, self.x_target] = flat[:, self.x_source]
        e = self.base_edge_attr.to(flat).repeat(b, 1, 1).view(b, -1)
        e[:, self.edge_target] = flat[:, self.edge_source]
        return x.view(b, self.num_nodes, NODE_FEATURES), e.view(b, self.num_edges, self.edge_dim)

    def params_from_features(self, x: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """Inverse of `features_from_params`: [B, N, 5] and [B, E, D] → flat [B, P] (one gather).

        Also maps per-node/per-edge model outputs of the same shapes back to a parameter update.
        """
        b = x.shape[0]
        flat = x.new_empty(b, self.num_parameters)
        flat[:, self.x_source] = x.reshape(b, -1)[:, self.x_target]
        flat[:, self.edge_source] = edge_attr.reshape(b, -1)[:, self.edge_target]
        return flat


@functools.lru_cache(maxsize=256)
def layout_for(architecture: Architecture, grid_size: int | None = None) -> GraphLayout:
    """Cached GraphLayout of an architecture."""
    return GraphLayout(architecture, grid_size)
