"""Time the INR fitter's step with each CPU backend, alternated, and the fp32 products in oneDNN's bf16 mode.

    OMP_NUM_THREADS=1 python docs/benchmarks/fit_backends.py [--batch 16] [--rounds 4]

Part 1: `_Batch.loss_and_grad` (one SIREN step for a batch of 2-32-32-1 INRs on the 28 × 28 grid) with its
products and sines through numpy (the default) or torch, each pair of choices timed in turn, `--rounds` times.
Part 2: the step's three large batched products through numpy, torch, and torch with
`torch.backends.mkldnn.matmul.fp32_precision = "bf16"` (oneDNN may then run fp32 products on bf16 units, AMX
where present), with the bf16 mode's largest error relative to a float64 product.
Part 3: the share of a whole `fit_inrs` run spent outside the step (Adam, stopping checks, refills).
Part 4: the step's two large sine calls (sin and cos of layer 2's pre-activations) through numpy and torch, in
nanoseconds per element. They differ by CPU far more than the products do: numpy's took 0.4 ns per element on the
AMD Zen 5 host (AVX-512) and 3.2–3.5 ns on an AMD Zen 3 host (AVX2).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

import core.zoo.inr as inr


def per_call(fn: Callable[[], object], reps: int) -> float:
    """Mean seconds per call of fn over reps calls, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def torch_bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = a @ b through torch (MKL on CPU)."""
    return torch.bmm(a, b, out=out)


def torch_sine(x: torch.Tensor, out: torch.Tensor, cosine: bool = False) -> torch.Tensor:
    """out = sin(x) or cos(x) through torch."""
    return torch.cos(x, out=out) if cosine else torch.sin(x, out=out)


def step_backends(batch: int, rounds: int, reps: int) -> None:
    """Part 1: milliseconds per fitting step for each backend pair, alternated."""
    layout = inr._Layout((32, 32))
    model = inr._Batch(layout, 28, 28, 30.0, 0.5, torch.float32)
    start = [inr.siren_init((32, 32), 30.0, s, torch.float32, "dwsnets") for s in range(batch)]
    theta = layout.from_canonical(torch.stack(start))
    target = torch.rand(batch, 28 * 28, generator=torch.Generator().manual_seed(0))
    grad = torch.empty_like(theta)
    numpy_bmm, numpy_sine = inr._bmm, inr._sine
    pairs = {"numpy products, numpy sines (default)": (numpy_bmm, numpy_sine),
             "torch products, numpy sines": (torch_bmm, numpy_sine),
             "numpy products, torch sines": (numpy_bmm, torch_sine),
             "torch products, torch sines": (torch_bmm, torch_sine)}
    times: dict[str, list[float]] = {name: [] for name in pairs}
    try:
        for _ in range(rounds):
            for name, (bmm, sine) in pairs.items():
                inr._bmm, inr._sine = bmm, sine
                times[name].append(1e3 * per_call(lambda: model.loss_and_grad(theta, target, grad), reps))
    finally:
        inr._bmm, inr._sine = numpy_bmm, numpy_sine
    print(f"fitting step, {batch} INRs, ms per step ({rounds} alternated rounds of {reps} steps)")
    for name, values in times.items():
        print(f"  {name:40s} " + " ".join(f"{v:.2f}" for v in values) + f"   median {np.median(values):.2f}")


def product_modes(batch: int, reps: int) -> None:
    """Part 2: microseconds per batched product: numpy, torch fp32, torch with oneDNN's bf16 mode."""
    shapes = [((batch, 32, 33), (batch, 33, 784)), ((batch, 32, 784), (batch, 784, 33)),
              ((batch, 32, 32), (batch, 32, 784))]
    settings = torch.backends.mkldnn.matmul
    old = settings.fp32_precision
    print(f"batched products, µs per call ({reps} calls); bf16 error: max |bf16 − float64| / max |float64|")
    try:
        for shape_a, shape_b in shapes:
            gen = torch.Generator().manual_seed(1)
            a, b = torch.randn(*shape_a, generator=gen), torch.randn(*shape_b, generator=gen)
            out = torch.empty(shape_a[0], shape_a[1], shape_b[2])
            exact = a.double() @ b.double()
            t_numpy = per_call(lambda: np.matmul(a.numpy(), b.numpy(), out=out.numpy()), reps)
            settings.fp32_precision = "ieee"
            t_torch = per_call(lambda: torch.bmm(a, b, out=out), reps)
            settings.fp32_precision = "bf16"
            t_bf16 = per_call(lambda: torch.bmm(a, b, out=out), reps)
            torch.bmm(a, b, out=out)
            err = float((out.double() - exact).abs().max() / exact.abs().max())
            settings.fp32_precision = old
            print(f"  {str(shape_a):14s} @ {str(shape_b):14s} numpy {1e6 * t_numpy:6.0f}  torch {1e6 * t_torch:6.0f}"
                  f"  torch bf16 mode {1e6 * t_bf16:6.0f}  (error {err:.1e})")
    finally:
        settings.fp32_precision = old


def outside_step(batch: int, steps: int) -> None:
    """Part 3: the share of `fit_inrs` spent outside `_Batch.loss_and_grad`."""
    original = inr._Batch.loss_and_grad
    spent = [0.0]

    def timed(self: inr._Batch, *args: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        result = original(self, *args)
        spent[0] += time.perf_counter() - start
        return result

    images = torch.rand(4 * batch, 28, 28, generator=torch.Generator().manual_seed(2))
    inr._Batch.loss_and_grad = timed
    try:
        start = time.perf_counter()
        inr.fit_inrs(images, steps=steps, target_psnr=None, batch_size=batch, threads=1)
        total = time.perf_counter() - start
    finally:
        inr._Batch.loss_and_grad = original
    print(f"fit_inrs, {4 * batch} INRs × {steps} steps: {total:.2f} s, of which the step {spent[0]:.2f} s; "
          f"outside it {total - spent[0]:.2f} s ({(total - spent[0]) / total:.0%})")


def sine_costs(batch: int, reps: int) -> None:
    """Part 4: nanoseconds per element of sin and cos on a [batch, 32, 784] float32 tensor, numpy and torch."""
    gen = torch.Generator().manual_seed(3)
    # std 3, as the bundled zoo's layer-2 pre-activations w0·(W a + b) (2.96 over its first 256 INRs, max |x| 22)
    x = 3.0 * torch.randn(batch, 32, 784, generator=gen)
    out = torch.empty_like(x)
    calls = {"numpy sin": lambda: np.sin(x.numpy(), out=out.numpy()),
             "numpy cos": lambda: np.cos(x.numpy(), out=out.numpy()),
             "torch sin": lambda: torch.sin(x, out=out),
             "torch cos": lambda: torch.cos(x, out=out)}
    print(f"sines on [{batch}, 32, 784] float32, ns per element ({reps} calls)")
    for name, fn in calls.items():
        print(f"  {name:10s} {1e9 * per_call(fn, reps) / x.numel():.2f}")


def main() -> None:
    """Parse the options and run the four parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="INRs per step (the fitter's default is 16)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    step_backends(args.batch, args.rounds, args.reps)
    product_modes(args.batch, args.reps)
    outside_step(args.batch, steps=300)
    sine_costs(args.batch, args.reps)


if __name__ == "__main__":
    main()
