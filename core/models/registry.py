"""Registry of metanetworks: `MODELS[name]` is the class, `build_model(name, ...)` builds one.

Models register themselves with `@register_model`; every module of `core.models` is imported here, so a
new model is one new file (see README, "Extending"). Code that needs to know something about a model asks
its class (`fixed_architecture`, `augment_by_default`, `normalises_input`, `heads`, `symmetries`,
`options()`) or filters the registry with `model_names(where)`, never its name.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from core.models.base import MODELS, MetaNetwork, ModelConfig, ModelError, model_names, register_model

for _module in pkgutil.iter_modules([str(Path(__file__).parent)]):
    if _module.name != "registry":
        importlib.import_module(f"core.models.{_module.name}")

__all__ = ["MODELS", "build_model", "config_for", "model_class", "model_names", "register_model"]


def model_class(name: str) -> type[MetaNetwork]:
    """The registered class of model `name` (ModelError listing the choices otherwise)."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def config_for(name: str, **overrides: Any) -> ModelConfig:
    """The default config of model `name` with some fields changed."""
    return model_class(name).config_class().replace(**overrides)


def build_model(name: str, *, out_dim: int, head: str = "graph", config: ModelConfig | dict | None = None,
                **overrides: Any) -> MetaNetwork:
    """Build metanetwork `name` (a key of MODELS) with `out_dim` outputs and head "graph" or "params".

    `config` may be a config object or its `to_dict()`; `overrides` change single fields
    (e.g. `hidden=32, edge_dim=9`; `architecture=` for the fixed-architecture baselines).
    """
    cls = model_class(name)
    if config is None:
        config = cls.config_class()
    elif isinstance(config, dict):
        config = cls.config_class.from_dict(config)
    elif not isinstance(config, cls.config_class):
        raise ModelError(f"{name} needs a {cls.config_class.__name__}, got {type(config).__name__}")
    arch = overrides.get("architecture")
    if arch is not None and not isinstance(arch, dict):
        overrides["architecture"] = arch.to_dict()
    config = config.replace(**overrides)
    return cls(config, out_dim=out_dim, head=head)
