"""Function-changing INR weight augmentations: exact coordinate transforms, noise, dropout, settings."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from core.network.execute import forward_many
from core.network.spec import unflatten_params
from core.zoo import coordinate_grid, inr_architecture, siren_init
from core.zoo.inr_augment import (
    NG_PRESET,
    AugmentError,
    INRAugment,
    add_weight_noise,
    drop_weights,
    fold_input_transform,
    parse_augment,
    rotation_matrices,
)

HIDDEN = (8, 8)
ARCH = inr_architecture(HIDDEN)


def _inrs(n: int, scheme: str = "siren") -> torch.Tensor:
    # siren init: first-layer biases are nonzero, so a wrong bias fold cannot pass unnoticed
    return torch.stack([siren_init(HIDDEN, 30.0, s, torch.float64, scheme) for s in range(n)])


def _render_at(flat: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Each network i evaluated at its own coordinates coords[i] [N, 2] → [B, N]."""
    return torch.stack([forward_many(ARCH, flat[i:i + 1], coords[i])[0, :, 0] for i in range(flat.shape[0])])


def test_folded_translation_and_rotation_equal_rendering_on_the_transformed_grid():
    flat = _inrs(4)
    grid = coordinate_grid(12, 12, torch.float64)
    g = torch.Generator().manual_seed(1)
    angles = (torch.rand(4, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(45)
    shift = (torch.rand(4, 2, generator=g, dtype=torch.float64) * 2 - 1) * 0.25
    for matrix, t in ((rotation_matrices(angles), torch.zeros(4, 2, dtype=torch.float64)),
                      (torch.eye(2, dtype=torch.float64).expand(4, 2, 2), shift),
                      (rotation_matrices(angles) * 1.15, shift)):
        moved = fold_input_transform(ARCH, flat, matrix, t)
        expected = _render_at(flat, [grid @ matrix[i].T + t[i] for i in range(4)])
        got = forward_many(ARCH, moved, grid)[..., 0]
        assert torch.allclose(got, expected, atol=1e-12, rtol=0)
        assert not torch.allclose(got, forward_many(ARCH, flat, grid)[..., 0], atol=1e-3)
        assert torch.equal(moved[:, 48:], flat[:, 48:])  # only the first layer (8×2 weights + 8 biases) changes


def _recover_transform(flat: torch.Tensor, moved: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A [B,2,2], t [B,2]) with W' = W A and b' = b + W t, solved by least squares from the first layer."""
    p, q = unflatten_params(ARCH, flat), unflatten_params(ARCH, moved)
    w, w2 = p["seq.0.weight"], q["seq.0.weight"]
    a = torch.linalg.lstsq(w, w2).solution
    t = torch.linalg.lstsq(w, (q["seq.0.bias"] - p["seq.0.bias"])[..., None]).solution[..., 0]
    assert torch.allclose(w @ a, w2, atol=1e-12)
    return a, t


def test_random_coordinate_augmentation_is_an_exact_bounded_affine_map():
    flat = _inrs(64)
    aug = INRAugment(translate=0.25, rotate=45.0, scale=0.2)
    moved = aug(ARCH, flat, torch.Generator().manual_seed(0))
    a, t = _recover_transform(flat, moved)
    s = torch.sqrt(torch.det(a))  # A = s R(θ)
    rot = a / s[:, None, None]
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(2, dtype=torch.float64).expand(64, 2, 2), atol=1e-9)
    angles = torch.rad2deg(torch.atan2(rot[:, 1, 0], rot[:, 0, 0]))
    assert float(angles.abs().max()) <= 45 + 1e-9 and float(angles.abs().max()) > 35
    assert float((s - 1).abs().max()) <= 0.2 + 1e-9 and float((s - 1).abs().max()) > 0.15
    assert float(t.abs().max()) <= 0.25 + 1e-9 and float(t.abs().max()) > 0.2
    grid = coordinate_grid(10, 10, torch.float64)
    expected = _render_at(flat[:5], [grid @ a[i].T + t[i] for i in range(5)])
    assert torch.allclose(forward_many(ARCH, moved[:5], grid)[..., 0], expected, atol=1e-12, rtol=0)
    # the same generator state gives the same augmentation; another seed another one
    assert torch.equal(moved, aug(ARCH, flat, torch.Generator().manual_seed(0)))
    assert not torch.equal(moved, aug(ARCH, flat, torch.Generator().manual_seed(1)))


def test_zero_settings_leave_weights_unchanged():
    flat = _inrs(3)
    assert torch.equal(INRAugment()(ARCH, flat, torch.Generator().manual_seed(0)), flat)
    assert torch.equal(parse_augment("none")(ARCH, flat), flat)


def test_noise_is_scaled_by_each_tensors_std():
    flat = _inrs(3000, "dwsnets")
    noisy = add_weight_noise(ARCH, flat, 0.1, torch.Generator().manual_seed(0))
    p, q = unflatten_params(ARCH, flat), unflatten_params(ARCH, noisy)
    for key in ("seq.0.weight", "seq.1.weight", "seq.2.weight"):
        per_net = p[key].reshape(3000, -1)
        ratio = ((q[key] - p[key]).reshape(3000, -1) / per_net.std(1, keepdim=True)).std()
        assert abs(float(ratio) - 0.1) < 0.005, key
    # zero biases (dwsnets) have zero std and get no noise; the single output bias uses the batch's spread
    assert torch.equal(q["seq.0.bias"], p["seq.0.bias"])
    out_ratio = float((q["seq.2.bias"] - p["seq.2.bias"]).std() / p["seq.2.bias"].std())
    assert abs(out_ratio - 0.1) < 0.01


def test_dropout_zeroes_weights_only():
    flat = _inrs(500)
    dropped = drop_weights(ARCH, flat, 0.1, torch.Generator().manual_seed(0))
    p, q = unflatten_params(ARCH, flat), unflatten_params(ARCH, dropped)
    zeroed = torch.cat([(q[k] == 0).reshape(-1) for k in ("seq.0.weight", "seq.1.weight", "seq.2.weight")])
    assert abs(float(zeroed.double().mean()) - 0.1) < 0.01
    for k in ("seq.0.bias", "seq.1.bias", "seq.2.bias"):
        assert torch.equal(q[k], p[k])
    kept = dropped != 0
    assert torch.equal(dropped[kept], flat[kept])  # survivors are not rescaled


def test_parse_settings_and_presets():
    assert parse_augment("ng") == NG_PRESET
    assert NG_PRESET.to_dict() == {"translate": 0.25, "rotate": 45.0, "scale": 0.2, "noise": 0.1, "dropout": 0.01}
    assert parse_augment("ng,noise=0.05") == INRAugment(0.25, 45.0, 0.2, 0.05, 0.01)
    assert parse_augment(" translate=0.1 , dropout=0.02") == INRAugment(translate=0.1, dropout=0.02)
    for bad in ("ng,blur=1", "fancy", "noise=abc", "noise=-1", "scale=1.5", "dropout=1"):
        with pytest.raises(AugmentError):
            parse_augment(bad)


def test_coordinate_transforms_need_a_coordinate_inr():
    from core.zoo.cnn import small_cnn_architecture

    cnn = small_cnn_architecture()
    flat = torch.randn(2, cnn.num_parameters, dtype=torch.float64)
    with pytest.raises(AugmentError, match="linear layer on the input"):
        INRAugment(translate=0.1)(cnn, flat)
    noisy = INRAugment(noise=0.1, dropout=0.05)(cnn, flat, torch.Generator().manual_seed(0))
    assert noisy.shape == flat.shape and not torch.equal(noisy, flat)


def test_module_does_not_import_training():
    code = ("import sys, core.zoo.inr_augment; "
            "bad = [m for m in sys.modules if m.startswith(('core.training', 'core.tasks', 'core.runs'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
