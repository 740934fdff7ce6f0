"""Typed, serialisable description of a feed-forward network: an `Architecture` (a list of ops and an
input shape) plus its parameters make a `Network`.

The ops run in order on one tensor. `Residual(source=k)` adds the value the program held right after
op `k` (`-1` is the network input), which expresses identity skip connections without a graph of ops.
Parametrised ops carry the `name` of the module they came from, so parameter keys are the original
state_dict keys (`f"{name}.weight"`) and a round trip reproduces them.

Adding an op kind: its dataclass here says what the spec itself needs to know (its output shape, its
parameter tensors); every other concern registers one handler per op kind next to that concern
(`functools.singledispatch`): execution and module rebuilding in `core.network.execute`, the neural
graph in `core.graph.layout`, the symmetry analysis in `core.symmetry.actions`, the summary in
`core.summary`. `tests/test_op_dispatch.py` fails for an op kind that lacks one of them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Sequence, Union

import torch

from core.errors import ArchitectureError, UnknownActivationError

# Activation ids are stable: they are stored in neural graphs and embedded by metanetworks.
ACTIVATIONS: tuple[str, ...] = (
    "identity",
    "relu",
    "leaky_relu",
    "tanh",
    "sigmoid",
    "sine",
    "gelu",
    "silu",
    "unknown",
)
ACTIVATION_IDS: dict[str, int] = {name: i for i, name in enumerate(ACTIVATIONS)}

Shape = tuple[int, ...]


class OpKind:
    """What every op kind tells the spec: the shape it produces and the parameter tensors it owns."""

    kind: ClassVar[str]

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        """Shape of the value after this op, given the shapes of all earlier values (`shapes[-1]` is its
        input, `shapes[0]` the network input); raises ArchitectureError, prefixed with `where`, on a mismatch."""
        raise NotImplementedError(f"op kind {self.kind!r} does not define its output shape")

    def parameter_shapes(self) -> list[tuple[str, Shape]]:
        """(key, shape) of the tensors this op owns, in flat-vector order (none for parameter-free ops)."""
        return []


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _spatial_out(op: "Conv | Pool", shape: Shape, where: str) -> Shape:
    """Spatial output size of a sliding-window op (convolution or pooling) on a [C, *spatial] input."""
    spatial = tuple(_conv_out(s, k, st, p) for s, k, st, p in zip(shape[1:], op.kernel_size, op.stride, op.padding))
    if min(spatial) <= 0:
        raise ArchitectureError(f"{where} produces an empty map from input shape {shape}")
    return spatial


def _weight_and_bias(name: str, weight: Shape, bias: bool) -> list[tuple[str, Shape]]:
    return [(f"{name}.weight", weight)] + ([(f"{name}.bias", weight[:1])] if bias else [])


@dataclass(frozen=True)
class Linear(OpKind):
    """y = x Wᵀ + b; weight [out, in]."""

    name: str
    in_features: int
    out_features: int
    bias: bool = True
    kind: ClassVar[str] = "linear"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        shape = shapes[-1]
        if len(shape) != 1 or shape[0] != self.in_features:
            raise ArchitectureError(f"{where} expects {self.in_features} features but receives shape {shape}")
        return (self.out_features,)

    def parameter_shapes(self) -> list[tuple[str, Shape]]:
        return _weight_and_bias(self.name, (self.out_features, self.in_features), self.bias)


@dataclass(frozen=True)
class Conv(OpKind):
    """N-d convolution (1-d or 2-d); weight [out, in, *kernel_size]. Groups are not supported."""

    name: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...] = (1, 1)
    padding: tuple[int, ...] = (0, 0)
    bias: bool = True
    kind: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        # Broadcast uniform stride/padding (e.g. the 2-d defaults) to the kernel's dimensionality.
        for attr in ("kernel_size", "stride", "padding"):
            value = getattr(self, attr)
            value = (value,) if isinstance(value, int) else tuple(value)
            if attr != "kernel_size" and len(value) != len(self.kernel_size):
                if len(set(value)) != 1:
                    raise ArchitectureError(
                        f"conv {self.name}: {attr} {value} does not match kernel {self.kernel_size}"
                    )
                value = value[:1] * len(self.kernel_size)
            object.__setattr__(self, attr, value)

    @property
    def dims(self) -> int:
        return len(self.kernel_size)

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        shape = shapes[-1]
        if len(shape) != self.dims + 1 or shape[0] != self.in_channels:
            raise ArchitectureError(
                f"{where} expects [{self.in_channels}, {self.dims} spatial dims] but receives shape {shape}"
            )
        return (self.out_channels, *_spatial_out(self, shape, where))

    def parameter_shapes(self) -> list[tuple[str, Shape]]:
        return _weight_and_bias(self.name, (self.out_channels, self.in_channels, *self.kernel_size), self.bias)


@dataclass(frozen=True)
class Flatten(OpKind):
    """Flatten a [C, *spatial] map to C·prod(spatial) features, channel-major (as torch does)."""

    kind: ClassVar[str] = "flatten"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        return (math.prod(shapes[-1]),)


@dataclass(frozen=True)
class GlobalAvgPool(OpKind):
    """Mean over all spatial positions: [C, *spatial] → [C]."""

    kind: ClassVar[str] = "global_avg_pool"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        shape = shapes[-1]
        if len(shape) < 2:
            raise ArchitectureError(f"{where} needs a spatial map but receives shape {shape}")
        return (shape[0],)


@dataclass(frozen=True)
class Pool(OpKind):
    """Max or average pooling over spatial positions."""

    mode: str  # "max" | "avg"
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] = (0, 0)
    kind: ClassVar[str] = "pool"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        shape = shapes[-1]
        if len(shape) != len(self.kernel_size) + 1:
            raise ArchitectureError(f"{where} does not match input shape {shape}")
        return (shape[0], *_spatial_out(self, shape, where))


@dataclass(frozen=True)
class BatchNorm(OpKind):
    """Batch normalisation in eval mode over the channel (or feature) dimension."""

    name: str
    num_features: int
    eps: float = 1e-5
    affine: bool = True
    track_running_stats: bool = True
    kind: ClassVar[str] = "batch_norm"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        shape = shapes[-1]
        if shape[0] != self.num_features:
            raise ArchitectureError(f"{where} normalises {self.num_features} features but receives shape {shape}")
        return shape

    def parameter_shapes(self) -> list[tuple[str, Shape]]:
        n, keys = (self.num_features,), []
        if self.affine:
            keys += ["weight", "bias"]
        if self.track_running_stats:
            keys += ["running_mean", "running_var"]
        return [(f"{self.name}.{k}", n) for k in keys]


@dataclass(frozen=True)
class LayerNorm(OpKind):
    """Layer normalisation over the last dimension (the features of an MLP layer)."""

    name: str
    num_features: int
    eps: float = 1e-5
    affine: bool = True
    kind: ClassVar[str] = "layer_norm"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        shape = shapes[-1]
        if shape[0] != self.num_features or len(shape) != 1:
            raise ArchitectureError(f"{where} normalises {self.num_features} features but receives shape {shape}")
        return shape

    def parameter_shapes(self) -> list[tuple[str, Shape]]:
        n = (self.num_features,)
        return [(f"{self.name}.weight", n), (f"{self.name}.bias", n)] if self.affine else []


@dataclass(frozen=True)
class Activation(OpKind):
    """Element-wise non-linearity. `slope` is leaky_relu's; sine computes sin(w0·x)."""

    fn: str
    slope: float = 0.01
    w0: float = 1.0
    kind: ClassVar[str] = "activation"

    def __post_init__(self) -> None:
        if self.fn not in ACTIVATION_IDS:
            raise ArchitectureError(f"unknown activation {self.fn!r}; choose one of {', '.join(ACTIVATIONS)}")

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        return shapes[-1]

    def describe(self) -> str:
        """Human-readable name with its parameter, e.g. `sine(w0=30)`."""
        if self.fn == "sine":
            return f"sine(w0={self.w0:g})"
        if self.fn == "leaky_relu":
            return f"leaky_relu({self.slope:g})"
        return self.fn


@dataclass(frozen=True)
class Residual(OpKind):
    """Add the value held right after op `source` (-1: the network input): an identity skip."""

    source: int
    kind: ClassVar[str] = "residual"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        shape, index = shapes[-1], len(shapes) - 1
        if not -1 <= self.source < index:
            raise ArchitectureError(f"{where} adds the value of op {self.source}, which does not precede it")
        if shapes[self.source + 1] != shape:
            raise ArchitectureError(
                f"{where} adds shape {shapes[self.source + 1]} to shape {shape}; an identity skip needs equal shapes"
            )
        return shape


@dataclass(frozen=True)
class Offset(OpKind):
    """Add a constant to the output (DWSNets SIRENs add 0.5)."""

    value: float
    kind: ClassVar[str] = "offset"

    def output_shape(self, shapes: Sequence[Shape], where: str) -> Shape:
        return shapes[-1]


Op = Union[Linear, Conv, Flatten, GlobalAvgPool, Pool, BatchNorm, LayerNorm, Activation, Residual, Offset]
OP_TYPES: dict[str, type] = {
    cls.kind: cls
    for cls in (Linear, Conv, Flatten, GlobalAvgPool, Pool, BatchNorm, LayerNorm, Activation, Residual, Offset)
}
PARAMETRISED = (Linear, Conv, BatchNorm, LayerNorm)
WEIGHT_OPS = (Linear, Conv)  # ops that own a weight matrix / kernel: the edges of the neural graph
NORM_OPS = (BatchNorm, LayerNorm)  # per-feature normalisations: node features of the layer they follow


@dataclass(frozen=True)
class Architecture:
    """Ops + input shape (without batch dimension). Hashable and JSON-serialisable."""

    ops: tuple[Op, ...]
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))

    # ------------------------------------------------------------------ shapes and parameters
    def value_shapes(self) -> list[tuple[int, ...]]:
        """Shape of the value after each op (entry i+1 is after op i; entry 0 is the input).

        Raises ArchitectureError when shapes do not chain.
        """
        shapes = [self.input_shape]
        for i, op in enumerate(self.ops):
            where = f"op {i} ({op.kind}{' ' + op.name if hasattr(op, 'name') else ''})"
            shapes.append(op.output_shape(shapes, where))
        return shapes

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.value_shapes()[-1]

    def parameter_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Ordered (key, shape) of every tensor the network needs; this order defines flat vectors."""
        return [entry for op in self.ops for entry in op.parameter_shapes()]

    @property
    def num_parameters(self) -> int:
        """Number of scalars in all parameter tensors (running statistics included)."""
        return sum(math.prod(s) for _, s in self.parameter_shapes())

    def weight_layers(self) -> list[int]:
        """Indices of the Linear/Conv ops, in order."""
        return [i for i, op in enumerate(self.ops) if isinstance(op, WEIGHT_OPS)]

    def activations(self) -> list[Activation]:
        """The activation ops, in order."""
        return [op for op in self.ops if isinstance(op, Activation)]

    def with_activation(self, fn: str, slope: float = 0.01, w0: float = 1.0) -> "Architecture":
        """A copy in which every `unknown` activation becomes `fn`."""
        new = Activation(fn, slope=slope, w0=w0)
        ops = tuple(new if isinstance(op, Activation) and op.fn == "unknown" else op for op in self.ops)
        return Architecture(ops, self.input_shape)

    def check_known_activations(self) -> None:
        """Raise UnknownActivationError if any activation is `unknown`."""
        if any(op.fn == "unknown" for op in self.activations()):
            raise UnknownActivationError(
                "the checkpoint does not say its activation; pass it explicitly (e.g. --activation relu)"
            )

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        ops = []
        for op in self.ops:
            d = {"kind": op.kind, **dataclasses.asdict(op)}
            ops.append({k: list(v) if isinstance(v, tuple) else v for k, v in d.items()})
        return {"input_shape": list(self.input_shape), "ops": ops}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Architecture":
        """Inverse of `to_dict`; raises ArchitectureError on malformed input."""
        try:
            ops = []
            for od in d["ops"]:
                od = dict(od)
                op_cls = OP_TYPES[od.pop("kind")]
                names = {f.name for f in dataclasses.fields(op_cls)}
                unknown = set(od) - names
                if unknown:
                    raise ArchitectureError(f"unexpected fields {sorted(unknown)} for op {op_cls.kind}")
                ops.append(op_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in od.items()}))
            arch = cls(tuple(ops), tuple(d["input_shape"]))
        except ArchitectureError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchitectureError(f"malformed architecture description: {exc!r}") from None
        arch.value_shapes()
        return arch

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"architecture description is not valid JSON: {exc}") from None

    # ------------------------------------------------------------------ readable summary
    def describe(self) -> str:
        """One line per op, e.g. `linear seq.0: 2 → 32`."""
        lines = []
        shapes = self.value_shapes()
        for i, op in enumerate(self.ops):
            if isinstance(op, Activation):
                lines.append(f"activation {op.describe()}")
            elif hasattr(op, "name"):
                lines.append(f"{op.kind} {op.name}: {shapes[i]} → {shapes[i + 1]}")
            else:
                lines.append(f"{op.kind}: {shapes[i]} → {shapes[i + 1]}")
        return "\n".join(lines)


def mlp_architecture(
    widths: list[int], activation: str = "relu", *, w0: float = 1.0, slope: float = 0.01,
    output_offset: float | None = None, prefix: str = "layers",
) -> Architecture:
    """Plain MLP `widths[0] → … → widths[-1]` with `activation` after each hidden layer."""
    ops: list[Op] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        ops.append(Linear(f"{prefix}.{2 * i}", a, b))
        if i < len(widths) - 2:
            ops.append(Activation(activation, slope=slope, w0=w0))
    if output_offset is not None:
        ops.append(Offset(output_offset))
    return Architecture(tuple(ops), (widths[0],))


def siren_architecture(hidden: tuple[int, ...] = (32, 32), w0: float = 30.0, offset: float = 0.5) -> Architecture:
    """The DWSNets SIREN: 2 → hidden… → 1, sin(w0·(Wx+b)) after hidden layers, output + offset; keys seq.N.*."""
    widths = [2, *hidden, 1]
    ops: list[Op] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        ops.append(Linear(f"seq.{i}", a, b))
        if i < len(widths) - 2:
            ops.append(Activation("sine", w0=w0))
    if offset:
        ops.append(Offset(offset))
    return Architecture(tuple(ops), (2,))


@dataclass
class Network:
    """An architecture and its parameters (a dict keyed like the original state_dict)."""

    architecture: Architecture
    params: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = dict(self.architecture.parameter_shapes())
        missing = [k for k in expected if k not in self.params]
        if missing:
            raise ArchitectureError(f"parameters missing for {', '.join(missing[:5])}")
        extra = [k for k in self.params if k not in expected]
        if extra:
            raise ArchitectureError(f"parameters not used by the architecture: {', '.join(extra[:5])}")
        for k, shape in expected.items():
            if tuple(self.params[k].shape) != tuple(shape):
                raise ArchitectureError(f"parameter {k} has shape {tuple(self.params[k].shape)}, expected {shape}")
        self.params = {k: self.params[k] for k in expected}  # canonical order

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(self.params.items())

    @property
    def num_parameters(self) -> int:
        return self.architecture.num_parameters

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.params.values())).dtype

    def flat(self) -> torch.Tensor:
        """All parameters concatenated in `parameter_shapes` order."""
        return torch.cat([p.reshape(-1) for p in self.params.values()])

    @classmethod
    def from_flat(cls, architecture: Architecture, flat: torch.Tensor, meta: dict | None = None) -> "Network":
        """Inverse of `flat`."""
        return cls(architecture, unflatten_params(architecture, flat), dict(meta or {}))

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "Network":
        """Copy with parameters cast / moved."""
        params = {k: v.to(device=device, dtype=dtype) for k, v in self.params.items()}
        return Network(self.architecture, params, dict(self.meta))

    def clone(self) -> "Network":
        return Network(self.architecture, {k: v.clone() for k, v in self.params.items()}, dict(self.meta))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Parameters under their original keys (plus untouched extra buffers, e.g. num_batches_tracked)."""
        out = dict(self.params)
        out.update(self.meta.get("extra_buffers", {}))
        return out


def unflatten_params(architecture: Architecture, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split a flat vector [P] (or a stack [B, P]) into named tensors ([B, *shape] for stacks)."""
    shapes = architecture.parameter_shapes()
    total = sum(math.prod(s) for _, s in shapes)
    if flat.shape[-1] != total:
        raise ArchitectureError(f"flat parameter vector has {flat.shape[-1]} entries, architecture needs {total}")
    lead = flat.shape[:-1]
    out, start = {}, 0
    for key, shape in shapes:
        n = math.prod(shape)
        out[key] = flat[..., start:start + n].reshape(*lead, *shape)
        start += n
    return out
