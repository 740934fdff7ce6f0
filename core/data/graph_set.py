"""`GraphSet`: the networks of one split, grouped by architecture, served as PyG batches.

Each mini-batch holds networks of one architecture, so building it is one vectorised `to_graphs` call
(no per-network Python work) and symmetry augmentation is one `apply_to_flat` on the stacked
parameters. Shuffling mixes batches of different groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch_geometric.data import Batch

from core.graph.layout import layout_for
from core.graph.neural_graph import to_graphs
from core.network.spec import Architecture, Network

Augment = Callable[[Architecture, torch.Tensor, torch.Generator], torch.Tensor]


def keeps_function(augment: Augment | None) -> bool:
    """Whether `augment` leaves every network's function as it was (no augmentation, or symmetry transforms only).

    An augmentation says so with a true `keeps_function` attribute; one without it is taken to change functions."""
    return augment is None or bool(getattr(augment, "keeps_function", False))


@dataclass
class Group:
    """Same-architecture networks: flat parameters [n, P], their rows in the zoo table, targets [n, ...]."""

    architecture: Architecture
    flat: torch.Tensor
    index: torch.Tensor
    targets: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # per-network tensors a task needs
    # streaming: `flat` is a zoo's whole memory-mapped parameter shard and `rows` the rows of this group's networks
    # in it, read batch by batch (None: `flat` holds exactly the group's networks)
    rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.flat.shape[0] if self.rows is None else len(self.rows)

    def params(self, idx: torch.Tensor) -> torch.Tensor:
        """Parameters [k, P] of the group's networks `idx` (read from the shard when streaming)."""
        return self.flat[idx] if self.rows is None else self.flat[self.rows[idx]]


@dataclass
class GraphBatch:
    """One mini-batch: the PyG batch plus what tasks need to compute losses (parameters, targets)."""

    graph: Batch
    architecture: Architecture
    flat: torch.Tensor  # [B, P] parameters the graphs encode (after augmentation)
    index: torch.Tensor  # [B] zoo rows
    targets: torch.Tensor | None
    extras: dict[str, torch.Tensor]
    # data-parallel training: this rank's networks / (global batch / world size), so that the ranks' mean of
    # weight × loss is the global batch's loss; 1 in one process, 0 for a placeholder (see `batches(shard=…)`)
    weight: float = 1.0
    # whether `flat` went through a training augmentation that changes functions: `extras` were computed from the
    # stored networks, so a task whose extras depend on the function (inr-edit's source and target renderings)
    # recomputes them; symmetry transforms keep the function, and with it the stored extras
    augmented: bool = False

    def to(self, device: torch.device) -> "GraphBatch":
        """Move tensors to `device`."""
        return GraphBatch(self.graph.to(device), self.architecture, self.flat.to(device), self.index,
                          None if self.targets is None else self.targets.to(device),
                          {k: v.to(device) for k, v in self.extras.items()}, self.weight, self.augmented)


@dataclass
class GraphSet:
    """A split of a zoo as architecture groups; `batches()` yields `GraphBatch`es."""

    groups: list[Group]
    grid_size: int | None = None
    # applied to every batch's parameters after any augmentation: what the model reads (e.g. canonical forms,
    # `Task.model_input`); None: the parameters as they are
    prepare: Callable[[Architecture, torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.grid_size is None and self.groups:
            self.grid_size = max(layout_for(g.architecture).grid_size for g in self.groups)

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    @property
    def architectures(self) -> list[Architecture]:
        return [g.architecture for g in self.groups]

    def targets(self) -> torch.Tensor | None:
        """All targets in group order (the order `batches(shuffle=False)` yields)."""
        if any(g.targets is None for g in self.groups):
            return None
        return torch.cat([g.targets for g in self.groups])

    def subset(self, n: int, generator: torch.Generator | None = None) -> "GraphSet":
        """A random subset of about n networks (for normalisation statistics or quick checks)."""
        total = len(self)
        keep = []
        for g in self.groups:
            k = max(1, round(n * len(g) / max(total, 1)))
            idx = torch.randperm(len(g), generator=generator)[:k]
            targets = None if g.targets is None else g.targets[idx]
            keep.append(Group(g.architecture, g.params(idx), g.index[idx], targets,
                              {key: v[idx] for key, v in g.extras.items()}))
        return GraphSet(keep, self.grid_size, self.prepare)

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                augment: Augment | None = None, shard: tuple[int, int] | None = None) -> Iterator[GraphBatch]:
        """Mini-batches, each of one architecture; shuffled within and across groups if asked.

        `shard` (rank, world size): this rank's strided share of every batch, taken after augmentation so that
        all ranks draw the random transforms of one process; a rank whose share is empty gets the batch's first
        network as a placeholder of `weight` 0 (every rank must run every step)."""
        chunks: list[tuple[int, torch.Tensor]] = []
        for gi, g in enumerate(self.groups):
            order = torch.randperm(len(g), generator=generator) if shuffle else torch.arange(len(g))
            chunks += [(gi, order[s:s + batch_size]) for s in range(0, len(g), batch_size)]
        if shuffle:
            chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
        for gi, idx in chunks:
            g = self.groups[gi]
            flat = g.params(idx)
            if augment is not None:
                flat = augment(g.architecture, flat, generator)
            if self.prepare is not None:
                flat = self.prepare(g.architecture, flat)
            weight = 1.0
            if shard is not None:
                mine = torch.arange(shard[0], len(idx), shard[1])
                weight = len(mine) * shard[1] / len(idx)
                mine = mine if len(mine) else torch.arange(1)
                flat, idx = flat[mine], idx[mine]
            graph = to_graphs(g.architecture, flat, self.grid_size)
            yield GraphBatch(graph, g.architecture, flat, g.index[idx], None if g.targets is None else g.targets[idx],
                             {k: v[idx] for k, v in g.extras.items()}, weight, not keeps_function(augment))

    def num_batches(self, batch_size: int) -> int:
        """How many batches `batches(batch_size)` yields."""
        return sum((len(g) + batch_size - 1) // batch_size for g in self.groups)


# Training augmentation draws permutations and sign flips only. The other exact symmetries move weights far outside
# any trained zoo's spread, so a model that is not invariant to them learns transformed networks and then fails on
# real ones: periodic bias shifts of sine layers (kind 'phase', multiples of 2π/w0; flat-mlp dilation editor on
# mnist5k-inr: validation MSE 5.5 × the identity's with them, 0.68 × without) and positive scales of ReLU neurons
# (kind 'scale', 10**U(-2, 2); ng-gnn generalisation prediction on cnn-mnist: Kendall τ 0.751 ± 0.020 with them,
# 0.823 ± 0.035 without, 0.827 ± 0.013 with no transforms; 3 seeds each). Both are left out unless asked.
AUGMENT_KINDS = ("permutation", "sign")


def symmetry_augment(kinds: tuple[str, ...] | None = AUGMENT_KINDS) -> Augment:
    """An augmentation applying an independent random admitted group element of `kinds` (None: every admitted kind,
    phase shifts and positive scales included) to every network."""
    from core.symmetry import apply_to_flat, random_element

    def augment(arch: Architecture, flat: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        g = random_element(arch, kinds=kinds, generator=generator, batch=flat.shape[0])
        return apply_to_flat(arch, flat.double(), g).to(flat.dtype)

    augment.keeps_function = True  # every kind is an exact symmetry: the function stays, and so do its renderings
    return augment


def graph_set_from_networks(networks: list[Network], task: Any, grid_size: int) -> GraphSet:
    """Arbitrary networks (e.g. loaded files) grouped by architecture, in input order within groups.

    `task` (a `core.tasks.Task`) supplies the per-network extras its loss needs (params-head tasks only)."""
    by_arch: dict[Architecture, list[int]] = {}
    for i, net in enumerate(networks):
        by_arch.setdefault(net.architecture, []).append(i)
    groups = []
    for arch, idx in by_arch.items():
        flat = torch.stack([networks[i].flat().float() for i in idx])
        rows = np.asarray(idx)
        extras = task.extras(arch, flat, None, rows) if task.head == "params" else {}
        groups.append(Group(arch, flat, torch.as_tensor(rows), None, extras))
    return GraphSet(groups, grid_size, task.model_input)
