"""Run a Network as a function, and rebuild a real `nn.Module` from it.

`forward` is pure (parameters in, outputs out), so `torch.func.vmap` runs a whole zoo of
same-architecture networks in one call (`forward_many`). Each op kind has one `apply_op` handler (how it
runs) and one `module_for` handler (the `nn.Module` that holds its parameters, if any).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ArchitectureError
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
    Pool,
    Residual,
    unflatten_params,
)

# element-wise functions by activation id; sine and leaky_relu read their parameter from the op
_ACTIVATION_FUNCTIONS = {
    "identity": lambda op, x: x,
    "relu": lambda op, x: F.relu(x),
    "leaky_relu": lambda op, x: F.leaky_relu(x, op.slope),
    "tanh": lambda op, x: torch.tanh(x),
    "sigmoid": lambda op, x: torch.sigmoid(x),
    "sine": lambda op, x: torch.sin(op.w0 * x),
    "gelu": lambda op, x: F.gelu(x),
    "silu": lambda op, x: F.silu(x),
}


def activate(op: Activation, x: torch.Tensor) -> torch.Tensor:
    """Apply one activation op."""
    fn = _ACTIVATION_FUNCTIONS.get(op.fn)
    if fn is None:
        raise ArchitectureError(
            "cannot run a network whose activation is unknown; pass it explicitly (e.g. --activation relu)"
        )
    return fn(op, x)


def _conv(op: Conv, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[op.dims]
    return conv(x, w, b, stride=op.stride, padding=op.padding)


def _pool(op: Pool, x: torch.Tensor) -> torch.Tensor:
    dims = len(op.kernel_size)
    if op.mode == "max":
        fn = {1: F.max_pool1d, 2: F.max_pool2d}[dims]
    elif op.mode == "avg":
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d}[dims]
    else:
        raise ArchitectureError(f"unknown pooling mode {op.mode!r}")
    return fn(x, op.kernel_size, op.stride, op.padding)


Params = dict[str, torch.Tensor]


@functools.singledispatch
def apply_op(op: object, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    """The value after `op`, given its input `x`, the parameters and every earlier value (`values[0]` is the
    network input). One handler per op kind."""
    raise ArchitectureError(f"cannot execute op {op!r}")


@apply_op.register(Linear)
def _(op: Linear, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return F.linear(x, params[f"{op.name}.weight"], params.get(f"{op.name}.bias"))


@apply_op.register(Conv)
def _(op: Conv, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return _conv(op, x, params[f"{op.name}.weight"], params.get(f"{op.name}.bias"))


@apply_op.register(Activation)
def _(op: Activation, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return activate(op, x)


@apply_op.register(Flatten)
def _(op: Flatten, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return x.flatten(1)


@apply_op.register(GlobalAvgPool)
def _(op: GlobalAvgPool, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return x.flatten(2).mean(-1)


@apply_op.register(Pool)
def _(op: Pool, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return _pool(op, x)


@apply_op.register(BatchNorm)
def _(op: BatchNorm, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return _batch_norm(op, params, x)


@apply_op.register(LayerNorm)
def _(op: LayerNorm, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return F.layer_norm(x, (op.num_features,), params.get(f"{op.name}.weight"), params.get(f"{op.name}.bias"), op.eps)


@apply_op.register(Residual)
def _(op: Residual, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return x + values[op.source + 1]


@apply_op.register(Offset)
def _(op: Offset, x: torch.Tensor, params: Params, values: list[torch.Tensor]) -> torch.Tensor:
    return x + op.value


def forward(architecture: Architecture, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Evaluate the network on a batch `x` of shape [batch, *input_shape] (eval mode)."""
    dtype = next(iter(params.values())).dtype if params else x.dtype
    x = x.to(dtype)
    values = [x]  # values[i + 1] is the value right after op i
    for op in architecture.ops:
        x = apply_op(op, x, params, values)
        values.append(x)
    return x


def _batch_norm(op: BatchNorm, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Eval-mode batch norm written out, so it also runs under vmap."""
    shape = (1, op.num_features) + (1,) * (x.dim() - 2)
    if op.track_running_stats:
        mean = params[f"{op.name}.running_mean"].reshape(shape)
        var = params[f"{op.name}.running_var"].reshape(shape)
    else:  # no running statistics: normalise with the batch's own (what torch does in eval mode too)
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dims, keepdim=True)
        var = x.var(dims, unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + op.eps)
    if op.affine:
        y = y * params[f"{op.name}.weight"].reshape(shape) + params[f"{op.name}.bias"].reshape(shape)
    return y


def run(network: Network, x: torch.Tensor) -> torch.Tensor:
    """Evaluate a Network on inputs `x` [batch, *input_shape]."""
    return forward(network.architecture, network.params, x)


def forward_many(architecture: Architecture, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Evaluate B same-architecture networks, given as flat parameters [B, P], on shared inputs x.

    Returns [B, batch, *output_shape]. One vectorised program, no Python loop over networks.
    """
    params = unflatten_params(architecture, flat)
    return torch.func.vmap(lambda p: forward(architecture, p, x))(params)


# ---------------------------------------------------------------------- nn.Module reconstruction
@functools.singledispatch
def module_for(op: object) -> nn.Module | None:
    """The `nn.Module` that holds `op`'s parameters under their state_dict keys (None for a parameter-free
    op). One handler per op kind."""
    raise ArchitectureError(f"cannot build a module for op {op!r}")


@module_for.register(Linear)
def _(op: Linear) -> nn.Module:
    return nn.Linear(op.in_features, op.out_features, bias=op.bias)


@module_for.register(Conv)
def _(op: Conv) -> nn.Module:
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[op.dims]
    return cls(op.in_channels, op.out_channels, op.kernel_size, op.stride, op.padding, bias=op.bias)


@module_for.register(BatchNorm)
def _(op: BatchNorm) -> nn.Module:
    return nn.BatchNorm1d(op.num_features, op.eps, affine=op.affine, track_running_stats=op.track_running_stats)


@module_for.register(LayerNorm)
def _(op: LayerNorm) -> nn.Module:
    return nn.LayerNorm(op.num_features, op.eps, elementwise_affine=op.affine)


@module_for.register(Activation)
@module_for.register(Flatten)
@module_for.register(GlobalAvgPool)
@module_for.register(Pool)
@module_for.register(Residual)
@module_for.register(Offset)
def _(op: object) -> None:
    return None  # parameter-free: `forward` runs it without a module


class NetworkModule(nn.Module):
    """A real `nn.Module` built from an Architecture; its state_dict keys are the original ones."""

    def __init__(self, architecture: Architecture):
        super().__init__()
        self.architecture = architecture
        for op in architecture.ops:
            layer = module_for(op)
            if layer is not None:
                self._attach(op.name, layer)
        self.eval()

    def _attach(self, dotted: str, layer: nn.Module) -> None:
        parent: nn.Module = self
        *path, leaf = dotted.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(leaf, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {k: v for k, v in self.state_dict(keep_vars=True).items() if not k.endswith("num_batches_tracked")}
        return forward(self.architecture, params, x)


def to_module(network: Network) -> NetworkModule:
    """Build an `nn.Module` holding exactly the Network's parameters (bit for bit)."""
    module = NetworkModule(network.architecture).to(network.dtype)  # cast first: loading copies into this dtype
    state = module.state_dict()
    for key, value in network.state_dict().items():
        if key not in state:
            continue
        state[key] = value
    module.load_state_dict(state, strict=True)
    return module
