"""Baselines that need no metanetwork: per-layer weight statistics (`statnn`, and `StatNNAny` for zoos of many
architectures) and an MLP on flattened weights (`FlatMLP`, one fixed architecture)."""

from core.baselines.flat_mlp import FlatMLP
from core.baselines.statnn import StatNN, StatNNAny, architecture_free_statistics, weight_statistics

__all__ = ["FlatMLP", "StatNN", "StatNNAny", "architecture_free_statistics", "weight_statistics"]
