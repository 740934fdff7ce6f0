"""Batched SIREN fitting: many INRs trained at once as one tensor program (DWSNets recipe by default).

Coordinates follow DWSNets: `coordinate_grid(h, w)` lists pixels row-major (pixel (i, j) at index
i·w + j) with coordinate (x, y) = (linspace(-1, 1, w)[j], linspace(-1, 1, h)[i]) — x follows the column,
as `np.meshgrid` with its default 'xy' indexing gives. An INR maps (x, y) to the grey value at (i, j).

`fit_inrs` trains B networks in lock-step with hand-written forward/backward passes and a functional
Adam over the whole stack (no autograd, no per-network Python loop):
  * the first layer is separable on a grid — sin(w0(a·x_j + c·y_i + b)) = sin(P_j + Q_i) — so its sine
    and cosine come from angle-addition products of per-row and per-column values (one batched matrix product
    with inner size 2) instead of H·W·h transcendental calls;
  * activations are stored feature-major [B, width, H·W], so per-pixel factors broadcast along rows; a row of
    ones under each hidden activation that feeds another sine layer lets that layer's bias ride in its bmm;
    the output layer's bias, the offset and the target enter its bmm as the addend;
  * w0 (and in the backward pass the output weights) is folded into the small weight matrices, never applied to
    the large activation tensors; the first layer's gradient is one product with a [3, H·W] basis (1, x, y);
  * each INR stops on its own when it reaches the target PSNR: its parameters are saved at that moment,
    it is frozen by a mask, and its slot is refilled with the next waiting image (or the batch is
    compacted when no image waits), so compute goes only to INRs still training;
  * on CPU the batched matrix products and the sines run through numpy (`_bmm`, `_sine`): its OpenBLAS and SIMD
    sine beat torch's MKL paths on the AMD host (measured in the helpers' docstrings).
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from core.errors import WeightSpaceError
from core.network.execute import forward_many
from core.network.spec import Architecture, siren_architecture


class FitError(WeightSpaceError, ValueError):
    """INR fitting got inconsistent inputs (image shapes, seeds, options)."""


# INRs fitted at once, by default as many as make one per-step [B, width, H·W] tensor this many floats (1.6 MB:
# 16 INRs at 28×28, width 32). The tensors must stay in the cache, which the build's workers share: with numpy
# doing the products and sines, two processes fitting 28×28 INRs at once on the 2-core Zen 5 host (32 MB L3) ran
# 83 µs per INR-step at 16, 84 at 12, 85 at 24, 97 at 8, 96 at 32 and 141 at 64 (2026-12-04, 192 images × 200
# steps each; docs/benchmarks/inr_learning.md). Small images need more INRs per step to amortise the per-step
# overhead: 8×8 with width 16 (the digits zoo, 392 by this rule) ran 29 µs at 16, 15.5 at 64, 9–12 at 256.
FIT_ACTIVATIONS = 16 * 784 * 32


def fit_batch_size(h: int, w: int, hidden: Sequence[int]) -> int:
    """Default number of INRs fitted at once for H×W images and these hidden widths (see FIT_ACTIVATIONS)."""
    return max(1, min(1024, FIT_ACTIVATIONS // (h * w * max(int(k) for k in hidden))))


def coordinate_grid(h: int, w: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel coordinates [h·w, 2] on [-1, 1]; row-major pixels, columns (x = column, y = row)."""
    xs = torch.linspace(-1.0, 1.0, w, dtype=dtype)
    ys = torch.linspace(-1.0, 1.0, h, dtype=dtype)
    return torch.stack([xs.repeat(h), ys.repeat_interleave(w)], dim=1)


def render_inr(architecture: Architecture, flat: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Evaluate INRs (flat [B, P] or [P]) on a size×size grid → images [B, H, W] (or [H, W] for one)."""
    h, w = (size, size) if isinstance(size, int) else size
    single = flat.dim() == 1
    flat = flat[None] if single else flat
    out = forward_many(architecture, flat, coordinate_grid(h, w, flat.dtype))
    images = out.reshape(flat.shape[0], h, w)
    return images[0] if single else images


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for images in [0, 1] (peak 1)."""
    return -10.0 * torch.log10(mse.clamp_min(1e-20))


INIT_SCHEMES = ("dwsnets", "shared", "siren")  # zoo-level choices; `shared` draws `dwsnets` from one seed


def siren_init(hidden: Sequence[int], w0: float, seed: int, dtype: torch.dtype = torch.float32,
               scheme: str = "dwsnets") -> torch.Tensor:
    """Initial parameters of one SIREN as a flat vector in `siren_architecture(hidden)` order, from `seed` alone.

    `dwsnets`: every sine layer, the first included, has weights U(±√(6/fan_in)/w0) and zero biases; the
    output layer has weights and bias U(±1/√fan_in), the bounds of torch's default `nn.Linear` init.
    `siren`: first-layer weights U(±1/fan_in), later weights U(±√(6/fan_in)/w0), every bias U(±1/√fan_in)
    (the initialisation of zoos built before the `init` option existed).
    """
    if scheme not in ("dwsnets", "siren"):
        raise FitError(f"unknown init scheme {scheme!r}; choose dwsnets or siren")
    g = torch.Generator().manual_seed(int(seed))
    widths = [2, *hidden, 1]
    last = len(widths) - 2
    parts = []

    def uniform(count: int, bound: float) -> torch.Tensor:
        return (torch.rand(count, generator=g, dtype=torch.float64) * 2 - 1) * bound

    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        if scheme == "siren":  # draw order kept exactly so older zoos' initial values can be rebuilt
            bound = 1.0 / fan_in if layer == 0 else math.sqrt(6.0 / fan_in) / w0
            parts += [uniform(fan_out * fan_in, bound), uniform(fan_out, 1.0 / math.sqrt(fan_in))]
        elif layer < last:
            parts += [uniform(fan_out * fan_in, math.sqrt(6.0 / fan_in) / w0),
                      torch.zeros(fan_out, dtype=torch.float64)]
        else:
            parts += [uniform(fan_out * fan_in, 1.0 / math.sqrt(fan_in)), uniform(fan_out, 1.0 / math.sqrt(fan_in))]
    return torch.cat(parts).to(dtype)


class _Layout:
    """Working layout of the stacked parameters: [W1 | b1 | (W_l | b_l) row-extended … | (W_out | b_out)].

    Layers after the first store [out, in + 1] (bias as the last column) so a bmm against activations
    with a trailing ones column applies weight and bias at once.
    """

    def __init__(self, hidden: Sequence[int]):
        self.hidden = list(hidden)
        widths = [2, *hidden, 1]
        self.blocks: list[tuple[int, tuple[int, int]]] = []  # (offset, shape) per layer ≥ 1 (extended)
        h1 = widths[1]
        self.w1 = (0, (h1, 2))
        self.b1 = (2 * h1, (h1,))
        off = 3 * h1
        for fan_in, fan_out in zip(widths[1:-1], widths[2:]):
            self.blocks.append((off, (fan_out, fan_in + 1)))
            off += fan_out * (fan_in + 1)
        self.size = off

    def views(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(W1 [B,h1,2], b1 [B,h1], extended blocks [B,out,in+1]) as views of t [B, size]."""
        b = t.shape[0]
        (o, s), (ob, sb) = self.w1, self.b1
        w1 = t[:, o:o + s[0] * s[1]].view(b, *s)
        b1 = t[:, ob:ob + sb[0]]
        blocks = [t[:, off:off + shp[0] * shp[1]].view(b, *shp) for off, shp in self.blocks]
        return w1, b1, blocks

    def from_canonical(self, flat: torch.Tensor) -> torch.Tensor:
        """Canonical `siren_architecture` flat order [B, P] → working layout [B, size] (same count)."""
        b = flat.shape[0]
        out = torch.empty(b, self.size, dtype=flat.dtype)
        h1 = self.hidden[0]
        out[:, :3 * h1] = flat[:, :3 * h1]
        src = 3 * h1
        for off, (fo, fi1) in self.blocks:
            fi = fi1 - 1
            block = out[:, off:off + fo * fi1].view(b, fo, fi1)
            block[:, :, :fi] = flat[:, src:src + fo * fi].view(b, fo, fi)
            block[:, :, fi] = flat[:, src + fo * fi:src + fo * fi + fo]
            src += fo * fi + fo
        return out

    def to_canonical(self, work: torch.Tensor) -> torch.Tensor:
        """Inverse of `from_canonical`."""
        b = work.shape[0]
        h1 = self.hidden[0]
        parts = [work[:, :3 * h1]]
        for off, (fo, fi1) in self.blocks:
            block = work[:, off:off + fo * fi1].view(b, fo, fi1)
            parts += [block[:, :, :-1].reshape(b, -1), block[:, :, -1]]
        return torch.cat(parts, dim=1)


def _sine(x: torch.Tensor, out: torch.Tensor, cosine: bool = False) -> torch.Tensor:
    """out = sin(x), or cos(x); `out` may be `x` itself. On CPU through numpy's SIMD kernels.

    Why: torch's CPU float sin/cos go through MKL's vector math library, which on the AMD Zen 5 host ran 2.7×
    slower than numpy's own kernels (1.78 vs 0.65 ms for a [64, 32, 784] float32 tensor, one thread) — a third of
    a fitting step. Accuracy on float32 arguments up to ±100: numpy ≤ 7e-8 absolute error, torch ≤ 4e-8.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        (np.cos if cosine else np.sin)(x.detach().numpy(), out=out.detach().numpy())
        return out
    return torch.cos(x, out=out) if cosine else torch.sin(x, out=out)


def _bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = a @ b for stacks of matrices [B, m, k] @ [B, k, n]. On CPU through numpy's BLAS (OpenBLAS).

    Why: on the AMD Zen 5 host torch's MKL runs these fp32 products at ≈ 100 GFLOP/s ([64, 32, 32] @ [64, 32, 784],
    one thread); OpenBLAS runs them at 253 with the AVX-512 kernels it picks for that CPU, and at 112 where
    OPENBLAS_CORETYPE forces its Haswell ones (as that machine's environment does).
    """
    if a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64):
        np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.detach().numpy())
        return out
    return torch.bmm(a, b, out=out)


class _Batch:
    """Forward/backward of B SIRENs on one shared H×W grid, hand-written for speed."""

    def __init__(self, layout: _Layout, h: int, w: int, w0: float, offset: float, dtype: torch.dtype):
        self.layout, self.h, self.w, self.w0, self.offset = layout, h, w, w0, offset
        self.n = h * w
        self.x = torch.linspace(-1.0, 1.0, w, dtype=dtype)
        self.y = torch.linspace(-1.0, 1.0, h, dtype=dtype)
        self.dtype = dtype

    def _workspace(self, b: int) -> dict[str, torch.Tensor]:
        """Big per-step buffers, feature-major [B, k, N], allocated once per batch size (fresh ones cost page faults).

        s0: layer 1's sin and cos rows, [B, h1 + 1, 2, N] (the extra channel is the ones row of layer 2's bias).
        a{l}: sin(Z_l), with a ones row when a further layer reads it, so that layer's bias rides in its bmm.
        d{l}: Z_l, then cos(Z_l). g{l}: gradients. Per-pixel factors then broadcast along rows, never along the
        innermost dimension (a stride-0 innermost operand makes torch's element-wise loops ~3× slower).
        """
        if getattr(self, "_ws_b", None) != b:
            n, hid = self.n, self.layout.hidden
            last = len(hid) - 1
            h1, h, w = hid[0], self.h, self.w
            ws: dict[str, torch.Tensor] = {"s0": torch.empty(b, h1 + 1, 2, n, dtype=self.dtype)}
            # layer-1 factors: left [[sin Q, cos Q], [cos Q, −sin Q]] (stored transposed, so each factor is a
            # contiguous row), right [cos P; sin P]; the extra channel's constants (sin Q = 0, cos Q = 1, cos P = 0,
            # sin P = 1) are written once here
            left = torch.zeros(b, h1 + 1, 2, 2, h, dtype=self.dtype)   # [B, channel, × cos P | × sin P, sin | cos, H]
            left[:, h1, 0, 1] = 1.0
            left[:, h1, 1, 0] = 1.0
            right = torch.zeros(b, h1 + 1, 2, w, dtype=self.dtype)
            right[:, h1, 1] = 1.0
            ws["left"], ws["right"] = left, right
            for li, k in enumerate(hid):
                if li:
                    ws[f"a{li}"] = torch.empty(b, k + 1 if li < last else k, n, dtype=self.dtype)
                    if li < last:
                        ws[f"a{li}"][:, k] = 1.0
                    ws[f"d{li}"] = torch.empty(b, k, n, dtype=self.dtype)
                ws[f"g{li}"] = torch.empty(b, k, n, dtype=self.dtype)
            ws["out"] = torch.empty(b, 1, n, dtype=self.dtype)
            self._ws, self._ws_b = ws, b
            self._basis = torch.stack([torch.ones(n, dtype=self.dtype), self.x.repeat(self.h),
                                       self.y.repeat_interleave(self.w)])                  # [3, N]: 1, x_j, y_i
        return self._ws

    def loss_and_grad(self, theta: torch.Tensor, target: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Per-INR MSE [B] at `theta`; writes d(MSE_b)/d(theta_b) into `grad` (working layout)."""
        b, h, w, n, w0 = theta.shape[0], self.h, self.w, self.n, self.w0
        ws = self._workspace(b)
        w1, b1, blocks = self.layout.views(theta)
        gw1, gb1, gblocks = self.layout.views(grad)
        hid = self.layout.hidden
        h1, last = hid[0], len(hid) - 1
        # ---- layer 1, separable on the grid: w0(W1·(x_j, y_i) + b1) = P_j + Q_i, so per channel
        # [sin; cos](P_j + Q_i) = [[sin Q, cos Q], [cos Q, −sin Q]] · [cos P; sin P]: one bmm with inner size 2.
        # An extra channel (sin Q = 0, cos Q = 1, cos P = 0, sin P = 1) gives the ones row.
        p = (w0 * w1[:, :, 0, None]) * self.x                                      # [B, h1, W]
        q = torch.addcmul(b1[:, :, None], w1[:, :, 1, None], self.y) * w0            # [B, h1, H]
        left, right, s0 = ws["left"], ws["right"], ws["s0"]                          # [B, h1 + 1, 2, 2, H], [.., 2, W]
        _sine(q, left[:, :h1, 0, 0])
        _sine(q, left[:, :h1, 0, 1], cosine=True)
        left[:, :h1, 1, 0] = left[:, :h1, 0, 1]
        torch.neg(left[:, :h1, 0, 0], out=left[:, :h1, 1, 1])
        _sine(p, right[:, :h1, 0], cosine=True)
        _sine(p, right[:, :h1, 1])
        _bmm(left.view(-1, 2, 2 * h).transpose(1, 2), right.view(-1, 2, w), s0.view(-1, 2 * h, w))
        a0, d0 = s0[:, :, 0], s0[:, :h1, 1]                                          # [B, h1 + 1, N], [B, h1, N]
        acts, coss = [a0], [d0]
        # ---- further sine layers: Z_l = (w0·[W_l | b_l]) · [A_{l-1}; 1]
        for li in range(1, len(hid)):
            z = ws[f"d{li}"]                                                        # [B, k_l, N]
            _bmm(w0 * blocks[li - 1], acts[-1], z)
            _sine(z, ws[f"a{li}"][:, :hid[li]])
            acts.append(ws[f"a{li}"])                                               # with its ones row if any
            coss.append(_sine(z, z, cosine=True))
        out_blk = blocks[-1]                                                        # [B, 1, h_L + 1]
        w_out = out_blk[:, :, :-1]                                                  # [B, 1, h_L]
        a_last = acts[-1][:, :hid[-1]]                                              # [B, h_L, N]
        # residual = w_out·A_L + (b_out + offset − target): bias, offset and target ride in the addend
        addend = (out_blk[:, :, -1:] + self.offset) - target[:, None, :]           # [B, 1, N]
        r = torch.baddbmm(addend, w_out, a_last, out=ws["out"])                     # [B, 1, N]
        mse = r.square().mean(2)[:, 0]
        # ---- backward
        dout = r.mul_(2.0 / n)                                                      # [B, 1, N]
        _bmm(dout, a_last.transpose(1, 2), gblocks[-1][:, :, :-1])
        gblocks[-1][:, :, -1] = dout.sum(2)
        # dZ_L = w_out·cos(Z_L)·dout; the w_out factor (one per row) is applied to the small matrices instead
        cz = torch.mul(coss[last], dout, out=ws[f"g{last}"])                         # [B, h_L, N]
        scale = w_out.transpose(1, 2)                                               # [B, h_L, 1]
        for li in range(last, 0, -1):
            row = w0 * scale if li == last else w0                                  # [B, k_l, 1] or scalar
            _bmm(cz, acts[li - 1].transpose(1, 2), gblocks[li - 1]).mul_(row)
            wt = (row * blocks[li - 1][:, :, :-1]).transpose(1, 2)                  # [B, k_{l-1}, k_l]
            cz = _bmm(wt, cz, ws[f"g{li - 1}"]).mul_(coss[li - 1])
        # cz (·w_out when there is one hidden layer) is d/dZ1, the layer-1 pre-activation before w0, [B, h1, N];
        # one product with the [3, N] basis (1, x_j, y_i) gives Σ dZ1, Σ dZ1·x, Σ dZ1·y
        m = (self._basis @ cz.reshape(b * h1, n).T).view(3, b, h1).mul_(w0)      # [3, B, h1]
        if last == 0:
            m.mul_(scale[:, :, 0])
        gb1.copy_(m[0])
        gw1.copy_(m[1:].permute(1, 2, 0))
        return mse


def fit_inrs(
    images: torch.Tensor,
    *,
    hidden: Sequence[int] = (32, 32),
    w0: float = 30.0,
    offset: float = 0.5,
    steps: int = 1000,
    lr: float = 5e-4,
    target_psnr: float | None = 40.0,
    seeds: Sequence[int] | int = 0,
    init: str = "dwsnets",
    batch_size: int | None = None,
    refill_every: int = 5,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    dtype: torch.dtype = torch.float32,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit one SIREN per image, `batch_size` at a time, as one batched tensor program.

    images [n, H, W] in [0, 1]. Each INR trains with Adam on the MSE until its PSNR reaches
    `target_psnr` (None: never stop early) or `steps` updates. Returns (flat [n, P] in
    `siren_architecture(hidden, w0, offset)` order, PSNR [n] of the returned parameters, updates [n]).
    `seeds`: one per image, or an int s giving seeds s, s+1, …; each INR starts from
    `siren_init(hidden, w0, seed, scheme=init)` (`init`: dwsnets or siren). An INR's result depends only on
    its image and its seed: `batch_size` (None: `fit_batch_size`) changes the speed, not the result (to float
    rounding; tested).
    `progress(k)` is called as k more INRs finish. `threads`:
    torch threads while fitting (None: the current `torch.get_num_threads()`, which honours OMP_NUM_THREADS).
    """
    if images.dim() != 3:
        raise FitError(f"images must be [n, H, W], got shape {tuple(images.shape)}")
    n, h, w = images.shape
    if isinstance(seeds, int):
        seeds = list(range(seeds, seeds + n))
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise FitError(f"need one seed per image: {len(seeds)} seeds for {n} images")
    if not hidden or any(int(k) < 1 for k in hidden):
        raise FitError(f"hidden widths must be positive, got {hidden}")
    if batch_size is None:
        batch_size = fit_batch_size(h, w, hidden)
    if steps < 0 or batch_size < 1:
        raise FitError("steps must be ≥ 0 and batch_size ≥ 1")
    if init not in ("dwsnets", "siren"):
        raise FitError(f"unknown init scheme {init!r}; choose dwsnets or siren")
    if threads is None:  # torch's setting, so OMP_NUM_THREADS=1 keeps a build on one core
        threads = torch.get_num_threads()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # numpy does the CPU products (its BLAS pool capped like torch's) and sines (a diverging INR's inf must
        # give NaN quietly, as torch does, not a warning per step)
        with threadpool_limits(limits=threads, user_api="blas"), np.errstate(invalid="ignore", over="ignore"):
            return _fit(images.to(dtype).reshape(n, h * w), h, w, tuple(int(k) for k in hidden), float(w0),
                        float(offset), int(steps), float(lr), target_psnr, seeds, init, int(batch_size),
                        max(1, int(refill_every)), betas, eps, dtype, progress)
    finally:
        torch.set_num_threads(old_threads)


def _fit(targets, h, w, hidden, w0, offset, steps, lr, target_psnr, seeds, init, batch_size, refill_every, betas, eps,
         dtype, progress):
    n = targets.shape[0]
    layout = _Layout(hidden)
    model = _Batch(layout, h, w, w0, offset, dtype)
    p_size = layout.size
    out_flat = torch.zeros(n, p_size, dtype=dtype)
    out_psnr = torch.zeros(n, dtype=torch.float64)
    out_steps = torch.zeros(n, dtype=torch.long)
    beta1, beta2 = betas
    stop_db = math.inf if target_psnr is None else float(target_psnr)

    next_image = 0
    slots = min(batch_size, n)
    theta = torch.zeros(0, p_size, dtype=dtype)
    m = torch.zeros(0, p_size, dtype=dtype)
    v = torch.zeros(0, p_size, dtype=dtype)
    t = torch.zeros(0, dtype=torch.long)          # updates applied so far, per slot
    owner = torch.zeros(0, dtype=torch.long)      # image index per slot, -1 when free
    tgt = torch.zeros(0, h * w, dtype=dtype)

    def fresh(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal next_image
        k = min(k, n - next_image)
        idx = torch.arange(next_image, next_image + k)
        next_image += k
        start = torch.stack([siren_init(hidden, w0, seeds[i], dtype, init) for i in idx.tolist()]) if k else \
            torch.zeros(0, layout.size, dtype=dtype)
        return idx, layout.from_canonical(start)

    idx, theta = fresh(slots)
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    t = torch.zeros(len(idx), dtype=torch.long)
    owner = idx.clone()
    tgt = targets[idx]
    grad = torch.empty_like(theta)
    it = 0
    while next_image < n or bool((owner >= 0).any()):
        if grad.shape != theta.shape:
            grad = torch.empty_like(theta)
        mse = model.loss_and_grad(theta, tgt, grad)
        psnr = psnr_from_mse(mse.double())
        live = owner >= 0
        done = live & ((psnr >= stop_db) | (t >= steps))
        if bool(done.any()):
            rows = torch.nonzero(done).squeeze(1)
            imgs = owner[rows]
            out_flat[imgs] = theta[rows]
            out_psnr[imgs] = psnr[rows]
            out_steps[imgs] = t[rows]
            owner[rows] = -1
            if progress is not None:
                progress(int(rows.numel()))
        live = owner >= 0
        # functional Adam over the whole stack; frozen / free slots are masked out
        tt = (t + 1).to(dtype)[:, None]
        m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        step_size = (lr / (1.0 - beta1 ** tt)) * live.to(dtype)[:, None]
        denom = (v / (1.0 - beta2 ** tt)).sqrt_().add_(eps)
        theta.addcdiv_(m * step_size, denom, value=-1.0)
        t += live.long()
        it += 1
        if it % refill_every == 0 or not bool((owner >= 0).any()):
            free = torch.nonzero(owner < 0).squeeze(1)
            if free.numel():
                if next_image < n:
                    new_idx, new_theta = fresh(int(free.numel()))
                    k = new_idx.numel()
                    rows = free[:k]
                    theta[rows] = new_theta
                    m[rows] = 0.0
                    v[rows] = 0.0
                    t[rows] = 0
                    owner[rows] = new_idx
                    tgt[rows] = targets[new_idx]
                if next_image >= n:  # nothing left to start: compact the batch to the live slots
                    keep = torch.nonzero(owner >= 0).squeeze(1)
                    if keep.numel() < owner.numel():
                        theta, m, v, t, owner, tgt = (z[keep].contiguous() for z in (theta, m, v, t, owner, tgt))
    return layout.to_canonical(out_flat), out_psnr.to(torch.float32), out_steps


def inr_architecture(hidden: Sequence[int] = (32, 32), w0: float = 30.0, offset: float = 0.5) -> Architecture:
    """The SIREN architecture `fit_inrs` produces (keys seq.0 … seq.L)."""
    return siren_architecture(tuple(int(k) for k in hidden), w0, offset)


# ---------------------------------------------------------------------- zoo build
def _fit_chunk(payload: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Worker entry point: fit one chunk of INRs."""
    images = payload.pop("images")
    return fit_inrs(images, **payload)


def build_inr_zoo(
    out_dir: str | os.PathLike,
    images: str | os.PathLike = "mnist5k",
    count: int | None = None,
    inrs_per_image: int = 1,
    hidden: Sequence[int] = (32, 32),
    w0: float = 30.0,
    steps: int = 1000,
    target_psnr: float | None = 40.0,
    seed: int = 0,
    batch_size: int | None = None,
    *,
    lr: float = 5e-4,
    offset: float = 0.5,
    init: str = "dwsnets",
    chunk_size: int = 500,
    workers: int | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
):
    """Fit SIRENs to `images` and store them as a zoo directory (resumable; returns the opened Zoo).

    `count` source images (a seeded random subset; None: all). Splits are by source image; each training image is
    fitted `inrs_per_image` times (different init seeds), validation and test images once.
    `init`: `dwsnets` (network i starts from `siren_init(…, seed·1_000_000 + i, scheme="dwsnets")`),
    `shared` (every network starts from the dwsnets init of seed `seed·1_000_000`) or `siren` (per-network
    seeds as for dwsnets, `scheme="siren"`). The table's `seed` column holds each network's init seed and
    manifest.json's `recipe` the fitting recipe (`inr_recipe`). Chunks of
    `chunk_size` networks run in `workers` single-threaded processes (default: one per CPU core).
    """
    from core.zoo.build import default_workers, run_chunks
    from core.zoo.images import ZooError, load_images
    from core.zoo.store import Zoo, ZooBuilder, split_assignment

    if inrs_per_image < 1 or chunk_size < 1:
        raise ZooError("inrs_per_image and chunk_size must be positive")
    if init not in INIT_SCHEMES:
        raise ZooError(f"unknown init {init!r}; choose one of {', '.join(INIT_SCHEMES)}")
    if init == "shared" and inrs_per_image > 1:
        raise ZooError("with --init shared every fit of an image starts from the same parameters and gives the "
                       "same INR; use inrs_per_image 1 or another init")
    hidden = tuple(int(k) for k in hidden)
    x, y = load_images(images)
    total = x.shape[0]
    if count is None or count >= total:
        chosen = torch.arange(total)
    elif count < 1:
        raise ZooError(f"count must be positive, got {count}")
    else:
        chosen = torch.sort(torch.randperm(total, generator=torch.Generator().manual_seed(int(seed)))[:count]).values
    # splits by source image; only training images get K views, so val/test keep one INR per image
    image_split = split_assignment(chosen.numpy(), split, seed)
    views = torch.as_tensor([inrs_per_image if s == "train" else 1 for s in image_split], dtype=torch.long)
    image_of = chosen.repeat_interleave(views)                      # network index → source image index
    splits = image_split[np.repeat(np.arange(len(image_split)), views.numpy())]
    n = image_of.numel()
    base_seed = int(seed) * 1_000_000
    seeds = [base_seed] * n if init == "shared" else [base_seed + i for i in range(n)]
    scheme = "siren" if init == "siren" else "dwsnets"
    arch = inr_architecture(hidden, w0, offset)
    source_name = str(images)
    options = dict(images=source_name, count=count, inrs_per_image=inrs_per_image, hidden=list(hidden), w0=w0,
                   steps=steps, target_psnr=target_psnr, seed=seed, batch_size=batch_size, lr=lr, offset=offset,
                   init=init, chunk_size=chunk_size, split=list(split))
    recipe = dict(init=init, scheme=scheme, init_seed=base_seed if init == "shared" else None, hidden=list(hidden),
                  w0=float(w0), offset=float(offset), optimizer="adam", lr=float(lr), betas=[0.9, 0.999], eps=1e-8,
                  loss="mse", steps=int(steps), target_psnr=target_psnr)
    source = {"images": source_name, "num_images": total, "image_shape": list(x.shape[1:]),
              "images_used": int(chosen.numel())}
    builder = ZooBuilder(out_dir, generator="inr", options=options, architectures={"siren": arch}, source=source,
                         overwrite=overwrite, shard=shard)
    if not builder.complete:
        chunks = [(k, list(range(s, min(s + chunk_size, n)))) for k, s in enumerate(range(0, n, chunk_size))]
        todo = [(k, idx) for k, idx in chunks if not builder.done(k)]
        tasks = [(k, dict(images=x[image_of[idx]], hidden=hidden, w0=w0, offset=offset, steps=steps, lr=lr,
                          target_psnr=target_psnr, seeds=[seeds[i] for i in idx], init=scheme, batch_size=batch_size,
                          threads=1))
                 for k, idx in todo]
        members = dict(todo)

        def store(k: int, result: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
            flat, psnr, nsteps = result
            idx = members[k]
            rows = [dict(index=i, group="siren", label=int(y[image_of[i]]), psnr=round(float(psnr[j]), 4),
                         steps=int(nsteps[j]), seed=seeds[i], image_index=int(image_of[i]))
                    for j, i in enumerate(idx)]
            builder.write_chunk(k, {"siren": (idx, flat)}, rows)

        nworkers = default_workers() if workers is None else int(workers)
        if nworkers <= 1:  # in-process: let torch use every core
            for _, payload in tasks:
                payload["threads"] = None
        run_chunks(tasks, _fit_chunk, store, workers=nworkers, progress_total=sum(len(i) for _, i in todo),
                   progress_sizes={k: len(i) for k, i in todo}, desc="fitting INRs", unit="INR", progress=progress)
        builder.finish({i: str(s) for i, s in enumerate(splits)}, extra={"recipe": recipe})
    return Zoo.open(out_dir) if builder.complete else None  # None: one shard of a build (merge_shards)


def inr_recipe(manifest: dict[str, Any]) -> dict[str, Any]:
    """The fitting recipe of an INR zoo's manifest; zoos built before recipes were recorded get `init: siren`.

    The returned dict has init, scheme, init_seed, hidden, w0, offset, optimizer, lr, betas, eps, loss, steps,
    target_psnr and `recorded` (False when derived from the build options of an older zoo). Raises ZooError
    for zoos not built by `build_inr_zoo` (imported or CNN zoos), whose initial values are unknown.
    """
    from core.zoo.images import ZooError

    generator = manifest.get("generator") or {}
    if generator.get("name") != "inr":
        raise ZooError(f"not a zoo built by `zoo build inr` (generator {generator.get('name')!r}): its fitting "
                       "recipe and initial values are unknown")
    recipe = manifest.get("recipe")
    if recipe is not None:
        _check_recipe(recipe)
        return {**recipe, "recorded": True}
    options = generator.get("options") or {}
    # Older builds always used the `siren` scheme with per-network seeds and these optimiser settings.
    return dict(init="siren", scheme="siren", init_seed=None,
                hidden=list(options.get("hidden", [32, 32])), w0=float(options.get("w0", 30.0)),
                offset=float(options.get("offset", 0.5)), optimizer="adam", lr=float(options.get("lr", 5e-4)),
                betas=[0.9, 0.999], eps=1e-8, loss="mse", steps=options.get("steps"),
                target_psnr=options.get("target_psnr"), recorded=False)


def _check_recipe(recipe: Any) -> None:
    """ZooError unless a recorded recipe holds what rebuilding initial values needs."""
    from core.zoo.images import ZooError

    ok = (isinstance(recipe, dict) and recipe.get("scheme") in ("dwsnets", "siren")
          and recipe.get("init") in INIT_SCHEMES and isinstance(recipe.get("w0"), (int, float))
          and isinstance(recipe.get("hidden"), list) and len(recipe["hidden"]) > 0
          and all(isinstance(k, int) and not isinstance(k, bool) and 0 < k <= 65536 for k in recipe["hidden"]))
    if not ok:
        raise ZooError("manifest.json holds a malformed INR recipe (needs init, scheme dwsnets|siren, w0 and "
                       "positive integer hidden widths)")


def initial_parameters(recipe: dict[str, Any], seeds: Sequence[int],
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Initial parameters [n, P] that `fit_inrs` started from, rebuilt from a recipe and per-network init seeds."""
    hidden = tuple(int(k) for k in recipe["hidden"])
    cache: dict[int, torch.Tensor] = {}
    rows = []
    for s in seeds:
        s = int(s)
        if s not in cache:
            cache[s] = siren_init(hidden, float(recipe["w0"]), s, dtype, recipe["scheme"])
        rows.append(cache[s])
    if not rows:
        return torch.zeros(0, inr_architecture(hidden).num_parameters, dtype=dtype)
    return torch.stack(rows)
