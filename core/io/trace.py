"""Turn any `nn.Module` into a `Network` by tracing it with torch.fx.

The traced graph must be a chain (each op reads the value the previous op produced) plus identity skip
connections (`out + earlier_value`). Anything else — a layer the description cannot represent, a skip
through a layer, a branch — raises `UnsupportedLayerError` naming the fx node and its target.
Each kind of fx node has one reader (`_NODE_READERS`); each supported layer type one `module_op` handler,
and each supported function or method one entry of `_FUNCTION_OPS`.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from core.errors import ArchitectureError, UnsupportedLayerError
from core.network.spec import (
    Activation,
    Architecture,
    BatchNorm,
    Conv,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    Linear,
    Network,
    Offset,
    Op,
    Pool,
    Residual,
)

_ACTIVATION_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
    nn.GELU: "gelu", nn.SiLU: "silu", nn.Identity: "identity",
}
_ACTIVATION_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.leaky_relu: "leaky_relu", torch.tanh: "tanh", F.tanh: "tanh",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.gelu: "gelu", F.silu: "silu", torch.sin: "sine",
}
_ACTIVATION_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "sin": "sine"}


def _pair(v: Any, dims: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * dims


class _ChainBuilder:
    """Walks fx nodes in order and emits ops; tracks which fx node holds each op's output value."""

    def __init__(self, input_shape: tuple[int, ...]):
        self.input_shape = input_shape
        self.ops: list[Op] = []
        self.shape = input_shape
        self.value_of: dict[fx.Node, int] = {}  # fx node → index of the op whose output it is (-1 input)
        self.current: fx.Node | None = None
        self.shape_nodes: set[fx.Node] = set()  # x.size(0) / x.shape, used only to reshape
        self.sine_w0: float | None = None  # x * c awaiting a sin (a SIREN's sin(w0·x))
        self.modules: dict[str, nn.Module] = {}  # the traced module's submodules by qualified name

    def fail(self, node: fx.Node, why: str) -> None:
        target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
        raise UnsupportedLayerError(f"cannot represent `{node.name}` ({node.op} {target}): {why}")

    def emit(self, node: fx.Node, op: Op | None) -> None:
        if op is not None:
            self.ops.append(op)
            self.shape = Architecture(tuple(self.ops), self.input_shape).value_shapes()[-1]
        self.value_of[node] = len(self.ops) - 1
        self.current = node

    def main_input(self, node: fx.Node) -> fx.Node:
        args = [a for a in node.args if isinstance(a, fx.Node) and a not in self.shape_nodes]
        if not args:
            self.fail(node, "it reads no tensor")
        if args[0] is not self.current:
            self.fail(node, "it does not read the previous layer's output (branches are not supported)")
        if any(a is not self.current for a in args[1:]):
            self.fail(node, "it reads more than one tensor")
        return args[0]


def network_from_module(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> Network:
    """Trace `module` with torch.fx into a Network (parameters copied, keys as in `module.state_dict()`).

    `input_shape` (without batch) is needed when the first layer is a convolution; for an MLP it is
    taken from the first Linear layer.
    """
    try:
        traced = fx.symbolic_trace(module)
    except Exception as exc:
        why = str(exc).splitlines()[0]
        raise UnsupportedLayerError(f"torch.fx cannot trace {type(module).__name__}: {why}") from None
    if input_shape is None:
        first = next((m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))), None)
        if not isinstance(first, nn.Linear):
            raise ArchitectureError("pass input_shape (e.g. (1, 28, 28)): the first layer is not Linear")
        input_shape = (first.in_features,)
    b = _ChainBuilder(tuple(input_shape))
    b.modules = dict(traced.named_modules())
    for node in traced.graph.nodes:
        if b.sine_w0 is not None and _ACTIVATION_FUNCTIONS.get(node.target) != "sine" and node.target != "sin":
            b.fail(node, "a multiplication by a constant must feed sin (a SIREN's sin(w0·x))")
        _NODE_READERS[node.op](b, node)
    arch = Architecture(tuple(b.ops), tuple(input_shape))
    arch.value_shapes()
    state = module.state_dict()
    wanted = dict(arch.parameter_shapes())
    params = {k: state[k].detach().clone() for k in wanted}
    extra = {k: v.detach().clone() for k, v in state.items() if k not in wanted}
    meta: dict[str, Any] = {"source": f"nn.Module {type(module).__name__}"}
    if extra:
        meta["extra_buffers"] = extra
    return Network(arch, params, meta)


# ---------------------------------------------------------------------- one reader per kind of fx node
def _read_placeholder(b: _ChainBuilder, node: fx.Node) -> None:
    if b.current is not None:
        b.fail(node, "the network takes more than one input")
    b.value_of[node] = -1
    b.current = node


def _read_output(b: _ChainBuilder, node: fx.Node) -> None:
    if node.args[0] is not b.current:
        b.fail(node, "the output is not the last computed value")


def _read_call_module(b: _ChainBuilder, node: fx.Node) -> None:
    b.main_input(node)
    b.emit(node, module_op(b.modules[node.target], b, node))


def _read_get_attr(b: _ChainBuilder, node: fx.Node) -> None:
    b.fail(node, "a parameter used outside a supported layer")


def _read_call(b: _ChainBuilder, node: fx.Node) -> None:
    """A call_function or call_method node: arithmetic, shape queries, activations and the `_FUNCTION_OPS`."""
    if node.target in (operator.add, torch.add, "add") and len(node.args) == 2:
        b.emit(node, _add_op(b, node))
        return
    if node.target in (operator.mul, torch.mul, "mul") and len(node.args) == 2:
        _read_scale(b, node)
        return
    shape_query = node.target == "size" or (node.target is getattr and node.args[1] == "shape")
    if shape_query or (node.target is operator.getitem and node.args[0] in b.shape_nodes):
        b.shape_nodes.add(node)
        return
    b.main_input(node)
    names = _ACTIVATION_FUNCTIONS if node.op == "call_function" else _ACTIVATION_METHODS
    name = names.get(node.target)
    if name is not None:
        b.emit(node, _activation_op(b, node, name))
        return
    read = _FUNCTION_OPS.get(node.target)
    if read is None:
        b.fail(node, "this operation is not supported")
    b.emit(node, read(b, node))


def _read_scale(b: _ChainBuilder, node: fx.Node) -> None:
    """`x * w0`: remembered for the sin that must follow (a SIREN's sin(w0·x)); emits no op."""
    const = [a for a in node.args if isinstance(a, (int, float))]
    if len(const) != 1:
        b.fail(node, "only multiplication by a constant feeding sin (a SIREN's w0·x) is supported")
    b.main_input(node)
    b.sine_w0 = float(const[0])
    b.value_of[node] = len(b.ops) - 1
    b.current = node


def _activation_op(b: _ChainBuilder, node: fx.Node, name: str) -> Activation:
    if name == "sine":
        w0 = b.sine_w0 if b.sine_w0 is not None else 1.0
        b.sine_w0 = None
        return Activation("sine", w0=w0)
    slope = 0.01
    if name == "leaky_relu":
        slope = node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01)
    return Activation(name, slope=float(slope))


_NODE_READERS: dict[str, Callable[[_ChainBuilder, fx.Node], None]] = {
    "placeholder": _read_placeholder, "output": _read_output, "call_module": _read_call_module,
    "call_function": _read_call, "call_method": _read_call, "get_attr": _read_get_attr,
}


# ---------------------------------------------------------------------- one handler per layer type
@functools.singledispatch
def module_op(sub: nn.Module, b: _ChainBuilder, node: fx.Node) -> Op | None:
    """The op a called submodule stands for (None for an eval-mode no-op); one handler per layer type."""
    b.fail(node, f"layer type {type(sub).__name__} is not supported")


@module_op.register(nn.Linear)
def _(sub: nn.Linear, b: _ChainBuilder, node: fx.Node) -> Op:
    return Linear(node.target, sub.in_features, sub.out_features, bias=sub.bias is not None)


@module_op.register(nn.Conv1d)
@module_op.register(nn.Conv2d)
def _(sub: nn.Conv1d | nn.Conv2d, b: _ChainBuilder, node: fx.Node) -> Op:
    dims = 1 if isinstance(sub, nn.Conv1d) else 2
    if sub.groups != 1 or _pair(sub.dilation, dims) != (1,) * dims:
        b.fail(node, "grouped or dilated convolutions are not supported")
    if isinstance(sub.padding, str) or sub.padding_mode != "zeros":
        b.fail(node, f"padding {sub.padding!r} / mode {sub.padding_mode!r} is not supported (use integer zero padding)")
    return Conv(node.target, sub.in_channels, sub.out_channels, _pair(sub.kernel_size, dims), _pair(sub.stride, dims),
                _pair(sub.padding, dims), bias=sub.bias is not None)


@module_op.register(nn.BatchNorm1d)
@module_op.register(nn.BatchNorm2d)
def _(sub: nn.BatchNorm1d | nn.BatchNorm2d, b: _ChainBuilder, node: fx.Node) -> Op:
    return BatchNorm(node.target, sub.num_features, sub.eps, sub.affine, sub.track_running_stats)


@module_op.register(nn.LayerNorm)
def _(sub: nn.LayerNorm, b: _ChainBuilder, node: fx.Node) -> Op:
    if len(sub.normalized_shape) != 1:
        b.fail(node, "LayerNorm over more than the last dimension")
    return LayerNorm(node.target, sub.normalized_shape[0], sub.eps, sub.elementwise_affine)


@module_op.register(nn.LeakyReLU)
def _(sub: nn.LeakyReLU, b: _ChainBuilder, node: fx.Node) -> Op:
    return Activation("leaky_relu", slope=sub.negative_slope)


def _activation_module_op(fn: str) -> Callable[[nn.Module, _ChainBuilder, fx.Node], Op]:
    return lambda sub, b, node: Activation(fn)


for _cls, _fn in _ACTIVATION_MODULES.items():
    if _cls not in (nn.LeakyReLU, nn.Identity):  # LeakyReLU has its slope; Identity is a no-op
        module_op.register(_cls, _activation_module_op(_fn))


@module_op.register(nn.Identity)
@module_op.register(nn.Dropout)
@module_op.register(nn.Dropout1d)
@module_op.register(nn.Dropout2d)
def _(sub: nn.Module, b: _ChainBuilder, node: fx.Node) -> None:
    return None  # eval-mode no-ops


@module_op.register(nn.Flatten)
def _(sub: nn.Flatten, b: _ChainBuilder, node: fx.Node) -> Op:
    if sub.start_dim != 1 or sub.end_dim != -1:
        b.fail(node, "Flatten with start_dim != 1 or end_dim != -1")
    return Flatten()


@module_op.register(nn.AdaptiveAvgPool1d)
@module_op.register(nn.AdaptiveAvgPool2d)
def _(sub: nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d, b: _ChainBuilder, node: fx.Node) -> Op:
    size = _pair(sub.output_size, len(b.shape) - 1)
    if set(size) != {1}:
        b.fail(node, "adaptive pooling to a size other than 1")
    # keeps a [C, 1, 1] map; the following flatten makes it [C] — represent as GAP + no-op flatten
    return GlobalAvgPool()


@module_op.register(nn.MaxPool1d)
@module_op.register(nn.MaxPool2d)
def _(sub: nn.MaxPool1d | nn.MaxPool2d, b: _ChainBuilder, node: fx.Node) -> Op:
    dims = len(b.shape) - 1
    if _pair(sub.dilation, dims) != (1,) * dims or sub.ceil_mode:
        b.fail(node, "max pooling with dilation or ceil_mode")
    return _pool_module_op("max", sub, dims)


@module_op.register(nn.AvgPool1d)
@module_op.register(nn.AvgPool2d)
def _(sub: nn.AvgPool1d | nn.AvgPool2d, b: _ChainBuilder, node: fx.Node) -> Op:
    if sub.ceil_mode or not sub.count_include_pad:
        b.fail(node, "avg pooling with ceil_mode or count_include_pad=False")
    return _pool_module_op("avg", sub, len(b.shape) - 1)


def _pool_module_op(mode: str, sub: nn.Module, dims: int) -> Op:
    stride = sub.stride if sub.stride is not None else sub.kernel_size
    return Pool(mode, _pair(sub.kernel_size, dims), _pair(stride, dims), _pair(sub.padding, dims))


# ---------------------------------------------------------------------- functions and methods
_POOL_FUNCTIONS = {F.max_pool1d: "max", F.max_pool2d: "max", F.avg_pool1d: "avg", F.avg_pool2d: "avg"}


def _pool_function_op(b: _ChainBuilder, node: fx.Node) -> Op:
    """F.max_pool2d(x, k, stride=None, padding=0) and friends."""
    names = ("input", "kernel_size", "stride", "padding")
    args = {**dict(zip(names, node.args)), **node.kwargs}
    dims = len(b.shape) - 1
    extra = {k: v for k, v in args.items() if k not in names and v not in (False, 1, None, True)}
    if extra or args.get("ceil_mode") or args.get("count_include_pad") is False or args.get("dilation", 1) != 1:
        b.fail(node, "pooling with ceil_mode, dilation or count_include_pad=False is not supported")
    kernel = _pair(args["kernel_size"], dims)
    stride = _pair(args.get("stride") or args["kernel_size"], dims)
    return Pool(_POOL_FUNCTIONS[node.target], kernel, stride, _pair(args.get("padding", 0), dims))


def _flatten_op(b: _ChainBuilder, node: fx.Node) -> Op | None:
    if node.target in ("view", "reshape"):
        rest = [a for a in node.args[1:]]
        ok = len(rest) == 2 and rest[1] == -1 and (isinstance(rest[0], fx.Node) or rest[0] == -1)
        if not ok:
            b.fail(node, "only x.view(x.size(0), -1) style reshapes are supported")
    else:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        if start != 1:
            b.fail(node, "flatten must start at dim 1 (keep the batch dimension)")
    if len(b.shape) == 1:
        return None  # already flat: GAP output, or a [C,1,1] map after adaptive pooling
    return Flatten()


def _mean_op(b: _ChainBuilder, node: fx.Node) -> Op:
    """x.mean((2, 3)) and friends: a global average pool over all spatial dims."""
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    spatial = tuple(range(2, len(b.shape) + 1))
    if tuple(sorted(d % (len(b.shape) + 1) for d in dims)) != spatial:
        b.fail(node, "a mean over anything but all spatial dims")
    if node.kwargs.get("keepdim"):
        b.fail(node, "mean with keepdim=True")
    return GlobalAvgPool()


def _add_op(b: _ChainBuilder, node: fx.Node) -> Op:
    left, right = node.args
    tensors = [a for a in (left, right) if isinstance(a, fx.Node)]
    if len(tensors) == 1:
        const = right if tensors[0] is left else left
        if tensors[0] is not b.current or not isinstance(const, (int, float)):
            b.fail(node, "an addition that is not `value + constant` or an identity skip")
        return Offset(float(const))
    if b.current not in tensors:
        b.fail(node, "an addition of two earlier values")
    other = right if left is b.current else left
    if other not in b.value_of:
        b.fail(node, "a skip connection through a layer (only identity skips are supported)")
    return Residual(b.value_of[other])


# supported functions / methods (by fx target) that are not activations or arithmetic → their op reader
_FUNCTION_OPS: dict[Any, Callable[[_ChainBuilder, fx.Node], Op | None]] = {
    **{target: _flatten_op for target in (torch.flatten, "flatten", "view", "reshape")},
    **{target: _mean_op for target in ("mean", torch.mean)},
    **{target: _pool_function_op for target in _POOL_FUNCTIONS},
    **{target: (lambda b, node: None) for target in (F.dropout, "contiguous")},  # eval-mode no-ops
}
