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


def weight_statistics(architecture: Architecture, flat: torch.Tensor) -> np.ndarray:
    """[B, F] statistics of every weight and bias tensor of B same-architecture networks (vectorised)."""
    params = unflatten_params(architecture, flat.double())
    feats = []
    for op in (architecture.ops[i] for i in architecture.weight_layers()):
        for key in (f"{op.name}.weight", f"{op.name}.bias"):
            if key not in params:
                continue
            t = params[key].reshape(flat.shape[0], -1)
            feats += [t.mean(1, keepdim=True), t.var(1, unbiased=False, keepdim=True),
                      torch.quantile(t, QUANTILES.to(t), dim=1).T]
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
