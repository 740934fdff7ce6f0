"""Infer an `Architecture` from a bare state_dict.

A state_dict stores parameters, not the computation, so inference rests on stated conventions:
- layers run in key order (the registration order of `nn.Module`), grouped by module prefix
  (`seq.0`, `fc1`, `features.3`, …); a 2-d weight is a Linear, 3-d a Conv1d, 4-d a Conv2d; a 1-d weight
  with running statistics is a BatchNorm, without them (after a Linear) a LayerNorm;
- one activation after every hidden layer (after its normalisation), none after the last layer; the
  activation is *unknown* unless given or the key layout is a known format (DWSNets SIREN);
- convolutions: stride 1 and "same" padding (k // 2); a Linear after a conv reads either the global
  average pool (in_features == channels) or the flattened map (in_features == channels·H·W, square map);
  pooling layers hold no parameters and cannot be seen, so none is assumed.
Every assumption made is recorded in `network.meta["assumptions"]` and shown by `inspect`.
"""

from __future__ import annotations

import math
import re

import torch

from core.errors import ArchitectureError, CheckpointError, UnsupportedLayerError
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
)

IGNORED_SUFFIXES = ("num_batches_tracked",)


def _group(tensors: dict[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Group keys by module prefix, in order of first appearance."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = value
    return list(groups.items())


def _natural_key(prefix: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", prefix)]


def is_dwsnets_siren(tensors: dict[str, torch.Tensor]) -> bool:
    """Keys `seq.N.weight/bias` of a 2-input, 1-output MLP: the DWSNets INR format (sine, w0=30, +0.5)."""
    keys = list(tensors)
    if not keys or not all(re.fullmatch(r"seq\.\d+\.(weight|bias)", k) for k in keys):
        return False
    weights = [tensors[k] for k in keys if k.endswith("weight")]
    return all(w.dim() == 2 for w in weights) and weights[0].shape[1] == 2 and weights[-1].shape[0] == 1


class _StateDictReader:
    """Turns module groups (prefix, {leaf: tensor}), in order, into ops and parameters; one reader per
    weight rank (2-d: Linear, 3/4-d: Conv, 1-d: a normalisation)."""

    def __init__(self, act: Activation, last_weight: int, assumptions: list[str]):
        self.act = act
        self.last_weight = last_weight  # group index of the output layer: no activation after it
        self.assumptions = assumptions
        self.ops: list[Op] = []
        self.params: dict[str, torch.Tensor] = {}
        self.shape: tuple[int, ...] | None = None  # (features,) or (channels,) of a conv map while inferring
        self.input_shape: tuple[int, ...] | None = None
        self.conv_dims = 0
        self.pending_activation = False
        self.readers = {2: self._linear, 3: self._conv, 4: self._conv, 1: self._norm}

    def read(self, gi: int, prefix: str, g: dict[str, torch.Tensor]) -> None:
        """Emit the ops of module group `gi`."""
        unknown = set(g) - {"weight", "bias", "running_mean", "running_var"}
        if unknown:
            raise UnsupportedLayerError(f"module {prefix!r} has tensors {sorted(unknown)} that no supported layer has")
        if "weight" not in g:
            raise UnsupportedLayerError(f"module {prefix!r} has {sorted(g)} but no weight")
        w = g["weight"]
        reader = self.readers.get(w.dim())
        if reader is None and w.dim() == 0:
            raise UnsupportedLayerError(f"module {prefix!r}: a scalar weight is not a supported layer")
        if reader is None:
            raise UnsupportedLayerError(
                f"module {prefix!r}: {w.dim()}-d weights (3-d convolutions and beyond) are not supported"
            )
        reader(gi, prefix, g)

    def _close_layer(self) -> None:
        """The previous weight layer (and its normalisation) is complete: its activation follows."""
        if self.pending_activation:
            self.ops.append(self.act)
            self.pending_activation = False

    def _weight_layer(self, gi: int, prefix: str, g: dict[str, torch.Tensor]) -> None:
        """Store a Linear/Conv layer's weight and bias; an activation follows unless it is the output layer."""
        w, b = g["weight"], g.get("bias")
        self.params[f"{prefix}.weight"] = w
        if b is not None:
            if b.shape != (w.shape[0],):
                raise ArchitectureError(f"{prefix}.bias has shape {tuple(b.shape)}, expected ({w.shape[0]},)")
            self.params[f"{prefix}.bias"] = b
        self.pending_activation = gi != self.last_weight

    def _linear(self, gi: int, prefix: str, g: dict[str, torch.Tensor]) -> None:
        self._close_layer()
        out_f, in_f = g["weight"].shape
        if self.shape is None:
            self.input_shape = (in_f,)
        elif len(self.shape) > 1 or self.conv_dims:
            self._read_conv_map(prefix, in_f)
        elif self.shape[0] != in_f:
            raise ArchitectureError(
                f"shapes do not chain: {prefix} expects {in_f} inputs, the previous layer gives {self.shape[0]}"
            )
        self.ops.append(Linear(prefix, in_f, out_f, bias="bias" in g))
        self.shape = (out_f,)
        self._weight_layer(gi, prefix, g)

    def _read_conv_map(self, prefix: str, in_f: int) -> None:
        """A Linear after a conv: global average pooling or a flattened square map, whichever fits."""
        channels = self.shape[0]
        if in_f == channels:
            self.ops.append(GlobalAvgPool())
            self.assumptions.append(f"{prefix} reads {in_f} features from {channels} channels: global average pooling")
        elif in_f % channels == 0 and math.isqrt(in_f // channels) ** 2 == in_f // channels:
            side = math.isqrt(in_f // channels)
            self.ops.append(Flatten())
            self.assumptions.append(f"{prefix} reads a flattened {channels}×{side}×{side} map (no pooling assumed)")
            self.shape = (channels, side, side)
        else:
            raise ArchitectureError(f"{prefix} reads {in_f} features, which is not a flattening of {channels} channels")
        self.conv_dims = 0

    def _conv(self, gi: int, prefix: str, g: dict[str, torch.Tensor]) -> None:
        self._close_layer()
        dims = g["weight"].dim() - 2
        out_c, in_c, *kernel = g["weight"].shape
        if self.shape is None:
            self.input_shape = (in_c,)
            self.conv_dims = dims
        elif len(self.shape) == 1 and not self.conv_dims:
            raise UnsupportedLayerError(f"{prefix}: a convolution after a Linear layer is not supported")
        elif self.shape[0] != in_c:
            raise ArchitectureError(
                f"shapes do not chain: {prefix} expects {in_c} channels, the previous layer gives {self.shape[0]}"
            )
        elif dims != self.conv_dims:
            raise UnsupportedLayerError(f"{prefix}: mixes {self.conv_dims}-d and {dims}-d convolutions")
        if any(k % 2 == 0 for k in kernel):
            self.assumptions.append(f"{prefix}: even kernel {tuple(kernel)} with padding k//2 grows the map by one")
        padding = tuple(k // 2 for k in kernel)
        self.ops.append(Conv(prefix, in_c, out_c, tuple(kernel), (1,) * dims, padding, bias="bias" in g))
        self.shape = (out_c,)
        self._weight_layer(gi, prefix, g)

    def _norm(self, gi: int, prefix: str, g: dict[str, torch.Tensor]) -> None:
        if self.shape is None:
            raise UnsupportedLayerError(f"module {prefix!r}: normalisation before the first layer is not supported")
        n = g["weight"].shape[0]
        if n != self.shape[0]:
            raise ArchitectureError(f"{prefix} normalises {n} features but the previous layer gives {self.shape[0]}")
        if "running_mean" in g:
            self.ops.append(BatchNorm(prefix, n, affine=True, track_running_stats=True))
            keys: tuple[str, ...] = ("weight", "bias", "running_mean", "running_var")
        elif self.conv_dims:
            raise UnsupportedLayerError(
                f"module {prefix!r}: normalisation of a conv map without running statistics "
                "(GroupNorm/InstanceNorm?) is not supported"
            )
        else:
            self.ops.append(LayerNorm(prefix, n, affine=True))
            keys = ("weight", "bias")
        for k in keys:
            if k not in g:
                raise UnsupportedLayerError(f"module {prefix!r}: normalisation without {k}")
            self.params[f"{prefix}.{k}"] = g[k]


def architecture_from_state_dict(
    tensors: dict[str, torch.Tensor],
    activation: str | None = None,
    *,
    w0: float = 30.0,
    slope: float = 0.01,
    input_size: int | None = None,
) -> tuple[Architecture, dict[str, torch.Tensor], list[str]]:
    """(architecture, parameters under their keys, assumptions) for a flat state_dict."""
    assumptions: list[str] = []
    tensors = {k: v for k, v in tensors.items() if not k.endswith(IGNORED_SUFFIXES)}
    offset = None
    if activation is None and is_dwsnets_siren(tensors):
        activation, offset = "sine", 0.5
        assumptions.append("recognised the DWSNets SIREN format: sin(30·(Wx+b)) after hidden layers, output + 0.5")
    elif activation is None:
        assumptions.append(
            "activation not stored in a state_dict: reported as unknown; choose it (CLI: --activation NAME)"
        )
    act = Activation(activation or "unknown", slope=slope, w0=w0)

    groups = _group(tensors)
    order = [p for p, _ in groups]
    # registration order is normally right; if a numbered Sequential was re-ordered, sort naturally
    if order != sorted(order, key=_natural_key) and all(re.fullmatch(r"[\w.]*\d+", p) for p in order):
        groups.sort(key=lambda g: _natural_key(g[0]))

    weight_groups = [i for i, (_, g) in enumerate(groups) if "weight" in g and g["weight"].dim() >= 2]
    if not weight_groups:
        raise CheckpointError("no Linear or Conv weights found (no tensor named *.weight with 2 or more dimensions)")
    reader = _StateDictReader(act, weight_groups[-1], assumptions)
    for gi, (prefix, g) in enumerate(groups):
        reader.read(gi, prefix, g)
    ops = reader.ops
    if offset is not None:
        ops.append(Offset(offset))

    input_shape = reader.input_shape
    assert input_shape is not None
    convs = [op for op in ops if isinstance(op, Conv)]
    if convs:
        input_shape = (input_shape[0], *([_input_side(ops, input_size)] * convs[0].dims))
        assumptions.append(f"input assumed {input_shape} (stride 1, padding k//2); pass input_size to change it")
    arch = Architecture(tuple(ops), input_shape)
    arch.value_shapes()
    return arch, reader.params, assumptions


def _input_side(ops: list[Op], input_size: int | None) -> int:
    """Input width for a conv stack: forced by a flatten (stride 1, same padding, no pooling) or free."""
    flatten_at = next((i for i, op in enumerate(ops) if isinstance(op, Flatten)), None)
    if flatten_at is None:
        return input_size or 32
    linear = ops[flatten_at + 1]
    before = [op for op in ops[:flatten_at] if isinstance(op, Conv)]
    map_side = math.isqrt(linear.in_features // before[-1].out_channels)
    side = map_side - sum(1 for op in before if op.kernel_size[0] % 2 == 0)  # even kernels grow the map
    if input_size is not None and input_size != side:
        raise ArchitectureError(
            f"with stride 1 and no pooling the input must be {side} wide to give the flattened {map_side}×{map_side} "
            "map; a state_dict cannot describe pooling or strides (load the nn.Module instead)"
        )
    return side


def network_from_state_dict(
    tensors: dict[str, torch.Tensor],
    activation: str | None = None,
    *,
    w0: float = 30.0,
    slope: float = 0.01,
    input_size: int | None = None,
) -> Network:
    """A Network from a flat state_dict (see the module docstring for the conventions used)."""
    arch, params, assumptions = architecture_from_state_dict(
        tensors, activation, w0=w0, slope=slope, input_size=input_size
    )
    extra = {k: v for k, v in tensors.items() if k.endswith(IGNORED_SUFFIXES)}
    meta = {"assumptions": assumptions, "source": "state_dict"}
    if extra:
        meta["extra_buffers"] = extra
    return Network(arch, params, meta)
