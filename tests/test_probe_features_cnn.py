"""Probe features of networks on images (float64, exact): each channel node gets its channel's mean activation
on fixed MNIST-5k probe images, so permuting (and scaling / sign-flipping) channels acts on them the same way."""

from __future__ import annotations

import pytest
import torch

from core.graph import to_graphs
from core.models import build_model
from core.models.base import ModelError
from core.models.layers.probe_features import ProbeFeatures, probe_images
from core.network.spec import Activation, Architecture, Conv, GlobalAvgPool, Linear, Residual
from core.symmetry import apply_to_graph, random_element
from core.symmetry.actions import graph_action
from core.zoo import small_cnn_architecture
from tests.model_helpers import ARCHS

K = 5


def _residual_cnn() -> Architecture:
    """conv 1→4 stride 2 → relu → conv 4→4 → relu → + skip → GAP → linear 4→3 on 12×12 inputs."""
    return Architecture((Conv("c0", 1, 4, (3, 3), (2, 2), (1, 1)), Activation("relu"),
                         Conv("c1", 4, 4, (3, 3), (1, 1), (1, 1)), Activation("relu"), Residual(1),
                         GlobalAvgPool(), Linear("fc", 4, 3)), (1, 12, 12))


CASES = {
    "small-cnn-relu": (lambda: small_cnn_architecture("relu", 28, channels=6), {"permutation", "scale"}),
    "small-cnn-tanh": (lambda: small_cnn_architecture("tanh", 10, channels=5), {"permutation", "sign"}),
    "helper-cnn": (ARCHS["cnn"], {"permutation", "scale"}),
    "residual-cnn": (_residual_cnn, {"permutation", "scale"}),
}


def _identity_probe() -> ProbeFeatures:
    """Probe features with an identity lift: the module returns the raw activations [N, K]."""
    probe = ProbeFeatures(K, K).double()
    with torch.no_grad():
        probe.lift.weight.copy_(torch.eye(K, dtype=torch.float64))
        probe.lift.bias.zero_()
    return probe


@pytest.mark.parametrize("case", sorted(CASES))
def test_channel_probe_features_move_with_the_channels(case: str) -> None:
    make, kinds = CASES[case]
    arch = make()
    gen = torch.Generator().manual_seed(1)
    batch = to_graphs(arch, torch.randn(3, arch.num_parameters, generator=gen, dtype=torch.float64) * 0.5)
    g = random_element(arch, kinds, seed=2, batch=3)
    moved = apply_to_graph(batch, g)
    probe = _identity_probe()
    with torch.no_grad():
        before, after = probe(batch), probe(moved)
    act = graph_action(arch, g, int(batch.grid_size[0]))
    n = act.node_perm.shape[-1]
    expect = before.view(3, n, K).gather(1, act.node_perm[..., None].expand(-1, -1, K)) * act.node_scale[..., None]
    assert before.abs().sum() > 0 and torch.isfinite(before).all()
    assert torch.allclose(after.view(3, n, K), expect, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(after, before)  # the element really moved something


def test_probe_images_are_fixed_digits_resized_to_the_input() -> None:
    a, b = probe_images(12, (2, 8, 8)), probe_images(12, (2, 8, 8))
    assert a.shape == (12, 2, 8, 8) and a.dtype == torch.float64 and torch.equal(a, b)
    assert torch.equal(a[:, 0], a[:, 1]) and 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert probe_images(3, (1, 28, 28)).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="channels, height, width"):
        probe_images(3, (2,))


def test_graph_model_with_probes_reads_cnn_activations_and_stays_invariant() -> None:
    arch = small_cnn_architecture("relu", 12, channels=4)
    gen = torch.Generator().manual_seed(3)
    batch = to_graphs(arch, torch.randn(4, arch.num_parameters, generator=gen, dtype=torch.float64) * 0.5)
    torch.manual_seed(0)
    with_probes = build_model("ng-gnn", out_dim=1, head="graph", edge_dim=batch.edge_attr.shape[1], probes=K,
                              hidden=16, layers=2, readout_hidden=16).double().eval()
    with_probes.fit_normalisation(batch)
    moved = apply_to_graph(batch, random_element(arch, {"permutation"}, seed=5, batch=4))
    with torch.no_grad():
        out, out_moved = with_probes(batch), with_probes(moved)
        with_probes.probe.lift.weight.add_(0.5)  # the probe features reach the output
        changed = with_probes(batch)
    assert torch.allclose(out, out_moved, rtol=1e-10, atol=1e-12)
    assert (changed - out).abs().max() > 1e-6


def _float32_cnn_batch(count: int = 3):
    """A relu CNN on 12×12 inputs, `count` random float32 networks (weights of a few tenths) and their graphs."""
    arch = small_cnn_architecture("relu", 12, channels=4)
    gen = torch.Generator().manual_seed(7)
    return arch, torch.randn(count, arch.num_parameters, generator=gen) * 0.5


def test_float32_probe_features_are_the_float64_activations_rounded() -> None:
    """Probe images run through the network in float64 whatever the model's dtype: a float32 model receives the
    float64 activations of its (float32) weights rounded once, exactly."""
    arch, flat = _float32_cnn_batch()
    flat[1] *= 30.0  # large but finite: activations ~1e5
    probe32 = _identity_probe().float()
    with torch.no_grad():
        got = probe32(to_graphs(arch, flat))
        reference = _identity_probe()(to_graphs(arch, flat.double()))
    assert got.dtype == torch.float32 and torch.isfinite(got).all() and got.abs().max() > 1e4
    assert torch.equal(got, reference.float())


@pytest.mark.parametrize("diverged", [1e13, float("inf"), float("nan")])
def test_a_diverged_cnn_is_refused_not_read_as_nan(diverged: float) -> None:
    """A network whose weights diverged in training (1e13 everywhere; one inf or NaN weight): its probe activations
    overflow float32, and the model raises a ModelError naming the cause instead of returning NaN."""
    arch, flat = _float32_cnn_batch()
    if diverged == 1e13:
        flat[2] *= diverged
    else:
        flat[2, 5] = diverged
    torch.manual_seed(0)
    model = build_model("ng-gnn", out_dim=1, head="graph", edge_dim=to_graphs(arch, flat).edge_attr.shape[1],
                        probes=K, hidden=8, layers=1, readout_hidden=8).eval()
    with torch.no_grad():
        assert torch.isfinite(model(to_graphs(arch, flat[:2]))).all()
        with pytest.raises(ModelError, match=r"probe activations of 1 network\(s\) reach .*diverged in training"):
            model(to_graphs(arch, flat))
