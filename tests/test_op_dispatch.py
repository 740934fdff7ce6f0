"""A new op kind is one place per concern: the spec's op dataclass (output shape, parameters) plus one
handler in each concern's dispatcher. These tests fail when an op kind misses a handler, and show a made-up
op kind working end to end once each concern has its handler."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import ClassVar, Sequence

import pytest
import torch

from core.errors import ArchitectureError, UnsupportedLayerError
from core.graph import from_graph, to_graph
from core.graph.layout import layout_for, layout_op
from core.network.execute import apply_op, forward, module_for, to_module
from core.network.spec import (
    OP_TYPES,
    PARAMETRISED,
    Activation,
    Architecture,
    Linear,
    Network,
    Op,
    OpKind,
    Shape,
)
from core.summary import format_summary, op_details, summarize
from core.symmetry import admitted_symmetries, check_function_preservation
from core.symmetry.actions import plan_op

# every per-op-kind dispatcher outside the spec: (concern, singledispatch function)
DISPATCHERS = [
    ("execution", apply_op),
    ("module rebuilding", module_for),
    ("neural graph layout", layout_op),
    ("symmetry analysis", plan_op),
    ("summary", op_details),
]


def test_op_union_and_registry_list_the_same_kinds():
    assert set(typing.get_args(Op)) == set(OP_TYPES.values())
    assert all(issubclass(cls, OpKind) for cls in OP_TYPES.values())


@pytest.mark.parametrize("kind", sorted(OP_TYPES))
def test_every_op_kind_states_its_shape_and_parameters(kind):
    cls = OP_TYPES[kind]
    assert cls.output_shape is not OpKind.output_shape, f"{kind} does not define output_shape"
    owns_parameters = cls.parameter_shapes is not OpKind.parameter_shapes
    assert owns_parameters == (cls in PARAMETRISED), f"{kind}: parameter_shapes disagrees with PARAMETRISED"


@pytest.mark.parametrize("concern,dispatcher", DISPATCHERS, ids=[c for c, _ in DISPATCHERS])
def test_every_op_kind_has_a_handler_for_every_concern(concern, dispatcher):
    fallback = dispatcher.dispatch(object)
    missing = sorted(kind for kind, cls in OP_TYPES.items() if dispatcher.dispatch(cls) is fallback)
    assert not missing, f"op kinds without a {concern} handler: {missing}"


# ------------------------------------------------------------------ a made-up op kind
@dataclass(frozen=True)
class _Scale(OpKind):
    """y = c·x: commutes with every neuron scaling, so it removes no symmetry."""

    factor: float
    kind: ClassVar[str] = "test_scale"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        return shapes[-1]


@dataclass(frozen=True)
class _Unhandled(OpKind):
    """An op kind with a shape but no handler anywhere."""

    kind: ClassVar[str] = "test_unhandled"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        return shapes[-1]


def _arch(op: OpKind) -> Architecture:
    return Architecture((Linear("a", 3, 5), Activation("tanh"), op, Linear("b", 5, 2)), (3,))


def test_a_missing_handler_fails_loudly_in_each_concern():
    arch = _arch(_Unhandled())
    assert arch.value_shapes()[-1] == (2,)
    params = {k: torch.randn(s) for k, s in arch.parameter_shapes()}
    with pytest.raises(ArchitectureError, match="cannot execute"):
        forward(arch, params, torch.randn(4, 3))
    with pytest.raises(ArchitectureError, match="cannot build a module"):
        module_for(_Unhandled())
    with pytest.raises(UnsupportedLayerError, match="no place in a neural graph"):
        layout_for(arch)
    with pytest.raises(NotImplementedError, match="no summary"):
        op_details(_Unhandled(), None, False)


def test_an_op_kind_without_its_shape_fails_loudly():
    @dataclass(frozen=True)
    class NoShape(OpKind):
        kind: ClassVar[str] = "test_no_shape"

    with pytest.raises(NotImplementedError, match="test_no_shape"):
        Architecture((Linear("a", 3, 2), NoShape()), (3,)).value_shapes()


def test_a_new_op_kind_works_end_to_end_with_one_handler_per_concern():
    apply_op.register(_Scale, lambda op, x, params, values: op.factor * x)
    module_for.register(_Scale, lambda op: None)
    layout_op.register(_Scale, lambda op, b, i: b.value_layer.append(b.current))
    plan_op.register(_Scale, lambda op, b, i: None)  # c·(d·x) = d·(c·x): every symmetry survives
    op_details.register(_Scale, lambda op, network, spectra: {"factor": op.factor})

    arch = _arch(_Scale(3.0))
    torch.manual_seed(0)
    net = Network(arch, {k: torch.randn(s, dtype=torch.float64) for k, s in arch.parameter_shapes()})
    x = torch.randn(7, 3, dtype=torch.float64)
    p = net.params
    expected = 3.0 * torch.tanh(x @ p["a.weight"].T + p["a.bias"]) @ p["b.weight"].T + p["b.bias"]
    torch.testing.assert_close(forward(arch, net.params, x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(to_module(net)(x), expected, rtol=0, atol=1e-12)

    graph = to_graph(net)
    assert graph.num_nodes == 3 + 5 + 2
    torch.testing.assert_close(from_graph(graph).flat(), net.flat(), rtol=0, atol=0)

    assert admitted_symmetries(arch).kinds == ["permutation", "sign"]  # tanh's, untouched by the scale
    results = check_function_preservation(net, trials=3, seed=0)
    assert results and all(r.passed for r in results)

    summary = summarize(net)
    assert summary["layers"][2] == {"index": 2, "kind": "test_scale", "input_shape": [5], "output_shape": [5],
                                    "factor": 3.0}
    assert "test_scale" in format_summary(summary)
