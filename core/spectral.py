"""Empirical spectral densities (ESD) of weight layers and their fitted power-law exponent α, as WeightWatcher.

For a layer whose weight, reshaped to a matrix W of shape [out, in·k…] (conv kernels flattened per output channel,
as `core.summary.weight_matrix` does; WeightWatcher instead splits a conv into one [out, in] matrix per kernel
position), with N = max(out, in·k…) the ESD is the set of eigenvalues of X = WᵀW / N, i.e. λᵢ = σᵢ² / N for the
singular values σᵢ of W. The tail of the ESD is fitted by a power law p(λ) ∝ λ^-α for λ ≥ xmin with the `powerlaw`
package (maximum likelihood; xmin chosen by the Kolmogorov–Smirnov distance, Clauset et al. 2009). WeightWatcher
reads α ≈ 2–6 as a well-trained layer, α > 6 as a barely trained (random-like) one, α < 2 as a possibly over-fitted one.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from core.network.spec import Network

# fewer eigenvalues than this give no meaningful tail fit (the MLP example's 64→10 layer, 10 eigenvalues, "fits"
# α ≈ 0.3, outside any power law's range): α is reported as None with the reason
MIN_EIGENVALUES = 50
# the fit's xmin search costs O(n²) (about 1 s for 800 eigenvalues when α > 3 needs a numerical fit); the tail is
# made of the largest eigenvalues, so larger ESDs are fitted on their largest ones only
MAX_FIT_EIGENVALUES = 500
# powerlaw 2's default α range is [0, 3]; WeightWatcher's α of well-trained layers runs to ~6 and of random ones
# (Marchenko–Pastur, no heavy tail) far beyond, so the range is widened; a fit that ends on a bound gives None
ALPHA_RANGE = (1.0, 100.0)


@dataclass(frozen=True)
class LayerSpectrum:
    """One weight layer's ESD (ascending eigenvalues of WᵀW/N) and its power-law fit (None with a reason)."""

    name: str
    shape: tuple[int, int]
    eigenvalues: np.ndarray
    alpha: float | None
    xmin: float | None
    reason: str | None  # why alpha is None; None when fitted


def esd(matrix: torch.Tensor) -> np.ndarray:
    """Ascending eigenvalues σ²/N of WᵀW/N (N = the larger dimension) of a 2-d matrix, as float64 numpy."""
    w = matrix.detach().double()
    s = torch.linalg.svdvals(w).cpu().numpy()
    return np.sort(s ** 2 / max(w.shape))


def fit_power_law(eigenvalues: np.ndarray) -> tuple[float | None, float | None, str | None]:
    """(α, xmin, None) of a power-law fit to the ESD's tail, or (None, None, reason) when it cannot be fitted."""
    positive = eigenvalues[eigenvalues > eigenvalues.max(initial=0.0) * 1e-12]  # a rank-deficient W has zeros
    if positive.size < MIN_EIGENVALUES:
        return None, None, f"{positive.size} nonzero eigenvalues (at least {MIN_EIGENVALUES} are needed for a fit)"
    if np.ptp(positive) <= positive.max() * 1e-5:  # equal up to float32 rounding (an orthogonal W)
        return None, None, "all eigenvalues are equal (no tail to fit)"
    tail = np.sort(positive)[-MAX_FIT_EIGENVALUES:]
    import powerlaw  # lazy: it imports matplotlib (about 1 s)

    # powerlaw writes progress to stdout/stderr and warns on degenerate xmin candidates: keep the caller's output clean
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # no xmax: the untruncated power law of Clauset et al., with its closed-form MLE for α in (1, 3]
        fit = powerlaw.Fit(tail, verbose=False, parameter_ranges={"alpha": list(ALPHA_RANGE)})
        alpha, xmin = float(fit.power_law.alpha), float(fit.power_law.xmin)
    if not (math.isfinite(alpha) and math.isfinite(xmin)):
        return None, None, "the power-law fit did not converge"
    if not ALPHA_RANGE[0] * (1 + 1e-4) < alpha < ALPHA_RANGE[1] * (1 - 1e-4):
        return None, None, f"the power-law fit ran to the edge of its range α ∈ {list(ALPHA_RANGE)}"
    return alpha, xmin, None


def layer_spectra(network: Network) -> list[LayerSpectrum]:
    """The ESD and power-law fit of every Linear/Conv layer, in network order."""
    arch = network.architecture
    out = []
    for i in arch.weight_layers():
        name = arch.ops[i].name
        w = network.params[f"{name}.weight"]
        matrix = w.reshape(w.shape[0], -1)
        eigenvalues = esd(matrix)
        alpha, xmin, reason = fit_power_law(eigenvalues)
        out.append(LayerSpectrum(name, (int(matrix.shape[0]), int(matrix.shape[1])), eigenvalues, alpha, xmin, reason))
    return out
