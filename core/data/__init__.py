"""Batches of neural graphs for tasks and training: `GraphSet` (a split grouped by architecture),
`GraphBatch` (one mini-batch with what a task's loss needs) and symmetry augmentation."""

from core.data.graph_set import (
    AUGMENT_KINDS,
    Augment,
    GraphBatch,
    GraphSet,
    Group,
    graph_set_from_networks,
    keeps_function,
    symmetry_augment,
)

__all__ = ["AUGMENT_KINDS", "Augment", "GraphBatch", "GraphSet", "Group", "graph_set_from_networks", "keeps_function",
           "symmetry_augment"]
