"""What a benchmark ran on, printed next to its figures."""

from __future__ import annotations

import os
import platform

import torch


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name and bfloat16 units from /proc/cpuinfo (or the given text of one), e.g.
    `AMD EPYC (AVX512-BF16, no AMX)`."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:  # not Linux
            cpuinfo = ""
    lines = cpuinfo.splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    # the bfloat16 product units decide the bf16 figures: AMX tiles, AVX512-BF16 dot products, or neither
    units = "AMX" if "amx_bf16" in flags else "AVX512-BF16, no AMX" if "avx512_bf16" in flags else "no bf16 units"
    name = names[0] if names else (platform.processor() or "unknown CPU")
    return f"{name} ({units})" if flags else name


def numpy_blas() -> str:
    """numpy's BLAS and the kernels it picked for this CPU, e.g. `openblas SkylakeX` (OPENBLAS_CORETYPE can force
    older ones, which run fp32 products at half speed on AVX-512 CPUs)."""
    import numpy  # noqa: F401  (loads the BLAS, so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    found = [f"{i.get('internal_api')} {i.get('architecture') or ''}".strip()
             for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(dict.fromkeys(found)) or "unknown"  # numpy's and scipy's copies of OpenBLAS may both be loaded


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
    info["numpy_blas"] = numpy_blas()  # the INR fitter's CPU matrix products run there (core/zoo/inr.py)
    where = device if torch.cuda.is_available() else f"cpu: {info['cpu_model']}, numpy BLAS {info['numpy_blas']}"
    info["summary"] = f"{where}, {info['cpus']} CPUs, torch {torch.__version__}"
    return info
