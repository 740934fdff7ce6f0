"""The architecture description (`Architecture`, ops), `Network` and its executor."""

from core.network.execute import forward, forward_many, run, to_module
from core.network.spec import (
    ACTIVATIONS,
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
    mlp_architecture,
    siren_architecture,
    unflatten_params,
)

__all__ = [
    "ACTIVATIONS", "Activation", "Architecture", "BatchNorm", "Conv", "Flatten", "GlobalAvgPool", "LayerNorm",
    "Linear", "Network", "Offset", "Pool", "Residual", "forward", "forward_many", "mlp_architecture", "run",
    "siren_architecture", "to_module", "unflatten_params",
]
