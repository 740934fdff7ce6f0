"""Weight-space symmetries: admitted group actions, function-preservation checks, canonical forms and an
equivariance harness for metanetworks."""

from core.symmetry.actions import (
    GroupElement,
    LayerSymmetry,
    SymmetryReport,
    admitted_symmetries,
    apply_to_flat,
    apply_to_graph,
    apply_to_network,
    identity_element,
    random_element,
)

__all__ = [
    "GroupElement", "LayerSymmetry", "SymmetryReport", "admitted_symmetries", "apply_to_flat", "apply_to_graph",
    "apply_to_network", "identity_element", "random_element",
]
