"""What a benchmark ran on, printed next to its figures."""

from __future__ import annotations

import os
import platform

import torch


def machine_info() -> dict:
    """CPU count, torch threads, device and versions."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    info = {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    info["summary"] = f"{device}, {info['cpus']} CPUs, torch {torch.__version__}"
    return info
