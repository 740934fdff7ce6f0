"""Probe features (Kofinas et al. 2024): run each input INR on K learned coordinates and give every neuron
its K activations as extra node features.

    a_i = [σ(z_i(p_1)), …, σ(z_i(p_K))]   (input neurons: the coordinates themselves)
    h_i ← h_i + W_p a_i

Activations of permuted neurons are permuted the same way, so permutation equivariance is exact; with a
bias-free lift, activations of ReLU neurons scale and those of tanh/sine neurons flip sign with the neuron,
so ScaleGMN's scale/sign equivariance is kept too. Only
plain MLP/INR networks (Linear, activations, offset) are probed; other graphs get zero probe features.
"""

from __future__ import annotations

import torch
from torch import nn

from core.graph.layout import layout_for
from core.models.base import graph_index
from core.network.execute import activate
from core.network.spec import Activation, Architecture, Linear, Offset, unflatten_params


def neuron_activations(architecture: Architecture, flat: torch.Tensor, points: torch.Tensor) -> torch.Tensor | None:
    """[B, N, K] value of every neuron (after its activation) at K input points, or None if not an MLP."""
    if any(not isinstance(op, (Linear, Activation, Offset)) for op in architecture.ops):
        return None
    params = unflatten_params(architecture, flat)
    b = flat.shape[0]
    x = points.to(flat).expand(b, -1, -1)  # [B, K, in]
    layers = [x]
    for op in architecture.ops:
        if isinstance(op, Linear):
            x = x @ params[f"{op.name}.weight"].transpose(1, 2)
            if f"{op.name}.bias" in params:
                x = x + params[f"{op.name}.bias"][:, None, :]
            layers.append(x)
        elif isinstance(op, Activation):
            x = activate(op, x)
            layers[-1] = x
    # offsets after the last layer do not belong to a neuron's own value
    return torch.cat(layers, dim=2).transpose(1, 2)  # [B, N, K]


class ProbeFeatures(nn.Module):
    """K learned probe coordinates in [-1, 1]^d and a linear lift of the activations to `hidden`."""

    def __init__(self, probes: int, hidden: int, input_dim: int = 2, bias: bool = True):
        super().__init__()
        self.points = nn.Parameter(torch.empty(probes, input_dim))  # [K, d]
        # bias-free for scale-equivariant models: a neuron's activations scale (relu) or flip sign (tanh, sine)
        # with its group element, exactly like its hidden state, so a linear map without bias keeps that
        self.lift = nn.Linear(probes, hidden, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.points, -1.0, 1.0)
        self.lift.reset_parameters()

    def forward(self, batch) -> torch.Tensor:
        """[N_total, hidden] probe embedding for a batch (zeros for graphs that cannot be probed)."""
        out = batch.x.new_zeros(batch.x.shape[0], self.lift.out_features)
        archs = batch.architecture if isinstance(batch.architecture, list) else [batch.architecture]
        n = batch.x.shape[0]
        ptr = batch.ptr if getattr(batch, "ptr", None) is not None else torch.tensor([0, n], device=batch.x.device)
        grids = batch.grid_size
        if not isinstance(grids, (list, tuple)):
            grids = [int(g) for g in torch.as_tensor(grids).reshape(-1)]
        by_arch: dict[tuple, list[int]] = {}
        for i, (a, g) in enumerate(zip(archs, grids)):
            by_arch.setdefault((a, int(g)), []).append(i)
        for (arch, grid), idx in by_arch.items():
            if arch.input_shape != (self.points.shape[1],):
                continue
            layout = layout_for(arch, grid)
            ids = torch.as_tensor(idx, device=batch.x.device)
            starts = ptr[ids]
            node_ids = (starts[:, None] + torch.arange(layout.num_nodes, device=starts.device)).reshape(-1)
            edge_starts = self._edge_starts(batch)[ids]
            edge_ids = (edge_starts[:, None] + torch.arange(layout.num_edges, device=starts.device)).reshape(-1)
            x = batch.x[node_ids].view(len(idx), layout.num_nodes, -1)
            e = batch.edge_attr[edge_ids].view(len(idx), layout.num_edges, -1)
            flat = layout.params_from_features(x, e)
            acts = neuron_activations(arch, flat, self.points)
            if acts is None:
                continue
            out[node_ids] = self.lift(acts.reshape(-1, acts.shape[-1]))
        return out

    @staticmethod
    def _edge_starts(batch) -> torch.Tensor:
        node_batch = graph_index(batch)
        counts = torch.bincount(node_batch[batch.edge_index[1]], minlength=int(node_batch.max()) + 1)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
