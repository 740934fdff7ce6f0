"""What a benchmark ran on, printed next to its figures."""

from __future__ import annotations

import os
import platform

import torch

from core.device import cpu_model


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
