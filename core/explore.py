"""Zoo exploration: embed the networks of zoos, project them to 2-D, find nearest neighbours.

Embedders: a trained run (its graph-level output: an `embed` run's embedding, a classifier's
probabilities, a regressor's prediction) or, with no model at all, per-layer weight statistics
(standardised), which work for any zoo.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from core.baselines.statnn import weight_statistics
from core.errors import WeightSpaceError

PROJECTIONS = ("PCA", "UMAP", "t-SNE")


def embed_zoo(zoo, run=None, progress: Callable[[float], None] | None = None, batch_size: int = 256) -> np.ndarray:
    """[len(zoo), d] embeddings in table order, from `run` or (run=None) weight statistics."""
    table = zoo.table
    out: np.ndarray | None = None
    groups = list(zoo.architectures)
    for gi, name in enumerate(groups):
        rows = np.flatnonzero(table["group"].to_numpy() == name) if "group" in table else np.arange(len(table))
        if len(rows) == 0:
            continue
        arch, flat = zoo.flat(rows)
        flat = torch.as_tensor(flat, dtype=torch.float32)
        if run is None:
            emb = weight_statistics(arch, flat)
        else:
            emb = _run_embeddings(run, arch, flat, batch_size)
        if out is None:
            out = np.zeros((len(table), emb.shape[1]), dtype=np.float32)
        if emb.shape[1] != out.shape[1]:
            raise WeightSpaceError("weight statistics differ in size across architectures; use a trained embedder")
        out[rows] = emb
        if progress:
            progress((gi + 1) / len(groups))
    if out is None:
        raise WeightSpaceError("the zoo is empty")
    return out


def embed_networks(networks: list, run=None) -> np.ndarray:
    """[n, d] embeddings of loose networks (e.g. an upload), comparable with `embed_zoo`'s for the same embedder."""
    out = []
    for net in networks:
        flat = net.flat().float()[None]
        if run is None:
            out.append(weight_statistics(net.architecture, flat))
        else:
            from core.graph.layout import layout_for

            net.architecture.check_known_activations()
            if layout_for(net.architecture).grid_size > run.config.grid_size:
                size = run.config.grid_size
                raise WeightSpaceError(f"this embedder reads kernels up to {size}×{size}; "
                                       "the network has larger ones (choose an embedder trained on CNNs)")
            out.append(_run_embeddings(run, net.architecture, flat, 1))
    return np.vstack(out)


def _run_embeddings(run, arch, flat: torch.Tensor, batch_size: int) -> np.ndarray:
    from core.data import GraphSet, Group

    if run.task.head != "graph":
        raise WeightSpaceError(f"a {run.config.task} run predicts parameter updates, not embeddings")
    data = GraphSet([Group(arch, flat, torch.arange(len(flat)))], run.config.grid_size)
    model = run.model
    model.eval()
    outs = []
    with torch.no_grad():
        for batch in data.batches(batch_size):
            outs.append(model(batch.graph).float().cpu())
    return torch.cat(outs).numpy()


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column (constant columns left at 0)."""
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 0, std, 1.0)


def project(x: np.ndarray, method: str = "PCA", seed: int = 0) -> np.ndarray:
    """[n, 2] projection with PCA, UMAP (imported lazily: numba compiles on first use) or t-SNE."""
    if len(x) < 3:
        raise WeightSpaceError("need at least 3 networks to project")
    z = standardise(x)
    if method == "PCA":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(z)
    if method == "t-SNE":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (len(z) - 1) / 3)
        return TSNE(n_components=2, random_state=seed, perplexity=perplexity, init="pca").fit_transform(z)
    if method == "UMAP":
        import umap

        return umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(z) - 1)).fit_transform(z)
    raise WeightSpaceError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")


def warm_umap() -> None:
    """Run UMAP once on a tiny array so numba's compilation happens before the user waits for it."""
    project(np.random.default_rng(0).normal(size=(40, 4)), "UMAP")


def nearest(x: np.ndarray, query: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the k rows of x closest to `query` (standardised together)."""
    both = standardise(np.vstack([x, query[None]]))
    a, q = both[:-1], both[-1]
    sims = (a @ q) / (np.linalg.norm(a, axis=1) * np.linalg.norm(q) + 1e-12)
    idx = np.argsort(-sims)[:k]
    return idx, sims[idx]
