"""Metanetworks: models that read neural graphs (or flat parameters) of other networks.

`build_model(name, out_dim=..., head="graph"|"params", config=..., **overrides)` builds any model in
`MODELS` (`mlp`, `nfn-np`, `nfn-hnp`, `ng-gnn`, `ng-t`, `scalegmn`, `scalegmn-b` and whatever else is
registered with `@register_model`).
"""

from core.models.base import MetaNetwork, ModelConfig, ParamsOutput
from core.models.registry import MODELS, build_model, config_for, model_class, model_names, register_model

__all__ = ["MODELS", "MetaNetwork", "ModelConfig", "ParamsOutput", "build_model", "config_for", "model_class",
           "model_names", "register_model"]
