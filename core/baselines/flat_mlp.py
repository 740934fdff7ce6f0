"""`flat-mlp`: an MLP on the flattened weights of one fixed architecture (scikit-learn), the symmetry-blind reference.

Inputs are standardised per parameter; the network is scikit-learn's MLPRegressor (Adam, early stopping).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class FlatMLP:
    """StandardScaler → MLPRegressor(256, 256) on flat parameter vectors [n, P] of one architecture."""

    def __init__(self, seed: int = 0, hidden: tuple[int, ...] = (256, 256), max_iter: int = 300):
        mlp = MLPRegressor(hidden_layer_sizes=hidden, alpha=1e-3, early_stopping=True, max_iter=max_iter,
                           random_state=seed)
        self.model = make_pipeline(StandardScaler(), mlp)

    def fit(self, flat: torch.Tensor, targets: np.ndarray) -> "FlatMLP":
        """Fit on networks [n, P] and targets [n]."""
        self.model.fit(flat.double().numpy(), targets)
        return self

    def predict(self, flat: torch.Tensor) -> np.ndarray:
        """Predicted targets [n]."""
        return self.model.predict(flat.double().numpy())
