"""Save / load learned optimisers: `<dir>/optimizer.safetensors` (weights) + `<dir>/optimizer.json` (config)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from core.l2o.optimizers import LearnedRule, build_optimizer
from core.l2o.problems import L2OError

WEIGHTS = "optimizer.safetensors"
CONFIG = "optimizer.json"
FORMAT = "wse-l2o/1"


def save_optimizer(opt: LearnedRule, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the optimiser's weights and config into `directory` (created); returns the directory."""
    from safetensors.torch import save_file

    from core.io.atomic import atomic_path, write_text

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in opt.state_dict().items()}
    with atomic_path(d / WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    meta = {"format": FORMAT, "optimizer": opt.config(), "dtype": str(opt.log_lr.dtype).removeprefix("torch."),
            **(extra or {})}
    write_text(d / CONFIG, json.dumps(meta, indent=2, default=str))
    return d


def load_optimizer(directory: str | Path) -> LearnedRule:
    """Rebuild a learned optimiser saved by `save_optimizer` (a directory or its optimizer.json)."""
    from safetensors.torch import load_file

    d = Path(directory)
    if d.is_file():
        d = d.parent
    cfg_path, w_path = d / CONFIG, d / WEIGHTS
    if not cfg_path.is_file() or not w_path.is_file():
        raise L2OError(f"{d} is not a saved learned optimiser (needs {CONFIG} and {WEIGHTS})")
    try:
        meta = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise L2OError(f"{cfg_path}: not JSON ({exc})") from None
    if meta.get("format") != FORMAT:
        raise L2OError(f"{cfg_path}: unknown format {meta.get('format')!r} (expected {FORMAT})")
    opt = build_optimizer(meta["optimizer"])
    state = load_file(str(w_path))
    try:
        opt.load_state_dict(state)
    except RuntimeError as exc:
        raise L2OError(f"{w_path}: weights do not match the config ({str(exc).splitlines()[0]})") from None
    dtype = getattr(torch, meta.get("dtype", "float32"), torch.float32)
    return opt.to(dtype)


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The JSON metadata of a saved optimiser (config, training settings, tuned baselines)."""
    p = Path(directory)
    p = p if p.is_file() else p / CONFIG
    if not p.is_file():
        raise L2OError(f"no {CONFIG} in {directory}")
    return json.loads(p.read_text())
