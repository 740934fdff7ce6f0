"""Fast path for batches of one layered architecture: per-block edge tensors, broadcasts and dense reductions.

When every graph of a batch has the same architecture and every weight block is a complete bipartite
graph (a plain MLP or CNN without skip connections), the edges of block k, for graph b, form a
[T_k, S_k] grid (edge = out · S_k + in, see `core.graph.layout`). Edge states then live as one tensor
[B, T_k, S_k, C] per block (`split_edges` / `join_edges`, views and one concatenation at the end), and

    x_src[src] + x_dst[dst]            = broadcast  x_src[b, None, s] + x_dst[b, t, None]   (`endpoints`)
    aggregate over the senders of t    = reduce the block over its S axis   (forward direction)
    aggregate over the receivers of s  = reduce the block over its T axis   (backward direction)

which replaces index_select / scatter (and their slow backward passes) by broadcasts and dense
reductions, with no Python loop over graphs and no concatenation of edge-sized tensors between layers.
The result equals the sparse computation up to float summation order; `DenseBlocks.for_batch` returns
None whenever that equality cannot be guaranteed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from core.graph.layout import GraphLayout, layout_for

# (layout, graphs, device) → the expected (edge_index, edge_type)
_TILED: dict[tuple[GraphLayout, int, str], tuple[torch.Tensor, torch.Tensor]] = {}


@dataclass(frozen=True)
class _Block:
    edge_start: int
    source_start: int
    source_size: int
    target_start: int
    target_size: int
    edge_type: int  # one type per block (`core.graph.layout.EDGE_LINEAR`, …)


def _dense_blocks(layout: GraphLayout) -> list[_Block] | None:
    """The layout's weight blocks if each neuron layer sends to and receives from at most one block."""
    if layout.num_edges != layout.residual_edge_start:  # skip-connection edges are not a dense grid
        return None
    sources = [b.source_layer for b in layout.blocks]
    targets = [b.target_layer for b in layout.blocks]
    if len(set(sources)) != len(sources) or len(set(targets)) != len(targets):
        return None
    out = []
    for b in layout.blocks:
        s, t = layout.layers[b.source_layer], layout.layers[b.target_layer]
        out.append(_Block(b.edge_start, s.start, s.size, t.start, t.size, b.edge_type))
    return out


def _tiled_structure(layout: GraphLayout, graphs: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index, edge_type) of `graphs` copies of the layout, batched the PyG way (node offsets per graph)."""
    key = (layout, graphs, str(device))  # the layout itself (hashed by identity), so a key cannot be reused
    if key not in _TILED:
        if len(_TILED) > 64:
            _TILED.clear()
        offsets = torch.arange(graphs).repeat_interleave(layout.num_edges) * layout.num_nodes
        _TILED[key] = ((layout.edge_index.repeat(1, graphs) + offsets).to(device),
                       layout.edge_type.repeat(graphs).to(device))
    return _TILED[key]


class DenseBlocks:
    """Dense view of a batch of B same-architecture graphs with complete bipartite weight blocks."""

    def __init__(self, layout: GraphLayout, blocks: list[_Block], graphs: int):
        self.layout = layout
        self.blocks = blocks
        self.graphs = graphs
        self.nodes = layout.num_nodes  # per graph
        self.edges = layout.num_edges  # per graph
        self._into = {b.target_start: b for b in blocks}  # layer start → the block its neurons receive from
        self._out_of = {b.source_start: b for b in blocks}  # layer start → the block its neurons send into

    @classmethod
    def for_batch(cls, batch: Any) -> "DenseBlocks | None":
        """The fast path for this batch, or None when its graphs differ or are not dense-block graphs."""
        arch = getattr(batch, "architecture", None)
        grid = getattr(batch, "grid_size", None)
        if isinstance(arch, (list, tuple)):
            arch = arch[0] if arch else None
        if isinstance(grid, (list, tuple)):
            grid = grid[0] if grid else None
        elif torch.is_tensor(grid):
            grid = grid.reshape(-1)[0]
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
        edge_index, edge_type = _tiled_structure(layout, graphs, batch.edge_index.device)
        if not torch.equal(batch.edge_index, edge_index):
            return None  # relabelled nodes, other architectures in the batch: use the sparse path
        if getattr(batch, "edge_type", None) is not None and not torch.equal(batch.edge_type, edge_type):
            return None  # one edge type per block is what `_Block.edge_type` promises
        return cls(layout, blocks, graphs)

    def split_edges(self, e: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Edge tensor [B·E, C] → one view [B, T_k, S_k, C] per weight block (no copy)."""
        b, c = self.graphs, e.shape[-1]
        parts = e.view(b, self.edges, c).split([k.target_size * k.source_size for k in self.blocks], dim=1)
        return tuple(p.view(b, k.target_size, k.source_size, c) for p, k in zip(parts, self.blocks))

    def join_edges(self, blocks: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Inverse of `split_edges`: per-block tensors [B, T_k, S_k, C] → [B·E, C]."""
        c = blocks[0].shape[-1]
        return torch.cat([x.reshape(self.graphs, -1, c) for x in blocks], dim=1).reshape(-1, c)

    def endpoint_terms(self, at_source: torch.Tensor, at_target: torch.Tensor,
                       k: _Block) -> tuple[torch.Tensor, torch.Tensor]:
        """Node tensors [B·N, C] → the block's senders' rows [B, S_k, C] and receivers' rows [B, T_k, C] (views)."""
        c = at_source.shape[-1]
        s = at_source.view(self.graphs, self.nodes, c)[:, k.source_start:k.source_start + k.source_size]
        t = at_target.view(self.graphs, self.nodes, c)[:, k.target_start:k.target_start + k.target_size]
        return s, t

    def endpoints(self, at_source: torch.Tensor, at_target: torch.Tensor, k: _Block) -> torch.Tensor:
        """at_source[src] + at_target[dst] on block k: node tensors [B·N, C] → [B, T_k, S_k, C] (a broadcast sum)."""
        s, t = self.endpoint_terms(at_source, at_target, k)
        return s[:, None] + t[:, :, None]

    def layer_blocks(self) -> list[tuple[int, int, _Block | None, _Block | None]]:
        """Per neuron layer: (first node, size, the block its neurons receive from, the block they send into);
        None where there is none. Every neuron of a layer has the in-degree `receives.source_size` and the
        out-degree `sends.target_size`: the PNA degree scalers are constant per layer."""
        return [(layer.start, layer.size, self._into.get(layer.start), self._out_of.get(layer.start))
                for layer in self.layout.layers]
