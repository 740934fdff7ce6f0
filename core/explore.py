"""Zoo exploration: embed the networks of zoos, project them to 2-D, find nearest neighbours.

Embedders: a trained run (its graph-level output: an `embed` run's embedding, a classifier's
probabilities, a regressor's prediction) or, with no model at all, `depth_free_statistics`: weight
statistics of the first layer, the last layer and all layers between pooled, plus depth and size. Their
length does not depend on the architecture, so zoos of different depths and widths share one space (a
per-layer feature, as in `core.baselines.statnn`, only exists within one architecture). A run that cannot
read an architecture (kernels larger than its grid, an unknown activation) leaves that architecture's
networks out, and `ZooEmbedding.left_out` says which and why — no network is dropped silently.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from core.baselines.statnn import QUANTILES, tensor_statistics
from core.errors import WeightSpaceError
from core.network.spec import Architecture, unflatten_params

PROJECTIONS = ("PCA", "UMAP", "t-SNE")
STATISTICS = ("mean", "var", *(f"q{int(q * 100)}" for q in QUANTILES.tolist()))  # per tensor
PARTS = ("first", "middle", "last")  # which weight layers a block of statistics summarises


def depth_free_statistics(architecture: Architecture, flat: torch.Tensor) -> np.ndarray:
    """[B, 44] weight statistics of B same-architecture networks whose length does not depend on the architecture.

    For the first weight layer, the pooled middle layers (none: zeros) and the last layer: 7 statistics of the
    weights and 7 of the biases; then the number of weight layers and log10 of the parameter count."""
    params = unflatten_params(architecture, flat.double())
    b = flat.shape[0]
    ops = [architecture.ops[i] for i in architecture.weight_layers()]
    if not ops:
        raise WeightSpaceError("the network has no Linear or Conv layer to summarise")
    groups = {"first": ops[:1], "middle": ops[1:-1], "last": ops[-1:] if len(ops) > 1 else []}
    feats = []
    for part in PARTS:
        for kind in ("weight", "bias"):
            tensors = [params[f"{op.name}.{kind}"].reshape(b, -1) for op in groups[part]
                       if f"{op.name}.{kind}" in params]
            values = torch.cat(tensors, 1) if tensors else flat.new_zeros(b, 0, dtype=torch.float64)
            feats.append(tensor_statistics(values))
    size = torch.tensor([len(ops), np.log10(max(architecture.num_parameters, 1))], dtype=torch.float64)
    feats.append(size.expand(b, 2))
    return torch.cat(feats, 1).float().numpy()


@dataclass
class ZooEmbedding:
    """Embeddings of the networks an embedder could read, with the table rows they belong to and why others
    were left out."""

    vectors: np.ndarray  # [n_read, d]
    rows: np.ndarray  # [n_read] positions in the zoo's table
    left_out: list[str] = field(default_factory=list)  # one line per reason: "12 networks (a003, a007): …"


def unreadable_reason(architecture: Architecture, run) -> str | None:
    """Why `run` cannot read networks of this architecture, in words; None when it can (or run is None)."""
    if run is None:
        return None
    from core.graph.layout import layout_for

    try:
        architecture.check_known_activations()
        need = layout_for(architecture).grid_size
    except WeightSpaceError as exc:
        return str(exc).splitlines()[0]
    if need > run.config.grid_size:
        g = run.config.grid_size
        return f"its largest kernel or patch is {need}×{need}, this model reads up to {g}×{g}"
    return None


def embed_zoo(zoo, run=None, progress: Callable[[float], None] | None = None,
              batch_size: int = 256) -> ZooEmbedding:
    """Embeddings of a zoo's networks from `run` or (run=None) `depth_free_statistics`; architectures the run
    cannot read are listed in `left_out` instead. `progress` gets the fraction of networks done."""
    table = zoo.table
    groups = table["group"].to_numpy()
    parts, rows_read, reasons, done = [], [], {}, 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(min(done / max(len(table), 1), 1.0))  # a group that failed midway is counted again

    for name in zoo.architectures:
        rows = np.flatnonzero(groups == name)
        if len(rows) == 0:
            continue
        reason = unreadable_reason(zoo.architectures[name], run)
        if reason is None:
            zoo.group_params(name)  # a missing or corrupt file is the zoo's error, raised, not a network left out
            try:
                emb = embed_rows(zoo, rows, run, batch_size, advance)
            except (WeightSpaceError, RuntimeError, IndexError) as exc:
                reason = str(exc).splitlines()[0]
            else:
                parts.append(emb)
                rows_read.append(rows)
        if reason is not None:
            count, names = reasons.get(reason, (0, []))
            reasons[reason] = (count + len(rows), [*names, name])
            advance(len(rows))
    left_out = [f"{count:,} networks ({_names(names)}): {reason}" for reason, (count, names) in reasons.items()]
    if not parts:
        return ZooEmbedding(np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64), left_out)
    rows = np.concatenate(rows_read)
    order = np.argsort(rows, kind="stable")  # back to table order
    return ZooEmbedding(np.vstack(parts)[order], rows[order], left_out)


def embed_rows(zoo, rows: np.ndarray, run=None, batch_size: int = 256,
               advance: Callable[[int], None] | None = None) -> np.ndarray:
    """[len(rows), d] embeddings of these zoo rows, in their order (raises when `run` cannot read one);
    `advance` gets the number of networks done after each batch."""
    rows = np.asarray(rows, dtype=np.int64)
    groups = zoo.table["group"].to_numpy()[rows]
    out = None
    for name in dict.fromkeys(groups):
        pick = np.flatnonzero(groups == name)
        arch, flat = zoo.flat(rows[pick])
        flat = torch.as_tensor(flat, dtype=torch.float32)
        if run is None:
            emb = depth_free_statistics(arch, flat)
            if advance:
                advance(len(flat))
        else:
            emb = _run_embeddings(run, arch, flat, batch_size, advance)
        if out is None:
            out = np.empty((len(rows), emb.shape[1]), dtype=np.float32)
        out[pick] = emb
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def _names(names: list[str], shown: int = 4) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def embed_networks(networks: list, run=None) -> np.ndarray:
    """[n, d] embeddings of loose networks (e.g. an upload), comparable with `embed_zoo`'s for the same embedder."""
    out = []
    for net in networks:
        flat = net.flat().float()[None]
        if run is None:
            out.append(depth_free_statistics(net.architecture, flat))
            continue
        reason = unreadable_reason(net.architecture, run)
        if reason is not None:
            raise WeightSpaceError(f"this embedder cannot read the network ({reason}); choose another embedder")
        out.append(_run_embeddings(run, net.architecture, flat, 1))
    return np.vstack(out)


def _run_embeddings(run, arch, flat: torch.Tensor, batch_size: int,
                    advance: Callable[[int], None] | None = None) -> np.ndarray:
    from core.data import GraphSet, Group

    if run.task.head != "graph":
        raise WeightSpaceError(f"a {run.config.task} run predicts parameter updates, not embeddings")
    data = GraphSet([Group(arch, flat, torch.arange(len(flat)))], run.config.grid_size, run.task.model_input)
    model = run.model
    model.eval()
    outs = []
    with torch.no_grad():
        for batch in data.batches(batch_size):
            outs.append(run.task.embedding_of(model(batch.graph)).cpu())
            if advance:
                advance(len(outs[-1]))
    return torch.cat(outs).numpy()


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column (constant columns left at 0)."""
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 0, std, 1.0)


ProgressFn = Callable[[float, str], None]
"""progress(fraction done in [0, 1], the stage in words)"""


class ProgressStream(io.TextIOBase):
    """A text stream that turns a library's progress lines into `progress` calls: each (pattern, handler) maps a
    match to (fraction, stage), or to None for a line that is the library's but no progress; text no pattern
    matches goes on to `forward` (None: dropped)."""

    def __init__(self, patterns: list, progress: ProgressFn, forward=None) -> None:
        self.patterns, self.progress, self.forward = patterns, progress, forward

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for piece in re.split(r"[\r\n]+", text):
            handled = False
            for pattern, handler in self.patterns:
                found = list(re.finditer(pattern, piece))
                if found:
                    reported = handler(found[-1])
                    if reported is not None:
                        self.progress(*reported)
                    handled = True
                    break
            if not handled and self.forward is not None and piece.strip():
                self.forward.write(piece + "\n")
        return len(text)


def _tsne(z: np.ndarray, seed: int, progress: ProgressFn | None) -> np.ndarray:
    """t-SNE (scikit-learn); progress from its verbose log: neighbours, affinities, then every 50 iterations."""
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, random_state=seed, perplexity=min(30.0, (len(z) - 1) / 3), init="pca",
                verbose=2 if progress else 0)
    if progress is None:
        return tsne.fit_transform(z)
    iterations = tsne.max_iter
    patterns = [
        (r"\[t-SNE\] Computing \d+ nearest neighbors", lambda m: (0.0, "finding nearest neighbours")),
        (r"\[t-SNE\] Computed conditional probabilities in", lambda m: (0.05, "neighbour affinities computed")),
        (r"\[t-SNE\] Iteration (\d+)", lambda m: (0.05 + 0.95 * min(int(m[1]) / iterations, 1.0),
                                                  f"iteration {int(m[1]):,} of at most {iterations:,}")),
        (r"\[t-SNE\]", lambda m: None),  # its other log lines: no progress, not forwarded
    ]
    stream = ProgressStream(patterns, progress, forward=sys.stdout)
    progress(0.0, "starting")
    # scikit-learn prints its progress; text of other threads meanwhile is passed on to the real stdout
    with contextlib.redirect_stdout(stream):
        out = tsne.fit_transform(z)
    progress(1.0, "done")
    return out


def _umap(z: np.ndarray, seed: int, progress: ProgressFn | None) -> np.ndarray:
    """UMAP (umap-learn); progress from its tqdm epoch counter, which writes '{n}/{total}' to our stream."""
    import umap

    kwargs = {}
    if progress is not None:
        epochs = [(r"(\d+)/(\d+)", lambda m: (0.1 + 0.9 * int(m[1]) / max(int(m[2]), 1),
                                              f"optimising the layout: epoch {int(m[1]):,} of {int(m[2]):,}"))]
        kwargs["tqdm_kwds"] = {"disable": False, "file": ProgressStream(epochs, progress),
                               "bar_format": "{n}/{total}", "mininterval": 0.25}
        progress(0.0, "finding nearest neighbours and building the neighbour graph")
    out = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(z) - 1), **kwargs).fit_transform(z)
    if progress is not None:
        progress(1.0, "done")
    return out


def project(x: np.ndarray, method: str = "PCA", seed: int = 0, progress: ProgressFn | None = None) -> np.ndarray:
    """[n, 2] projection with PCA, UMAP (imported lazily: numba compiles on first use) or t-SNE; `progress`, if
    given, hears how far UMAP / t-SNE have got (from the libraries' own progress output)."""
    if len(x) < 3:
        raise WeightSpaceError("need at least 3 networks to project")
    z = standardise(x)
    if method == "PCA":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(z)
    if method == "t-SNE":
        return _tsne(z, seed, progress)
    if method == "UMAP":
        return _umap(z, seed, progress)
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


def search_rows(table, query: str) -> np.ndarray:
    """[n] bool: rows matching `query`: `column=value` (exact, as text; several joined by ',' must all hold) or
    free text found, case-insensitively, in any column."""
    import pandas as pd

    query = query.strip()
    mask = np.ones(len(table), dtype=bool)
    if not query:
        return ~mask
    terms = [t.strip() for t in query.split(",") if t.strip()]
    for term in terms:
        column, sep, value = term.partition("=")
        column, value = column.strip(), value.strip()
        if sep and column in table:
            text = table[column].map(lambda v: "" if pd.isna(v) else (str(int(v)) if isinstance(v, float)
                                                                        and v.is_integer() else str(v)))
            mask &= (text.str.lower() == value.lower()).to_numpy()
        elif sep:
            raise WeightSpaceError(f"no column {column!r} to search; columns: {', '.join(map(str, table.columns))}")
        else:
            text = table.astype(str).apply(lambda col: col.str.contains(term, case=False, regex=False))
            mask &= text.any(axis=1).to_numpy()
    return mask


def embedding_export(table, xy: np.ndarray, vectors: np.ndarray):
    """One row per network: its metadata, its 2-D coordinates (x, y) and its embedding (emb_0 …), for download."""
    import pandas as pd

    emb = pd.DataFrame(vectors, columns=[f"emb_{i}" for i in range(vectors.shape[1])], index=table.index)
    return pd.concat([table.assign(x=xy[:, 0], y=xy[:, 1]), emb], axis=1)


def predicted_accuracy(zoo, rows: np.ndarray, run) -> np.ndarray:
    """A generalization run's predicted test accuracy for the zoo's `rows` (NaN for architectures it cannot read and
    for networks that diverged in training beyond what its model reads in float32: `unusable_networks`)."""
    from core.models import model_class
    from core.runs import graph_set_from_zoo
    from core.tasks.generalization import unusable_networks

    rows = np.asarray(rows, dtype=np.int64)
    cls = model_class(run.config.model)
    limit = cls.weight_limit(cls.config_class.from_dict(run.config.model_config))
    probes = int(run.config.model_config.get("probes", 0) or 0)
    diverged = {d["index"] for d in unusable_networks(zoo, probes, limit=limit, rows=rows)}
    usable = rows[~zoo.table["index"].iloc[rows].isin(diverged).to_numpy()]
    data = graph_set_from_zoo(zoo, None, run.task, run.config.grid_size, rows=usable)  # reads only these rows
    data.groups = [g for g in data.groups if unreadable_reason(g.architecture, run) is None]
    by_row = np.full(len(zoo), np.nan)
    if data.groups:
        by_row[torch.cat([g.index for g in data.groups]).numpy()] = run.trainer("cpu").predict(data).numpy()
    return by_row[rows]
