"""Device choice: CUDA when present, CPU otherwise."""

from __future__ import annotations

import torch

from core.errors import WeightSpaceError


def pick_device(preference: str = "auto") -> torch.device:
    """`auto` → cuda if available else cpu; `cuda` without a GPU is an error."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise WeightSpaceError("--device cuda was requested but no CUDA GPU is available")
    if preference not in ("cpu",) and not preference.startswith("cuda"):
        raise WeightSpaceError(f"unknown device {preference!r}; use auto, cpu or cuda")
    return torch.device(preference)


def describe_device(device: torch.device) -> str:
    """Readable name, e.g. `GPU: NVIDIA H100` or `CPU (2 threads)`."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"
