"""`statnn`: per-layer weight statistics → gradient-boosted trees (Unterthiner et al. 2020).

Features per Linear/Conv layer, for its weights and its biases: mean, variance and the 0/25/50/75/100 %
quantiles. They are invariant to permutations of hidden neurons by construction, and strong for
generalisation prediction.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor

from core.network.spec import Architecture, unflatten_params

QUANTILES = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)


def tensor_statistics(values: torch.Tensor) -> torch.Tensor:
    """[B, 7] mean, variance and the QUANTILES of each row of [B, n] values (zeros when n = 0)."""
    if values.shape[1] == 0:
        return values.new_zeros(values.shape[0], 2 + len(QUANTILES))
    quantiles = torch.quantile(values, QUANTILES.to(values), dim=1).T
    return torch.cat([values.mean(1, keepdim=True), values.var(1, unbiased=False, keepdim=True), quantiles], 1)


def weight_statistics(architecture: Architecture, flat: torch.Tensor) -> np.ndarray:
    """[B, F] statistics of every weight and bias tensor of B same-architecture networks (vectorised)."""
    params = unflatten_params(architecture, flat.double())
    feats = []
    for op in (architecture.ops[i] for i in architecture.weight_layers()):
        for key in (f"{op.name}.weight", f"{op.name}.bias"):
            if key not in params:
                continue
            feats.append(tensor_statistics(params[key].reshape(flat.shape[0], -1)))
    return torch.cat(feats, 1).numpy()


class StatNN:
    """Gradient-boosted regression trees on `weight_statistics` (one fixed architecture)."""

    def __init__(self, seed: int = 0, max_iter: int = 300):
        self.model = HistGradientBoostingRegressor(max_iter=max_iter, learning_rate=0.05, random_state=seed)

    def fit(self, architecture: Architecture, flat: torch.Tensor, targets: np.ndarray) -> "StatNN":
        """Fit on networks [n, P] and targets [n]."""
        self.model.fit(weight_statistics(architecture, flat), targets)
        return self

    def predict(self, architecture: Architecture, flat: torch.Tensor) -> np.ndarray:
        """Predicted targets [n]."""
        return self.model.predict(weight_statistics(architecture, flat))


ACTIVATION_IDS = ("identity", "relu", "tanh", "leaky_relu", "gelu", "silu", "sigmoid", "sine")


def architecture_free_statistics(architecture: Architecture, flat: torch.Tensor) -> np.ndarray:
    """[B, F] features of a fixed length for any CNN/MLP: the first and last layers' statistics, the mean and std of
    every layer's statistics, and architecture descriptors (depth, log size, kernel, width, residuals, activation)."""
    per_layer = []
    ops = [architecture.ops[i] for i in architecture.weight_layers()]
    params = unflatten_params(architecture, flat.double())
    for op in ops:
        feats = []
        for key in (f"{op.name}.weight", f"{op.name}.bias"):
            # a layer without a bias reads as bias statistics of zero
            t = params[key].reshape(flat.shape[0], -1) if key in params else torch.zeros(flat.shape[0], 1).double()
            feats.append(tensor_statistics(t))
        per_layer.append(torch.cat(feats, 1))
    stack = torch.stack(per_layer)                                                  # [L, B, 14]
    kernels = [float(np.prod(getattr(op, "kernel_size", (1,)))) for op in ops]
    widths = [float(getattr(op, "out_channels", getattr(op, "out_features", 0))) for op in ops]
    acts = {a.fn for a in architecture.activations()}
    descriptor = [len(ops), np.log(architecture.num_parameters), np.mean(kernels), max(widths),
                  sum(type(op).__name__ == "Residual" for op in architecture.ops)]
    descriptor += [float(a in acts) for a in ACTIVATION_IDS]
    described = torch.tensor(descriptor, dtype=torch.float64).expand(flat.shape[0], -1)
    return torch.cat([stack[0], stack[-1], stack.mean(0), stack.std(0, unbiased=False), described], 1).numpy()


class StatNNAny(StatNN):
    """StatNN on `architecture_free_statistics`: one model over a zoo of many architectures, applicable to unseen
    ones. `fit_groups` / `predict_groups` take a list of (architecture, flat [n, P]) pairs."""

    def fit_groups(self, parts: list[tuple[Architecture, torch.Tensor]], targets: np.ndarray) -> "StatNNAny":
        """Fit on the concatenated groups (targets in the same order)."""
        self.model.fit(np.concatenate([architecture_free_statistics(a, f) for a, f in parts]), targets)
        return self

    def predict_groups(self, parts: list[tuple[Architecture, torch.Tensor]]) -> np.ndarray:
        """Predictions for the concatenated groups."""
        return self.model.predict(np.concatenate([architecture_free_statistics(a, f) for a, f in parts]))
