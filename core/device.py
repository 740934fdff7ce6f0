"""Device choice: CUDA when present, CPU otherwise."""

from __future__ import annotations

import platform

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


PRECISIONS = ("auto", "fp32", "bf16")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a precision setting, or None for plain float32.

    `auto`: float16 mixed precision on CUDA, float32 on CPU; `fp32`: float32 everywhere; `bf16`: bfloat16
    mixed precision on any device (fast on CPUs with AVX512-BF16/AMX and on recent GPUs; matrix products
    in bfloat16, reductions and normalisations stay in float32)."""
    if precision not in PRECISIONS:
        raise WeightSpaceError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise WeightSpaceError("--precision bf16 was requested but this GPU has no bfloat16 support")
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda":
        return torch.float16
    return None


def autocast(device: torch.device, precision: str = "auto") -> torch.autocast:
    """Context manager running the enclosed forward passes in `precision` (see `autocast_dtype`)."""
    dtype = autocast_dtype(device, precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed large blocks in glibc's heap instead of returning them to the kernel; True if applied.

    By default glibc serves allocations above ~32 MB with fresh mmap pages, so every large activation
    of a metanetwork step page-faults its memory in again (measured here: a [65536, 64] × [64, 256]
    bfloat16 product took 9.1 ms instead of 1.8 ms; both settings are needed). The price is a resident set
    that stays at its peak.
    A no-op on non-glibc systems."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameter numbers from <malloc.h>
    _ALLOCATOR_TUNED = (bool(libc.mallopt(m_mmap_threshold, 1 << 30))
                        and bool(libc.mallopt(m_trim_threshold, (1 << 31) - 1)))
    return _ALLOCATOR_TUNED


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name and bfloat16 units from /proc/cpuinfo (or the given text of one), e.g.
    `AMD EPYC (no bf16 units, family 25 model 1)` (a Zen 3 core)."""
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
    # the same model name covers generations with other kernels (AMD EPYC: Zen 3 without AVX-512, Zen 5 with it)
    family = next((line.split(":", 1)[1].strip() for line in lines if line.split(":")[0].strip() == "cpu family"), "")
    model = next((line.split(":", 1)[1].strip() for line in lines if line.split(":")[0].strip() == "model"), "")
    generation = f", family {family} model {model}" if family and model else ""
    return f"{name} ({units}{generation})" if flags else name
