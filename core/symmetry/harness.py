"""Equivariance harness for metanetworks: transform the input graphs by random group elements and measure
how far the model's output is from the correspondingly transformed output.

A model is any callable taking a PyG `Batch` of NeuralGraphs. Two kinds of output are supported:
- graph-level, `model(batch) -> [B, F]`: `invariance_error` measures max |f(g·G) − f(G)|;
- node/edge-level: `model(batch)` returns `(node [N_total, F], edge [E_total, F'])`, a dict with keys
  `node`/`edge` (either may be missing or None), or an object with `x` / `edge_attr` attributes.
  `equivariance_error` measures max |f(g·G) − g·f(G)|, where g acts on the output according to `output`:
    'permute'    node rows and edge rows are permuted like the graph's nodes and edges (plain features);
    'parameters' outputs are parameter updates shaped like the graph's x [N, 5] / edge_attr [E, D]:
                 permuted and scaled like the parameters (a phase shift does not move an update);
    'scale'      per-node features scale with the neuron's d (edge features by d[target] / d[source]),
                 the representation ScaleGMN's equivariant layers keep.
Errors are relative to the largest output magnitude (absolute with `relative=False`); a relative check of a
model whose outputs are all zero raises `SymmetryError`, since it would pass without testing anything.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch_geometric.data import Batch

from core.symmetry.actions import (
    GroupElement,
    SymmetryError,
    apply_to_graph,
    apply_to_network,
    graph_action,
    random_element,
)

OUTPUT_MODES = ("permute", "parameters", "scale")


def _as_list(graphs: Any) -> list:
    if isinstance(graphs, Batch):
        return graphs.to_data_list()
    if isinstance(graphs, (list, tuple)):
        return list(graphs)
    return [graphs]  # a single NeuralGraph


def _split_output(out: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if isinstance(out, dict):
        return out.get("node"), out.get("edge")
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise SymmetryError("a node/edge-level model must return (node, edge) outputs")
        return out[0], out[1]
    if hasattr(out, "x") or hasattr(out, "edge_attr"):
        return getattr(out, "x", None), getattr(out, "edge_attr", None)
    raise SymmetryError(f"cannot read node/edge outputs from a {type(out).__name__}")


def _rel(err: float, ref: float, relative: bool) -> float:
    if not relative:
        return err
    if ref == 0 and err == 0:
        # an all-zero output (e.g. an untrained editor, which proposes Δθ = 0) is kept by every group element:
        # reporting 0 would pass the check without testing anything
        raise SymmetryError("the model's output is all zero before and after the transforms, so the check is "
                            "vacuous; use a trained model or non-zero parameters (relative=False gives 0)")
    return err / ref if ref > 0 else float("inf")


def sample_elements(graphs: Sequence, kinds: Iterable[str] | None, gen: torch.Generator) -> list[GroupElement]:
    """One random admitted element per graph (for that graph's architecture)."""
    kinds = None if kinds is None else list(kinds)
    return [random_element(g.architecture, kinds, generator=gen) for g in graphs]


def transform_batch(graphs: Sequence, elements: Sequence[GroupElement]) -> Batch:
    """Batch of the transformed graphs (each acted on directly, no round trip through Network)."""
    return Batch.from_data_list([apply_to_graph(g, e) for g, e in zip(graphs, elements)])


@torch.no_grad()
def invariance_error(model: Callable, graphs_or_batch: Any, trials: int = 3, seed: int = 0,
                     kinds: Iterable[str] | None = None, relative: bool = True) -> float:
    """Max over trials of |model(g·G) − model(G)| for a graph-level model (`model(batch) -> [B, F]`)."""
    graphs = _as_list(graphs_or_batch)
    gen = torch.Generator().manual_seed(int(seed))
    reference = model(Batch.from_data_list(graphs))
    scale = reference.abs().max().item()
    worst = 0.0
    for _ in range(trials):
        out = model(transform_batch(graphs, sample_elements(graphs, kinds, gen)))
        worst = max(worst, (out - reference).abs().max().item())
    return _rel(worst, scale, relative)


def prediction_invariance_error(predict: Callable[[list], torch.Tensor], net: Any, trials: int = 3, seed: int = 0,
                                kinds: Iterable[str] | None = None, relative: bool = True) -> float:
    """Max over trials of |predict(g·net) − predict(net)| for a whole prediction pipeline over networks (e.g.
    `Run.predict`, which canonicalises its input for `train --canonical` runs); g acts in float64."""
    reference = predict([net])
    moved = [apply_to_network(net.to(torch.float64), random_element(net, kinds=kinds, seed=seed + i)).to(net.dtype)
             for i in range(trials)]
    worst = (predict(moved) - reference).abs().max().item()
    return _rel(worst, reference.abs().max().item(), relative)


def _transform_output(graphs: Sequence, elements: Sequence[GroupElement], node: torch.Tensor | None,
                      edge: torch.Tensor | None, output: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """g·f(G): the reference output moved by the same elements (graph by graph, in batch order)."""
    node_parts, edge_parts, n0, e0 = [], [], 0, 0
    for g, el in zip(graphs, elements):
        dtype = node.dtype if node is not None else (edge.dtype if edge is not None else torch.float64)
        act = graph_action(g.architecture, el, g.grid_size, dtype=dtype)
        n, e = act.node_perm.numel(), act.edge_perm.numel()
        if node is not None:
            part = node[n0:n0 + n][act.node_perm.to(node.device)]
            if output == "parameters":
                if part.shape[-1] != act.x_mult.shape[-1]:
                    raise SymmetryError(f"'parameters' node outputs need {act.x_mult.shape[-1]} columns, "
                                        f"got {part.shape[-1]}")
                part = part * act.x_mult.to(part)
            elif output == "scale":
                part = part * act.node_scale.to(part)[:, None]
            node_parts.append(part)
        if edge is not None:
            part = edge[e0:e0 + e][act.edge_perm.to(edge.device)]
            if output == "parameters":
                part = part * act.edge_mult.to(part)[:, None]
            elif output == "scale":
                src, dst = g.edge_index
                ratio = act.node_scale[dst] / act.node_scale[src]
                part = part * ratio.to(part)[:, None]
            edge_parts.append(part)
        n0, e0 = n0 + n, e0 + e
    return (torch.cat(node_parts) if node_parts else None, torch.cat(edge_parts) if edge_parts else None)


@torch.no_grad()
def equivariance_error(model: Callable, graphs_or_batch: Any, trials: int = 3, seed: int = 0,
                       kinds: Iterable[str] | None = None, output: str = "permute", relative: bool = True) -> float:
    """Max over trials of |model(g·G) − g·model(G)| for node/edge outputs (see the module docstring)."""
    if output not in OUTPUT_MODES:
        raise SymmetryError(f"unknown output mode {output!r}; choose from {', '.join(OUTPUT_MODES)}")
    graphs = _as_list(graphs_or_batch)
    gen = torch.Generator().manual_seed(int(seed))
    node, edge = _split_output(model(Batch.from_data_list(graphs)))
    if node is None and edge is None:
        raise SymmetryError("the model returned neither node nor edge outputs")
    scale = max(t.abs().max().item() for t in (node, edge) if t is not None and t.numel())
    worst = 0.0
    for _ in range(trials):
        elements = sample_elements(graphs, kinds, gen)
        out_node, out_edge = _split_output(model(transform_batch(graphs, elements)))
        exp_node, exp_edge = _transform_output(graphs, elements, node, edge, output)
        for got, want in ((out_node, exp_node), (out_edge, exp_edge)):
            if want is not None:
                if got is None or got.shape != want.shape:
                    raise SymmetryError("the model's output shape changed under the transform")
                worst = max(worst, (got - want).abs().max().item())
    return _rel(worst, scale, relative)
