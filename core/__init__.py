"""Weight-Space Explorer's library: networks as data.

The public API (imported lazily, so `python -m core --help` stays fast):

    net = core.load_network("model.pt", activation="relu")   # any supported checkpoint, safely
    net = core.network_from_module(module, input_shape)      # or trace an nn.Module with torch.fx
    graph = core.to_graph(net)                               # NeuralGraph (PyG Data)
    net2 = core.from_graph(graph)                            # exact inverse
    y = core.run(net, x)                                     # run it as a function
    module = core.to_module(net)                             # a real nn.Module with the same state_dict
    core.save_network(net, "model.safetensors")              # export: round-trips without code
    print(core.summarize(net))                               # counts, layers, weight statistics
"""

from __future__ import annotations

import importlib
from typing import Any

_API: dict[str, str] = {
    "Architecture": "core.network",
    "Network": "core.network",
    "run": "core.network",
    "forward_many": "core.network",
    "to_module": "core.network",
    "mlp_architecture": "core.network",
    "siren_architecture": "core.network",
    "NeuralGraph": "core.graph",
    "to_graph": "core.graph",
    "to_graphs": "core.graph",
    "from_graph": "core.graph",
    "from_graphs": "core.graph",
    "load_network": "core.io",
    "save_network": "core.io",
    "network_from_module": "core.io",
    "network_from_state_dict": "core.io",
    "summarize": "core.summary",
    "WeightSpaceError": "core.errors",
    "CheckpointError": "core.errors",
    "UnsafeCheckpointError": "core.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
