"""Metanetworks: models that read neural graphs (or flat parameters) of other networks.

`build_model(name, out_dim=..., head="graph"|"params", config=..., **overrides)` builds any model in
`MODELS`: `mlp`, `nfn-np`, `nfn-hnp`, `ng-gnn`, `ng-t`, `scalegmn`, `scalegmn-b`.
"""

from core.models.base import MetaNetwork, ModelConfig, ParamsOutput
from core.models.registry import CONFIGS, MODELS, build_model, config_for

__all__ = ["CONFIGS", "MODELS", "MetaNetwork", "ModelConfig", "ParamsOutput", "build_model", "config_for"]
