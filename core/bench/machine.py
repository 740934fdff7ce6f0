"""What a benchmark ran on, printed next to its figures."""

from __future__ import annotations

import os
import platform

import torch


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), e.g. `AMD EPYC`: figures differ a lot between CPU kinds (AMX or not)."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:  # not Linux
        names = []
    return names[0] if names else (platform.processor() or "unknown CPU")


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
    info["cpu_model"] = cpu_model()
    where = device if torch.cuda.is_available() else f"cpu: {info['cpu_model']}"
    info["summary"] = f"{where}, {info['cpus']} CPUs, torch {torch.__version__}"
    return info
