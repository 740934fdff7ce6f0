"""ScaleGMN on networks with large weights (issue #22: it diverged on the Wild Park zoo). Without a LayerNorm in its
invariant gates, a row without a scaling symmetry (silu / gelu neurons, input and output neurons) feeds its raw state
to the gate that multiplies it, squaring its magnitude at every gated map; tanh rows do the same through |h|. In
float32 the states overflow for weights of ~100 (silu, tanh) or ~1e4 (relu). `gate_norm` (default) keeps them finite."""

from __future__ import annotations

import pytest
import torch

from core.graph import to_graphs
from core.models import build_model
from core.models.scalegmn import ScaleGMNBConfig, ScaleGMNConfig
from core.network.spec import Activation, Architecture, Conv, GlobalAvgPool, Linear


def _cnn(act: str) -> Architecture:
    """conv(1→4) → act → conv(4→4) → act → global average pool → linear(4→3) on 8×8 images."""
    return Architecture((Conv("c1", 1, 4, (3, 3)), Activation(act), Conv("c2", 4, 4, (3, 3)), Activation(act),
                         GlobalAvgPool(), Linear("fc", 4, 3)), (1, 8, 8))


def _finite_step(name: str, act: str, scale: float, gate_norm: bool, probes: int = 0, *,
                 arch: Architecture | None = None, layers: int = 2, gain: float = 1.0) -> bool:
    """Whether a float32 forward and backward pass (untrained model, as at the first training step, its parameters
    multiplied by `gain`) on four networks (default `_cnn(act)`) with weights of standard deviation `scale` gives
    finite outputs and gradients."""
    arch = arch or _cnn(act)
    flat = torch.randn(4, arch.num_parameters, generator=torch.Generator().manual_seed(0)) * scale
    batch = to_graphs(arch, flat, None)
    torch.manual_seed(0)
    model = build_model(name, out_dim=1, edge_dim=batch.edge_attr.shape[1], hidden=32, layers=layers, probes=probes,
                        gate_norm=gate_norm)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gain)
    model.fit_normalisation(batch)
    out = model(batch)
    torch.sigmoid(out).square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return bool(torch.isfinite(out).all()) and all(bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.parametrize("name", ["scalegmn", "scalegmn-b"])
@pytest.mark.parametrize("act", ["silu", "relu", "tanh"])
def test_large_weights_give_finite_outputs_and_gradients(name: str, act: str) -> None:
    for scale in (1.0, 1e2, 1e4, 1e7):
        assert _finite_step(name, act, scale, gate_norm=True), scale


def test_large_weights_with_probe_features_stay_finite() -> None:
    assert _finite_step("scalegmn", "silu", 1e2, gate_norm=True, probes=4)


@pytest.mark.parametrize("act,scale", [("silu", 1e2), ("tanh", 1e2), ("relu", 1e4)])
def test_without_gate_norm_the_states_overflow(act: str, scale: float) -> None:
    """The mechanism: the model before the fix (kept for saved runs) overflows on exactly these inputs."""
    assert _finite_step("scalegmn", act, 1.0, gate_norm=False)
    assert not _finite_step("scalegmn", act, scale, gate_norm=False)


def test_saved_configs_without_gate_norm_rebuild_the_model_they_trained() -> None:
    """A config saved before `gate_norm` existed (e.g. assets/models/inr-classify-scalegmn-b) has no LayerNorm."""
    old = {"hidden": 8, "layers": 1, "bidirectional": True, "kind": "scalegmn-b"}
    assert ScaleGMNBConfig.from_dict(old).gate_norm is False
    assert ScaleGMNConfig().gate_norm is True
    new = ScaleGMNConfig(hidden=8)
    assert ScaleGMNConfig.from_dict(new.to_dict()) == new
    with_norm = build_model("scalegmn", out_dim=1, config=new.to_dict())
    without = build_model("scalegmn", out_dim=1, config=old | {"bidirectional": False, "kind": "scalegmn"})
    assert any(isinstance(m, torch.nn.LayerNorm) for m in with_norm.modules())
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in without.modules())
