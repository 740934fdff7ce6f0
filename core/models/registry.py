"""Registry of metanetworks: `MODELS[name]` is the class, `build_model(name, ...)` builds one."""

from __future__ import annotations

from typing import Any

from core.models.base import MetaNetwork, ModelConfig, ModelError
from core.models.mlp_baseline import MLPBaseline
from core.models.nfn_baseline import NFNHNP, NFNNP
from core.models.ng_gnn import NGGNN
from core.models.ng_t import NGT
from core.models.scalegmn import ScaleGMN, ScaleGMNB

MODELS: dict[str, type[MetaNetwork]] = {
    "mlp": MLPBaseline,
    "nfn-np": NFNNP,
    "nfn-hnp": NFNHNP,
    "ng-gnn": NGGNN,
    "ng-t": NGT,
    "scalegmn": ScaleGMN,
    "scalegmn-b": ScaleGMNB,
}

CONFIGS: dict[str, type[ModelConfig]] = {name: cls.config_class for name, cls in MODELS.items()}


def config_for(name: str, **overrides: Any) -> ModelConfig:
    """The default config of model `name` with some fields changed."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return CONFIGS[name]().replace(**overrides)


def build_model(name: str, *, out_dim: int, head: str = "graph", config: ModelConfig | dict | None = None,
                **overrides: Any) -> MetaNetwork:
    """Build metanetwork `name` (a key of MODELS) with `out_dim` outputs and head "graph" or "params".

    `config` may be a config object or its `to_dict()`; `overrides` change single fields
    (e.g. `hidden=32, edge_dim=9`; `architecture=` for the fixed-architecture baselines).
    """
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cls = MODELS[name]
    if config is None:
        config = cls.config_class()
    elif isinstance(config, dict):
        config = cls.config_class.from_dict(config)
    elif not isinstance(config, cls.config_class):
        raise ModelError(f"{name} needs a {cls.config_class.__name__}, got {type(config).__name__}")
    if "architecture" in overrides and overrides["architecture"] is not None and not isinstance(overrides["architecture"], dict):
        overrides["architecture"] = overrides["architecture"].to_dict()
    config = config.replace(**overrides)
    return cls(config, out_dim=out_dim, head=head)
