"""The NG-GNN dense-block message step, with a fused CPU kernel:

    [γ | β] = e · Wᵀ + bias                                   e: [B, T, S, H_e], W: [4H, H_e], bias: [4H]
    a = γ ⊙ (x_src[s] + x_dst[t]) + β,   m = SiLU(a)                      γ, β: [B, T, S, 2H]
    into[b, t]   = [mean, min, max, std]_s  m[b, t, s, :H]                 [B, T, 4H]  (per receiver)
    out_of[b, s] = [mean, min, max, std]_t  m[b, t, s, H:]                 [B, S, 4H]  (per sender)

with std = sqrt(max(E[m²] − E[m]², 0) + 1e-5) − sqrt(1e-5) (`std_from_moments`), in float32.

`film_message_stats` runs the C++ kernel in `film_message_stats.cpp` on CPU tensors of float32 or
bfloat16 (bfloat16 under CPU autocast, as `F.linear` would): the FiLM product a few graphs at a time into
a buffer that stays in cache, then one pass over it instead of materialising m, its square and its
activations; the backward pass recomputes both instead of storing them (on the benchmark machine ≈ 2×
faster forward and ≈ 5× faster backward than the `torch.compile`d reference, and 34 MB less kept per
layer for 64 SIRENs; see docs/benchmarks/models.md). It is built once per machine with the system C++
compiler (the same one `torch.compile` needs; ≈ 20 s, cached under `torch.utils.cpp_extension`'s build
directory, keyed by source, torch version and CPU) and registered as a `torch.library` custom op, so it
works under autograd, autocast and `torch.compile`. Everything else (GPU, float64, no compiler, or
`WEIGHTSPACE_FUSED_KERNELS=0`) takes `reference_film_message_stats`, the same formula in torch ops;
tests check that the two agree, values and gradients.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F


SOURCE = Path(__file__).with_name("film_message_stats.cpp")
DISABLE_VARIABLE = "WEIGHTSPACE_FUSED_KERNELS"  # "0": always take the reference path
_FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-ffp-contract=off", "-fopenmp"]


CHUNK_BYTES = 4 << 20  # the FiLM product is computed this many bytes of it at a time (stays in cache)
STD_EPS = 1e-5  # std = sqrt(max(E[m²] − E[m]², 0) + eps) − sqrt(eps): 0 for equal messages, finite gradient


def std_from_moments(mean: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
    """The PNA std aggregator from E[m] and E[m²] (the dense, sparse and fused paths all use this formula)."""
    return (sq - mean * mean).clamp_min(0).add(STD_EPS).sqrt() - math.sqrt(STD_EPS)


def at_least_float32(m: torch.Tensor) -> torch.Tensor:
    """m, upcast to float32 if it is in half precision: the PNA statistics are taken in float32 at least,
    since std = sqrt(E[m²] - E[m]²) cancels badly in bfloat16."""
    return m.float() if m.dtype in (torch.float16, torch.bfloat16) else m


def block_stats(m: torch.Tensor, dim: int) -> torch.Tensor:
    """[mean, min, max, std] over `dim`, concatenated on the last axis (same formula as the sparse path),
    in float32 at least (`at_least_float32`)."""
    m = at_least_float32(m)
    mean = m.mean(dim)
    std = std_from_moments(mean, (m * m).mean(dim))
    return torch.cat([mean, m.amin(dim), m.amax(dim), std], dim=-1)


def reference_film_message_stats(e: torch.Tensor, weight: torch.Tensor, at_source: torch.Tensor,
                                 at_target: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(e [B, T, S, H_e], weight [4H, H_e], at_source [B, S, 2H], at_target [B, T, 2H], bias [4H]) →
    (into [B, T, 4H], out_of [B, S, 4H])."""
    gamma, beta = (F.linear(e, weight) + bias).chunk(2, dim=-1)  # [B, T, S, 2H] each
    m = F.silu(gamma * (at_source[:, None] + at_target[:, :, None]) + beta)
    fwd, bwd = m.chunk(2, dim=-1)  # forward | backward messages
    return block_stats(fwd, 2), block_stats(bwd, 1)


def _cpu_signature() -> str:
    """What `-march=native` depends on: the CPU's model and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            return "".join(line for line in f if line.startswith(("flags", "model name")))[:4096]
    except OSError:
        return platform.processor()


_LOADED: dict[str, Any] = {}  # "module": the built extension, or None once building failed or is switched off


def fused_extension() -> Any:
    """The compiled kernel module, or None (with one warning) where it cannot be built or is switched off.
    Built on the first call; call it once outside `torch.compile`d code (NG-GNN does, in `layer_info`)."""
    if "module" not in _LOADED:
        _LOADED["module"] = _build()
    return _LOADED["module"]


def _is_built(name: str) -> bool:
    """Whether torch's extension cache already holds this build (only to tell the user about a wait)."""
    from torch.utils import cpp_extension

    try:
        return any(Path(cpp_extension._get_build_directory(name, verbose=False)).glob(f"{name}*.so"))
    except Exception:  # a private helper of torch: never let it break loading
        return True


def _build() -> Any:
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return None
    from torch.utils import cpp_extension

    key = hashlib.sha256(SOURCE.read_bytes() + torch.__version__.encode() + _cpu_signature().encode()
                         + " ".join(_FLAGS).encode()).hexdigest()[:16]
    name = f"weightspace_film_message_stats_{key}"
    try:
        if not _is_built(name):
            print("Building the fused NG-GNN CPU kernel (once per machine, about 20 s) ...", file=sys.stderr, flush=True)
        return cpp_extension.load(name, [str(SOURCE)], extra_cflags=_FLAGS, extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as exc:  # no compiler or ninja, a read-only cache: the reference path still works
        warnings.warn(f"the fused NG-GNN kernel could not be built ({type(exc).__name__}: {str(exc)[:300]}); "
                      f"using the slower reference path", RuntimeWarning, stacklevel=3)
        return None


# The op names carry a hash of this module and the C++ source: torch.compile's on-disk caches key compiled
# graphs by the ops they call, not by those ops' fake implementations, so a changed kernel under an old name
# could be run by a stale compiled graph with the wrong output layout (it crashed here once).
_OP_VERSION = hashlib.sha256(SOURCE.read_bytes() + Path(__file__).read_bytes()).hexdigest()[:10]


@torch.library.custom_op(f"weightspace::film_message_stats_{_OP_VERSION}", mutates_args=())
def _fused(e: torch.Tensor, weight: torch.Tensor, at_source: torch.Tensor, at_target: torch.Tensor,
           bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(into, out_of, into_aux, out_of_aux); aux = [ties at min, ties at max, std-gradient factor] [.., 3H]."""
    return tuple(fused_extension().forward(e, weight, at_source, at_target, bias, True, CHUNK_BYTES))


@_fused.register_fake
def _(e, weight, at_source, at_target, bias):
    b, t, s, h = *e.shape[:3], weight.shape[0] // 4
    f32 = dict(dtype=torch.float32)
    return (e.new_empty(b, t, 4 * h, **f32), e.new_empty(b, s, 4 * h, **f32),
            e.new_empty(b, t, 3 * h, **f32), e.new_empty(b, s, 3 * h, **f32))


@torch.library.custom_op(f"weightspace::film_message_stats_inference_{_OP_VERSION}", mutates_args=())
def _fused_inference(e: torch.Tensor, weight: torch.Tensor, at_source: torch.Tensor, at_target: torch.Tensor,
                     bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(into, out_of) without what only the backward pass needs (tie counts, std-gradient factors)."""
    into, out_of, _, _ = fused_extension().forward(e, weight, at_source, at_target, bias, False, CHUNK_BYTES)
    return into, out_of


@_fused_inference.register_fake
def _(e, weight, at_source, at_target, bias):
    b, t, s, c = *e.shape[:3], weight.shape[0]
    return e.new_empty(b, t, c, dtype=torch.float32), e.new_empty(b, s, c, dtype=torch.float32)


@torch.library.custom_op(f"weightspace::film_message_stats_backward_{_OP_VERSION}", mutates_args=())
def _fused_backward(e: torch.Tensor, weight: torch.Tensor, at_source: torch.Tensor, at_target: torch.Tensor,
                    bias: torch.Tensor, into: torch.Tensor, out_of: torch.Tensor, into_aux: torch.Tensor,
                    out_of_aux: torch.Tensor, grad_into: torch.Tensor, grad_out_of: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of e and weight (in their dtype), at_source, at_target and bias (in float32)."""
    return tuple(fused_extension().backward(e, weight, at_source, at_target, bias, into, out_of, into_aux,
                                            out_of_aux, grad_into, grad_out_of, CHUNK_BYTES))


@_fused_backward.register_fake
def _(e, weight, at_source, at_target, bias, into, out_of, into_aux, out_of_aux, grad_into, grad_out_of):
    f32 = dict(dtype=torch.float32)
    return (torch.empty_like(e, memory_format=torch.contiguous_format), torch.empty_like(weight),
            at_source.new_empty(at_source.shape, **f32), at_target.new_empty(at_target.shape, **f32),
            bias.new_empty(bias.shape, **f32))


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs, *output)  # e, not its FiLM product: the backward pass recomputes that


def _backward(ctx, grad_into, grad_out_of, _grad_into_aux, _grad_out_of_aux):
    e, weight, at_source, at_target, bias, into, out_of, into_aux, out_of_aux = ctx.saved_tensors
    grad_into = torch.zeros_like(into) if grad_into is None else grad_into
    grad_out_of = torch.zeros_like(out_of) if grad_out_of is None else grad_out_of
    d_e, d_weight, d_source, d_target, d_bias = _fused_backward(e, weight, at_source, at_target, bias, into, out_of,
                                                                into_aux, out_of_aux, grad_into, grad_out_of)
    return (d_e, d_weight.to(weight.dtype), d_source.to(at_source.dtype), d_target.to(at_target.dtype),
            d_bias.to(bias.dtype))


_fused.register_autograd(_backward, setup_context=_setup_context)


def product_dtype(e: torch.Tensor) -> torch.dtype:
    """The dtype the FiLM product runs in: CPU autocast's (as for `F.linear`) or e's own."""
    if e.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return e.dtype


def fused_applies(e: torch.Tensor) -> bool:
    """Whether `film_message_stats` takes the fused kernel for edge states e (under the current autocast)."""
    return (e.device.type == "cpu" and product_dtype(e) in (torch.float32, torch.bfloat16)
            and fused_extension() is not None)


def film_message_stats(e: torch.Tensor, weight: torch.Tensor, at_source: torch.Tensor, at_target: torch.Tensor,
                       bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(into [B, T, 4H], out_of [B, S, 4H]) in float32: the fused kernel where it applies, else the reference."""
    if not fused_applies(e):
        return reference_film_message_stats(e, weight, at_source, at_target, bias)
    dtype = product_dtype(e)
    inputs = (e.to(dtype), weight.to(dtype), at_source, at_target, bias)
    if not (torch.is_grad_enabled() and any(x.requires_grad for x in inputs)):
        return _fused_inference(*inputs)
    into, out_of, _, _ = _fused(*inputs)
    return into, out_of
