"""Shared helpers of the metanetwork tests: small architectures, random zoos and a local group action
(permute hidden neurons, scale/sign-flip them) on NeuralGraphs of norm-free networks."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch

from core.graph import to_graphs
from core.graph.layout import HIDDEN, layout_for
from core.network.spec import (
    Activation,
    Architecture,
    Conv,
    GlobalAvgPool,
    Linear,
    mlp_architecture,
    siren_architecture,
)


def small_cnn() -> Architecture:
    """conv(1→4, 3×3) → relu → conv(4→4, 3×3) → relu → global average pool → linear(4→3)."""
    return Architecture((Conv("c1", 1, 4, (3, 3)), Activation("relu"), Conv("c2", 4, 4, (3, 3)), Activation("relu"),
                         GlobalAvgPool(), Linear("fc", 4, 3)), (1, 8, 8))


def mixed_mlp() -> Architecture:
    """3 → 6 (relu) → 5 (tanh) → 2: positive scaling and sign flips in one network."""
    return Architecture((Linear("l0", 3, 6), Activation("relu"), Linear("l1", 6, 5), Activation("tanh"),
                         Linear("l2", 5, 2)), (3,))


ARCHS = {
    "siren": lambda: siren_architecture(hidden=(8, 8)),
    "relu": lambda: mlp_architecture([3, 7, 6, 2], "relu"),
    "leaky": lambda: mlp_architecture([3, 5, 4, 2], "leaky_relu"),
    "tanh": lambda: mlp_architecture([3, 7, 6, 2], "tanh"),
    "mixed": mixed_mlp,
    "cnn": small_cnn,
}


def random_batch(arch: Architecture, count: int, seed: int = 0, grid_size: int | None = None,
                 dtype: torch.dtype = torch.float64) -> Batch:
    """A Batch of `count` networks with random parameters."""
    gen = torch.Generator().manual_seed(seed)
    flat = torch.randn(count, arch.num_parameters, generator=gen, dtype=dtype) * 0.7
    return to_graphs(arch, flat, grid_size)


def random_action(arch: Architecture, kinds: set[str], seed: int, grid_size: int | None = None):
    """Per hidden layer: a permutation and a per-neuron factor (q > 0 log-uniform in 1e-2..1e2 for relu /
    leaky_relu layers if 'scale' in kinds, ±1 for tanh/sine layers if 'sign')."""
    gen = torch.Generator().manual_seed(seed)
    layout = layout_for(arch, grid_size)
    n = layout.num_nodes
    new_to_old = torch.arange(n)
    d = torch.ones(n, dtype=torch.float64)
    for layer in layout.layers:
        if layer.role != HIDDEN:
            continue
        sl = slice(layer.start, layer.start + layer.size)
        if "permutation" in kinds:
            new_to_old[sl] = layer.start + torch.randperm(layer.size, generator=gen)
        if "scale" in kinds and layer.activation in ("relu", "leaky_relu"):
            d[sl] = 10.0 ** (4 * torch.rand(layer.size, generator=gen, dtype=torch.float64) - 2)
        if "sign" in kinds and layer.activation in ("tanh", "sine"):
            d[sl] = torch.randint(0, 2, (layer.size,), generator=gen).double() * 2 - 1
    return new_to_old, d


def act_on_features(arch: Architecture, grid_size: int, x: torch.Tensor, e: torch.Tensor,
                    action) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the action to one graph's node [N, 5] and edge [E, D] features (bias column and edges scale)."""
    new_to_old, d = action
    layout = layout_for(arch, grid_size)
    n = layout.num_nodes
    src, dst = layout.edge_index
    keys = src * n + dst
    order = torch.argsort(keys)
    old_keys = new_to_old[src] * n + new_to_old[dst]
    old_edge = order[torch.searchsorted(keys[order], old_keys)]
    assert torch.equal(keys[old_edge], old_keys)
    x = x[new_to_old].clone()
    x[:, 0] = x[:, 0] * d.to(x)
    e = e[old_edge] * (d[dst] / d[src]).to(e)[:, None]
    return x, e


def act_on_batch(batch: Batch, kinds: set[str], seed: int) -> tuple[Batch, list]:
    """A transformed copy of a Batch (a fresh random element per graph) and the elements used."""
    graphs, actions = [], []
    for i, g in enumerate(batch.to_data_list()):
        action = random_action(g.architecture, kinds, seed + i, g.grid_size)
        g = g.clone()
        g.x, g.edge_attr = act_on_features(g.architecture, g.grid_size, g.x, g.edge_attr, action)
        graphs.append(g)
        actions.append(action)
    return Batch.from_data_list(graphs), actions


def per_graph_params(batch: Batch, x: torch.Tensor, e: torch.Tensor, actions: list | None = None) -> list[torch.Tensor]:
    """Split per-node/per-edge outputs per graph (optionally act on each first) and map each to flat parameters."""
    out = []
    for i in range(batch.num_graphs):
        arch, grid = batch.architecture[i], int(batch.grid_size[i])
        layout = layout_for(arch, grid)
        ns, es = int(batch._slice_dict["x"][i]), int(batch._slice_dict["edge_attr"][i])
        xi, ei = x[ns:ns + layout.num_nodes], e[es:es + layout.num_edges]
        if actions is not None:
            xi, ei = act_on_features(arch, grid, xi, ei, actions[i])
        out.append(layout.params_from_features(xi[None], ei[None])[0])
    return out
