"""The hand-written batched SIREN fitter against a plain autograd SIREN trained with torch.optim.Adam."""

from __future__ import annotations

import pytest
import torch

from core.network.spec import unflatten_params
from core.zoo import inr_architecture, siren_init
from core.zoo.inr import _Batch, _Layout, coordinate_grid, fit_inrs

W0, OFFSET = 30.0, 0.5


def _reference_mse(flat: torch.Tensor, hidden: tuple[int, ...], images: torch.Tensor) -> torch.Tensor:
    """Per-INR MSE [B] of a plain SIREN, sin(w0·(Wx + b)) per hidden layer, linear output + offset (autograd)."""
    b, h, w = images.shape
    params = unflatten_params(inr_architecture(hidden, W0, OFFSET), flat)
    x = coordinate_grid(h, w, flat.dtype).expand(b, h * w, 2)
    for i in range(len(hidden) + 1):
        x = x @ params[f"seq.{i}.weight"].transpose(1, 2) + params[f"seq.{i}.bias"][:, None, :]
        if i < len(hidden):
            x = torch.sin(W0 * x)
    return ((x[..., 0] + OFFSET - images.reshape(b, -1)) ** 2).mean(1)


@pytest.mark.parametrize("hidden", [(32, 32), (6,), (5, 4, 3)])
def test_loss_and_gradient_match_an_autograd_siren(hidden):
    """One hidden layer, the default two and three (a middle layer with its own ones row) — float64 and float32."""
    torch.manual_seed(0)
    images = torch.rand(3, 6, 7, dtype=torch.float64)
    flat = torch.stack([siren_init(hidden, W0, s, torch.float64) for s in range(3)])
    flat += 0.05 * torch.randn_like(flat)  # away from the zero biases of the init, so bias paths are exercised
    ref_flat = flat.clone().requires_grad_()
    ref = _reference_mse(ref_flat, hidden, images)
    ref.sum().backward()
    assert float(ref_flat.grad.abs().max()) > 0
    layout = _Layout(hidden)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-4)):
        model = _Batch(layout, 6, 7, W0, OFFSET, dtype)
        theta = layout.from_canonical(flat.to(dtype))
        grad = torch.full_like(theta, float("nan"))  # every entry must be written
        mse = model.loss_and_grad(theta, images.reshape(3, -1).to(dtype), grad)
        scale = float(ref_flat.grad.abs().max())
        assert torch.allclose(mse.double(), ref.detach(), rtol=tol, atol=0)
        assert float((layout.to_canonical(grad).double() - ref_flat.grad).abs().max()) < tol * scale


def test_fit_matches_autograd_adam_step_by_step():
    """20 Adam steps of `fit_inrs` (batched, one slot refilled) equal per-INR torch.optim.Adam on the autograd SIREN."""
    hidden, steps = (8, 8), 20
    images = torch.rand(5, 7, 6, dtype=torch.float64)
    flat, psnr, nsteps = fit_inrs(images, hidden=hidden, steps=steps, target_psnr=None, seeds=11, batch_size=3,
                                  dtype=torch.float64)
    ref = torch.stack([siren_init(hidden, W0, 11 + i, torch.float64) for i in range(5)]).requires_grad_()
    opt = torch.optim.Adam([ref], lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(steps):  # the INRs are independent: the summed loss gives each its own gradient
        opt.zero_grad()
        _reference_mse(ref, hidden, images).sum().backward()
        opt.step()
    final = _reference_mse(ref.detach(), hidden, images)
    assert torch.all(nsteps == steps)
    assert float((flat - ref.detach()).abs().max()) < 1e-9
    assert torch.allclose(psnr.double(), -10 * torch.log10(final), atol=1e-4)


def test_fit_caps_numpys_blas_threads_at_the_fitters_threads(monkeypatch):
    """The CPU matrix products run in numpy's BLAS: `threads` bounds its pool too, so workers never oversubscribe."""
    from threadpoolctl import threadpool_info

    import core.zoo.inr as inr

    seen, real = [], inr._fit

    def spy(*args, **kwargs):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return real(*args, **kwargs)

    monkeypatch.setattr(inr, "_fit", spy)
    fit_inrs(torch.rand(2, 4, 5), hidden=(4,), steps=2, threads=1)
    assert seen == [{1}]


def test_a_diverging_fit_gives_nan_quietly_like_torch():
    """numpy's sine warns on inf arguments where torch's does not: a diverged INR must yield NaN, not warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, psnr, _ = fit_inrs(torch.rand(2, 4, 4), hidden=(4, 4), steps=3, lr=1e38, target_psnr=None)
    assert torch.isnan(psnr).all()


def test_default_batch_keeps_a_steps_activations_near_the_same_size():
    """16 INRs at 28×28 with width 32 (the MNIST zoos); small images get more per step, within [1, 1024]."""
    from core.zoo.inr import fit_batch_size

    assert fit_batch_size(28, 28, (32, 32)) == 16
    assert fit_batch_size(8, 8, (16, 16)) == 392            # the digits zoo
    assert fit_batch_size(1, 1, (1,)) == 1024
    assert fit_batch_size(512, 512, (64,)) == 1
