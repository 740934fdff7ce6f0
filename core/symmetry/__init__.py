"""Weight-space symmetries: which group actions an architecture admits (permutations, positive scaling,
sign flips, sine phase shifts), their action on flat parameters / Networks / NeuralGraphs, the
function-preservation check, canonical forms and the equivariance harness for metanetworks."""

from core.symmetry.actions import (
    KINDS,
    GraphAction,
    GroupElement,
    LayerSymmetry,
    SymmetryError,
    SymmetryReport,
    admitted_symmetries,
    apply_to_flat,
    apply_to_graph,
    apply_to_network,
    augment_flat,
    graph_action,
    identity_element,
    random_element,
)
from core.symmetry.canonical import canonical_element, canonicalize
from core.symmetry.check import CheckResult, check_function_preservation, constant_output, probe_inputs
from core.symmetry.harness import equivariance_error, invariance_error, prediction_invariance_error

__all__ = [
    "KINDS", "CheckResult", "GraphAction", "GroupElement", "LayerSymmetry", "SymmetryError", "SymmetryReport",
    "admitted_symmetries", "apply_to_flat", "apply_to_graph", "apply_to_network", "augment_flat", "canonical_element",
    "canonicalize", "check_function_preservation", "constant_output", "equivariance_error", "graph_action",
    "identity_element", "invariance_error", "prediction_invariance_error", "probe_inputs", "random_element",
]
