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
        assumptions.append("activation not stored in a state_dict: reported as unknown; choose it (CLI: --activation NAME)")
    act = Activation(activation or "unknown", slope=slope, w0=w0)

    groups = _group(tensors)
    order = [p for p, _ in groups]
    # registration order is normally right; if a numbered Sequential was re-ordered, sort naturally
    if order != sorted(order, key=_natural_key) and all(re.fullmatch(r"[\w.]*\d+", p) for p in order):
        groups.sort(key=lambda g: _natural_key(g[0]))

    ops: list[Op] = []
    params: dict[str, torch.Tensor] = {}
    shape: tuple[int, ...] | None = None  # (features,) or (channels, *None) while inferring
    input_shape: tuple[int, ...] | None = None
    conv_dims = 0
    weight_groups = [i for i, (_, g) in enumerate(groups) if "weight" in g and g["weight"].dim() >= 2]
    if not weight_groups:
        raise CheckpointError("no Linear or Conv weights found (no tensor named *.weight with 2 or more dimensions)")
    last_weight = weight_groups[-1]
    pending_activation = False

    def close_layer() -> None:
        nonlocal pending_activation
        if pending_activation:
            ops.append(act)
            pending_activation = False

    for gi, (prefix, g) in enumerate(groups):
        unknown = set(g) - {"weight", "bias", "running_mean", "running_var"}
        if unknown:
            raise UnsupportedLayerError(f"module {prefix!r} has tensors {sorted(unknown)} that no supported layer has")
        if "weight" not in g:
            raise UnsupportedLayerError(f"module {prefix!r} has {sorted(g)} but no weight")
        w = g["weight"]
        b = g.get("bias")
        if w.dim() >= 2:
            close_layer()
            if w.dim() == 2:
                out_f, in_f = w.shape
                if shape is None:
                    input_shape = (in_f,)
                elif len(shape) > 1 or conv_dims:
                    channels = shape[0]
                    if in_f == channels:
                        ops.append(GlobalAvgPool())
                        assumptions.append(f"{prefix} reads {in_f} features from {channels} channels: global average pooling")
                    elif in_f % channels == 0 and math.isqrt(in_f // channels) ** 2 == in_f // channels:
                        side = math.isqrt(in_f // channels)
                        ops.append(Flatten())
                        assumptions.append(f"{prefix} reads a flattened {channels}×{side}×{side} map (no pooling assumed)")
                        shape = (channels, side, side)
                    else:
                        raise ArchitectureError(f"{prefix} reads {in_f} features, which is not a flattening of {channels} channels")
                    conv_dims = 0
                elif shape[0] != in_f:
                    raise ArchitectureError(f"shapes do not chain: {prefix} expects {in_f} inputs, the previous layer gives {shape[0]}")
                ops.append(Linear(prefix, in_f, out_f, bias=b is not None))
                shape = (out_f,)
            elif w.dim() in (3, 4):
                dims = w.dim() - 2
                out_c, in_c, *kernel = w.shape
                if shape is None:
                    input_shape = (in_c,)
                    conv_dims = dims
                elif len(shape) == 1 and not conv_dims:
                    raise UnsupportedLayerError(f"{prefix}: a convolution after a Linear layer is not supported")
                elif shape[0] != in_c:
                    raise ArchitectureError(f"shapes do not chain: {prefix} expects {in_c} channels, the previous layer gives {shape[0]}")
                elif dims != conv_dims:
                    raise UnsupportedLayerError(f"{prefix}: mixes {conv_dims}-d and {dims}-d convolutions")
                if any(k % 2 == 0 for k in kernel):
                    assumptions.append(f"{prefix}: even kernel {tuple(kernel)} with padding k//2 grows the map by one")
                ops.append(Conv(prefix, in_c, out_c, tuple(kernel), (1,) * dims, tuple(k // 2 for k in kernel), bias=b is not None))
                shape = (out_c,)
            else:
                raise UnsupportedLayerError(f"module {prefix!r}: {w.dim()}-d weights (3-d convolutions and beyond) are not supported")
            params[f"{prefix}.weight"] = w
            if b is not None:
                if b.shape != (w.shape[0],):
                    raise ArchitectureError(f"{prefix}.bias has shape {tuple(b.shape)}, expected ({w.shape[0]},)")
                params[f"{prefix}.bias"] = b
            pending_activation = gi != last_weight
        elif w.dim() == 1:
            if shape is None:
                raise UnsupportedLayerError(f"module {prefix!r}: normalisation before the first layer is not supported")
            n = w.shape[0]
            if n != shape[0]:
                raise ArchitectureError(f"{prefix} normalises {n} features but the previous layer gives {shape[0]}")
            if "running_mean" in g:
                ops.append(BatchNorm(prefix, n, affine=True, track_running_stats=True))
                keys = ("weight", "bias", "running_mean", "running_var")
            elif conv_dims:
                raise UnsupportedLayerError(f"module {prefix!r}: normalisation of a conv map without running statistics (GroupNorm/InstanceNorm?) is not supported")
            else:
                ops.append(LayerNorm(prefix, n, affine=True))
                keys = ("weight", "bias")
            for k in keys:
                if k not in g:
                    raise UnsupportedLayerError(f"module {prefix!r}: normalisation without {k}")
                params[f"{prefix}.{k}"] = g[k]
        else:
            raise UnsupportedLayerError(f"module {prefix!r}: a scalar weight is not a supported layer")
    if offset is not None:
        ops.append(Offset(offset))

    assert input_shape is not None
    convs = [op for op in ops if isinstance(op, Conv)]
    if convs:
        input_shape = (input_shape[0], *([_input_side(ops, input_size)] * convs[0].dims))
        assumptions.append(f"input assumed {input_shape} (stride 1, padding k//2); pass input_size to change it")
    arch = Architecture(tuple(ops), input_shape)
    arch.value_shapes()
    return arch, params, assumptions


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
    arch, params, assumptions = architecture_from_state_dict(tensors, activation, w0=w0, slope=slope, input_size=input_size)
    extra = {k: v for k, v in tensors.items() if k.endswith(IGNORED_SUFFIXES)}
    meta = {"assumptions": assumptions, "source": "state_dict"}
    if extra:
        meta["extra_buffers"] = extra
    return Network(arch, params, meta)
