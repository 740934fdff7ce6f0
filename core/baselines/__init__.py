"""Baselines that need no metanetwork: per-layer weight statistics (`statnn`)."""

from core.baselines.statnn import StatNN, weight_statistics

__all__ = ["StatNN", "weight_statistics"]
