"""Fast path for batches of one layered architecture: gathers and aggregations over dense weight blocks.

When every graph of a batch has the same architecture and every weight block is a complete bipartite
graph (a plain MLP or CNN without skip connections), the edges of block k, for graph b, form a
[T_k, S_k] grid (edge = out · S_k + in, see `core.graph.layout`). Then

    x_src[src] + x_dst[dst]            = broadcast  x_src[b, None, s] + x_dst[b, t, None]
    aggregate over the senders of t    = reduce the block over its S axis   (forward direction)
    aggregate over the receivers of s  = reduce the block over its T axis   (backward direction)

which replaces index_select / scatter (and their slow backward passes) by broadcasts and dense
reductions, with no Python loop over graphs. The result equals the sparse computation up to float
summation order; `DenseBlocks.for_batch` returns None whenever that equality cannot be guaranteed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from core.graph.layout import GraphLayout, layout_for

_TILED: dict[tuple[GraphLayout, int, str], torch.Tensor] = {}  # (layout, graphs, device) → expected edge_index


@dataclass(frozen=True)
class _Block:
    edge_start: int
    source_start: int
    source_size: int
    target_start: int
    target_size: int


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
        out.append(_Block(b.edge_start, s.start, s.size, t.start, t.size))
    return out


def _tiled_edge_index(layout: GraphLayout, graphs: int, device: torch.device) -> torch.Tensor:
    """edge_index of `graphs` copies of the layout, batched the PyG way (node offsets per graph)."""
    key = (layout, graphs, str(device))  # the layout itself (hashed by identity), so a key cannot be reused
    if key not in _TILED:
        if len(_TILED) > 64:
            _TILED.clear()
        offsets = torch.arange(graphs).repeat_interleave(layout.num_edges) * layout.num_nodes
        _TILED[key] = (layout.edge_index.repeat(1, graphs) + offsets).to(device)
    return _TILED[key]


def _stats(m: torch.Tensor, dim: int) -> torch.Tensor:
    """[mean, min, max, std] over `dim`, concatenated on the last axis (same formula as the sparse path)."""
    mean = m.mean(dim)
    sq = (m * m).mean(dim)
    std = (sq - mean * mean).clamp_min(0).add(1e-5).sqrt() - math.sqrt(1e-5)
    return torch.cat([mean, m.amin(dim), m.amax(dim), std], dim=-1)


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
        if not torch.equal(batch.edge_index, _tiled_edge_index(layout, graphs, batch.edge_index.device)):
            return None  # relabelled nodes, other architectures in the batch: use the sparse path
        return cls(layout, blocks, graphs)

    def pair_sum(self, at_source: torch.Tensor, at_target: torch.Tensor) -> torch.Tensor:
        """at_source[src] + at_target[dst] per edge: node tensors [B·N, C] → edge tensor [B·E, C]."""
        b, c = self.graphs, at_source.shape[-1]
        a = at_source.view(b, self.nodes, c)
        z = at_target.view(b, self.nodes, c)
        parts = []
        for k in self.blocks:
            s = a[:, k.source_start:k.source_start + k.source_size].unsqueeze(1)  # [B, 1, S, C]
            t = z[:, k.target_start:k.target_start + k.target_size].unsqueeze(2)  # [B, T, 1, C]
            parts.append((s + t).reshape(b, -1, c))  # [B, T·S, C]
        return torch.cat(parts, dim=1).reshape(b * self.edges, c)

    def multi_aggregate(self, forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
        """[mean, min, max, std] of forward messages per receiver and of backward messages per sender.

        forward, backward [B·E, H] → [2·B·N, 4H]: rows 0..B·N-1 forward, then backward (zeros where a
        node gets no message), the layout of `multi_aggregate` over `cat([dst, src + N])`.
        """
        b, h = self.graphs, forward.shape[-1]
        sizes = [k.target_size * k.source_size for k in self.blocks]
        # one split per direction (its backward is one cat, where per-block slicing would zero-fill E-sized grads)
        fwd = dict(zip(self.blocks, forward.view(b, self.edges, h).split(sizes, dim=1)))
        bwd = dict(zip(self.blocks, backward.view(b, self.edges, h).split(sizes, dim=1)))
        zeros = lambda size: forward.new_zeros(b, size, 4 * h)  # noqa: E731 - nodes with no message
        out_f, out_b = [], []
        for layer in self.layout.layers:
            k = self._into.get(layer.start)
            if k is None:
                out_f.append(zeros(layer.size))
            else:
                out_f.append(_stats(fwd[k].view(b, k.target_size, k.source_size, h), 2))  # over the senders: [B, T, 4H]
            k = self._out_of.get(layer.start)
            if k is None:
                out_b.append(zeros(layer.size))
            else:
                out_b.append(_stats(bwd[k].view(b, k.target_size, k.source_size, h), 1))  # over the receivers: [B, S, 4H]
        return torch.cat([torch.cat(out_f, 1).reshape(-1, 4 * h), torch.cat(out_b, 1).reshape(-1, 4 * h)])
