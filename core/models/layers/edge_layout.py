"""How NG-GNN's edge-wise work meets the nodes: one small interface, `EdgeLayout`, with two executions.

Edge states are always one tensor [E, C] in the batch's edge order; only three steps depend on the
graph structure, and a layer calls them through the layout it is given (`LayerContext.edges`):

    map_edges(f, x, a, b)   = f(x_st, a_s + b_t) for every edge s → t                 → [E, C']
    aggregate(f, x, a, b)   = PNA aggregates of the messages m = f(x_st, a_s + b_t) [E, 2H]: the forward
                              half received by t, the backward half by s              → [2, N, 4H]
    scaled_post(agg, …)     = W_o z + b_o with PNA's degree scalers                   → [N, H]

(f is an edge-wise function, so the dense execution can apply it block by block.)

`SparseEdges` is the reference: gathers and scatters over the edge list, for any batch of graphs.
`DenseBlocks` takes batches of one plain layered architecture (an MLP or CNN without skip connections,
every weight block a complete bipartite graph): the edges of block k of graph b form a [T_k, S_k] grid
(edge = out · S_k + in, see `core.graph.layout`), so

    x_src[src] + x_dst[dst]            = broadcast  x_src[b, None, s] + x_dst[b, t, None]
    aggregate over the senders of t    = reduce the block over its S axis   (forward direction)
    aggregate over the receivers of s  = reduce the block over its T axis   (backward direction)

and every neuron of a layer has the same degrees, so the three degree-scaled products per direction fold
into one (`pna_aggregation.folded_post_weight`). Broadcasts and dense reductions replace index_select and
scatter, whose backward passes (index_add, scatter of min/max) are slow on the CPU. Same function up to
float summation order (tested in float64, values and gradients); `DenseBlocks.for_batch` returns None
whenever that cannot be guaranteed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.nn import functional as F

from core.graph.layout import GraphLayout, layout_for
from core.models.layers.pna_aggregation import (
    degree_scalers,
    dense_statistics,
    folded_post_weight,
    scaled_post,
    scatter_statistics,
)

EdgeFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (edge values, endpoint sums) → per edge


class EdgeLayout(ABC):
    """The structure-dependent steps of a message-passing layer over edge tensors [E, C] and node tensors [N, C]."""

    @abstractmethod
    def map_edges(self, fn: EdgeFunction, values: torch.Tensor, at_source: torch.Tensor,
                  at_target: torch.Tensor) -> torch.Tensor:
        """fn(values, at_source[src] + at_target[dst]) for edge values [E, C] and node terms [N, C'] → [E, C'']."""

    @abstractmethod
    def aggregate(self, fn: EdgeFunction, values: torch.Tensor, at_source: torch.Tensor,
                  at_target: torch.Tensor) -> torch.Tensor:
        """PNA aggregates [2, N, 4H] of the messages m = `map_edges(fn, …)` [E, 2H] (forward | backward): row 0
        of the forward halves each node receives as a target, row 1 of the backward halves it receives as a source."""

    @abstractmethod
    def scaled_post(self, agg: torch.Tensor, log_deg: torch.Tensor, delta: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
        """W_o z + b_o (`pna_aggregation.scaled_post`) for aggregates agg [2, N, 4H] → [N, H_out]."""


class SparseEdges(EdgeLayout):
    """The reference execution: gathers and scatters over the edge list [2, E] of N nodes."""

    def __init__(self, edge_index: torch.Tensor, num_nodes: int):
        self.edge_index = edge_index
        self.num_nodes = num_nodes

    def map_edges(self, fn: EdgeFunction, values: torch.Tensor, at_source: torch.Tensor,
                  at_target: torch.Tensor) -> torch.Tensor:
        src, dst = self.edge_index
        return fn(values, at_source.index_select(0, src) + at_target.index_select(0, dst))

    def aggregate(self, fn: EdgeFunction, values: torch.Tensor, at_source: torch.Tensor,
                  at_target: torch.Tensor) -> torch.Tensor:
        n, (src, dst) = self.num_nodes, self.edge_index
        forward, backward = self.map_edges(fn, values, at_source, at_target).chunk(2, dim=1)  # [E, H] each
        # both directions in one scatter: forward messages go to dst, backward ones to N + src
        agg = scatter_statistics(torch.cat([forward, backward]), torch.cat([dst, src + n]), 2 * n)  # [2N, 4H]
        return agg.view(2, n, -1)

    def scaled_post(self, agg: torch.Tensor, log_deg: torch.Tensor, delta: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
        return scaled_post(agg, degree_scalers(log_deg, delta.to(log_deg).view(2, 1)), weight, bias)


@dataclass(frozen=True)
class _Block:
    """One weight block of the layout: T·S edges from the S neurons of one layer to the T of another."""

    source_layer: int  # index into `GraphLayout.layers`
    source_size: int
    target_layer: int
    target_size: int


def _dense_blocks(layout: GraphLayout) -> list[_Block] | None:
    """The layout's weight blocks if each neuron layer sends to and receives from at most one block."""
    if layout.num_edges != layout.residual_edge_start:  # skip-connection edges are not a dense grid
        return None
    sources = [b.source_layer for b in layout.blocks]
    targets = [b.target_layer for b in layout.blocks]
    if len(set(sources)) != len(sources) or len(set(targets)) != len(targets):
        return None
    out = [_Block(b.source_layer, layout.layers[b.source_layer].size, b.target_layer,
                  layout.layers[b.target_layer].size) for b in layout.blocks]
    starts = [sum(k.target_size * k.source_size for k in out[:i]) for i in range(len(out) + 1)]
    if [b.edge_start for b in layout.blocks] != starts[:-1] or starts[-1] != layout.num_edges:
        return None  # the blocks must tile the edge order one after the other
    return out


_TILED: dict[tuple[GraphLayout, int, str], torch.Tensor] = {}  # (layout, graphs, device) → expected edge_index


def _tiled_edge_index(layout: GraphLayout, graphs: int, device: torch.device) -> torch.Tensor:
    """edge_index of `graphs` copies of the layout, batched the PyG way (node offsets per graph)."""
    key = (layout, graphs, str(device))  # the layout itself (hashed by identity), so a key cannot be reused
    if key not in _TILED:
        if len(_TILED) > 64:
            _TILED.clear()
        graph_of_edge = torch.arange(graphs, device=layout.edge_index.device).repeat_interleave(layout.num_edges)
        offsets = graph_of_edge * layout.num_nodes
        _TILED[key] = (layout.edge_index.repeat(1, graphs) + offsets).to(device)
    return _TILED[key]


def _first(value: Any) -> Any:
    """The first entry of a per-graph list / tensor attribute of a batch (or the value itself)."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value.reshape(-1)[0] if torch.is_tensor(value) else value


class DenseBlocks(EdgeLayout):
    """Dense execution on a batch of B same-architecture graphs with complete bipartite weight blocks."""

    def __init__(self, layout: GraphLayout, blocks: list[_Block], graphs: int):
        self.layout = layout
        self.blocks = blocks
        self.graphs = graphs
        self.nodes = layout.num_nodes  # per graph
        self.edges = layout.num_edges  # per graph
        into = {b.target_layer: i for i, b in enumerate(blocks)}  # layer → the block it receives from
        out_of = {b.source_layer: i for i, b in enumerate(blocks)}  # layer → the block it sends into
        # per neuron layer: (first node, size, (index of the block it receives from, of the one it sends into));
        # None where there is none. All neurons of a layer share their in- and out-degree.
        self.layers = [(layer.start, layer.size, (into.get(i), out_of.get(i))) for i, layer in enumerate(layout.layers)]

    @classmethod
    def for_batch(cls, batch: Any) -> "DenseBlocks | None":
        """The dense execution of this batch, or None when its graphs differ or are not dense-block graphs."""
        arch, grid = _first(getattr(batch, "architecture", None)), _first(getattr(batch, "grid_size", None))
        if arch is None or grid is None:
            return None
        layout = layout_for(arch, int(grid))
        blocks = _dense_blocks(layout)
        if blocks is None:
            return None
        n, e = batch.x.shape[0], batch.edge_index.shape[1]
        if n % layout.num_nodes or e % layout.num_edges or n // layout.num_nodes != e // layout.num_edges:
            return None
        graphs = n // layout.num_nodes
        if not torch.equal(batch.edge_index, _tiled_edge_index(layout, graphs, batch.edge_index.device)):
            return None  # relabelled nodes, other architectures in the batch: use the sparse path
        return cls(layout, blocks, graphs)

    # `split`, not slices: its backward pass concatenates the gradients, where each slice's would fill a
    # zero tensor of the whole input (measured: 11 % of a training step in zero fills with slices)
    def _block_views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Edge tensor [B·E, C] → one view [B, T_k, S_k, C] per weight block (no copy)."""
        parts = x.view(self.graphs, self.edges, x.shape[-1]).split([k.target_size * k.source_size for k in self.blocks],
                                                                   dim=1)
        return [p.unflatten(1, (k.target_size, k.source_size)) for p, k in zip(parts, self.blocks)]

    def _layer_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Node tensor [B·N, C] → the rows of each neuron layer of every graph [B, size, C] (views)."""
        return x.view(self.graphs, self.nodes, x.shape[-1]).split([size for _, size, _ in self.layers], dim=1)

    def _per_block(self, fn: EdgeFunction, values: torch.Tensor, at_source: torch.Tensor,
                   at_target: torch.Tensor) -> list[torch.Tensor]:
        """fn per weight block on [B, T, S, ·] views, the endpoint sum a broadcast (no gather)."""
        sources, targets = self._layer_rows(at_source), self._layer_rows(at_target)
        return [fn(block, targets[k.target_layer][:, :, None] + sources[k.source_layer][:, None])  # [B, T, S, C]
                for k, block in zip(self.blocks, self._block_views(values))]

    def map_edges(self, fn: EdgeFunction, values: torch.Tensor, at_source: torch.Tensor,
                  at_target: torch.Tensor) -> torch.Tensor:
        parts = [y.flatten(1, 2) for y in self._per_block(fn, values, at_source, at_target)]  # [B, T·S, C'']
        return (torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]).flatten(0, 1)  # [B·E, C'']

    def aggregate(self, fn: EdgeFunction, values: torch.Tensor, at_source: torch.Tensor,
                  at_target: torch.Tensor) -> torch.Tensor:
        # per block: forward messages reduced over the senders [B, T, 4H], backward ones over the receivers [B, S, 4H]
        stats = [(dense_statistics(fwd, 2), dense_statistics(bwd, 1))
                 for fwd, bwd in (m.chunk(2, dim=-1) for m in self._per_block(fn, values, at_source, at_target))]
        rows: tuple[list, list] = ([], [])  # per direction, per neuron layer [B, size, 4H]
        for _, size, blocks in self.layers:
            for d, k in enumerate(blocks):  # zero aggregates where a layer gets no messages in direction d
                rows[d].append(stats[k][d] if k is not None else stats[0][d].new_zeros(self.graphs, size,
                                                                                         stats[0][d].shape[-1]))
        return torch.stack([torch.cat(r, dim=1).flatten(0, 1) for r in rows])  # [2, B·N, 4H]

    def scaled_post(self, agg: torch.Tensor, log_deg: torch.Tensor, delta: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
        out = []
        for (start, size, blocks), *rows in zip(self.layers, *(self._layer_rows(a) for a in agg)):
            folded = folded_post_weight(weight, degree_scalers(log_deg[:, start], delta.to(log_deg)))  # [2, H_o, 4H]
            y = log_deg.new_zeros(self.graphs * size, weight.shape[0])
            for d, k in enumerate(blocks):
                if k is not None:  # no messages in direction d: zero aggregates, no term
                    y = y + F.linear(rows[d].reshape(-1, agg.shape[-1]), folded[d]).to(y.dtype)  # one product
            out.append(y.view(self.graphs, size, -1))
        return torch.cat(out, dim=1).flatten(0, 1) + bias  # [B·N, H_out]


@dataclass(frozen=True)
class LayerContext:
    """What every layer of one forward pass shares; built once per batch, outside compiled layers."""

    edge_index: torch.Tensor  # [2, E]
    log_deg: torch.Tensor  # [2, N]: log(deg + 1), forward (in-degree) and backward (out-degree)
    delta: torch.Tensor  # [2]: the training graphs' mean of log_deg per direction (PNA's δ)
    edges: EdgeLayout  # `SparseEdges` or `DenseBlocks`
