"""Exact (float64) symmetry tests of every metanetwork: permutation for all graph models, sign flips and
positive scaling (q log-uniform in 1e-2..1e2) for scalegmn*, on both heads. `mlp` must fail."""

from __future__ import annotations

import os

import pytest
import torch

from core.models import build_model
from tests.model_helpers import ARCHS, act_on_batch, per_graph_params, random_batch

GRAPH_MODELS = ["ng-gnn", "ng-t", "scalegmn", "scalegmn-b"]
SMALL = dict(hidden=16, layers=2, readout_hidden=16)
TOL = 1e-8
DEVICE = torch.device(os.environ.get("WSE_TEST_DEVICE", "cpu"))  # `python -m core bench gpu` sets cuda


def _model(name: str, head: str, arch=None, edge_dim: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    extra = {"architecture": arch} if name in ("mlp", "nfn-np", "nfn-hnp") else {}
    return build_model(name, out_dim=3, head=head, edge_dim=edge_dim, **SMALL, **extra).double().eval()


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights everywhere (gates, embeddings), so no symmetry holds by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.1)


def _errors(model, batch, kinds: set[str], seed: int = 1) -> float:
    """Largest violation of invariance (graph head) / equivariance (params head), relative to the output size."""
    moved, actions = act_on_batch(batch, kinds, seed)
    try:  # on DEVICE, then back: the tests go on using the model on CPU batches
        with torch.no_grad():
            model.to(DEVICE)
            a, b = model(batch.clone().to(DEVICE)), model(moved.clone().to(DEVICE))
    finally:
        model.to("cpu")
    if model.head == "graph":
        return float((a - b).abs().max() / a.abs().max().clamp_min(1.0))
    expect = per_graph_params(batch, a.x.cpu(), a.edge_attr.cpu(), actions)
    got = per_graph_params(moved, b.x.cpu(), b.edge_attr.cpu())
    assert max(float(u.abs().max()) for u in expect) > 1e-3, "an all-zero update is equivariant by accident"
    return max(float((u - v).abs().max() / u.abs().max().clamp_min(1.0)) for u, v in zip(expect, got))


def _batch_for(arch_name: str, seed: int = 0):
    return random_batch(ARCHS[arch_name](), 3, seed=seed)


@pytest.mark.parametrize("head", ["graph", "params"])
@pytest.mark.parametrize("name", GRAPH_MODELS)
@pytest.mark.parametrize("arch_name", ["siren", "relu", "cnn"])
def test_permutation(name: str, head: str, arch_name: str) -> None:
    batch = _batch_for(arch_name)
    model = _model(name, head, edge_dim=batch.edge_attr.shape[1])
    _randomise(model, 3)
    model.fit_normalisation(batch)
    assert "permutation" in model.symmetries
    # the batch really changed, and the model output did not (up to the action)
    moved, _ = act_on_batch(batch, {"permutation"}, 1)
    assert (moved.edge_attr - batch.edge_attr).abs().max() > 0.1
    assert _errors(model, batch, {"permutation"}) <= TOL


@pytest.mark.parametrize("head", ["graph", "params"])
@pytest.mark.parametrize("arch_name", ["siren", "cnn"])
def test_narrow_edge_states_keep_permutation_equivariance(head: str, arch_name: str) -> None:
    batch = _batch_for(arch_name)
    torch.manual_seed(0)
    model = build_model("ng-gnn", out_dim=3, head=head, edge_dim=batch.edge_attr.shape[1], edge_hidden=4,
                        **SMALL).double().eval()
    _randomise(model, 3)
    model.fit_normalisation(batch)
    assert model.layers[0].edge_in.weight.shape == (4, 4)
    assert _errors(model, batch, {"permutation"}) <= TOL


@pytest.mark.parametrize("head", ["graph", "params"])
@pytest.mark.parametrize("name", ["scalegmn", "scalegmn-b"])
@pytest.mark.parametrize("arch_name", ["siren", "tanh"])
def test_sign(name: str, head: str, arch_name: str) -> None:
    batch = _batch_for(arch_name)
    model = _model(name, head)
    _randomise(model, 4)
    assert "sign" in model.symmetries
    assert _errors(model, batch, {"permutation", "sign"}) <= TOL


@pytest.mark.parametrize("head", ["graph", "params"])
@pytest.mark.parametrize("name", ["scalegmn", "scalegmn-b"])
@pytest.mark.parametrize("arch_name", ["relu", "leaky", "mixed", "cnn"])
def test_scale(name: str, head: str, arch_name: str) -> None:
    batch = _batch_for(arch_name)
    model = _model(name, head, edge_dim=batch.edge_attr.shape[1])
    _randomise(model, 5)
    assert "scale" in model.symmetries
    assert _errors(model, batch, {"permutation", "scale", "sign"}) <= TOL


@pytest.mark.parametrize("name", ["ng-gnn", "ng-t"])
def test_permutation_only_models_are_not_scale_invariant(name: str) -> None:
    """The scale test bites: models without the symmetry fail it."""
    batch = _batch_for("relu")
    model = _model(name, "graph")
    _randomise(model, 6)
    model.fit_normalisation(batch)
    assert _errors(model, batch, {"scale"}) > 1e-4


def test_backward_messages_need_the_reciprocal() -> None:
    """ScaleGMN-B with plain edges in its backward messages (the reference code's bug) is not scale-equivariant."""
    import core.models.layers.scale_message_passing as smp

    batch = _batch_for("relu")
    model = _model("scalegmn-b", "graph")
    _randomise(model, 7)
    assert _errors(model, batch, {"scale"}) <= TOL
    original = smp.reciprocal
    try:
        smp.reciprocal = lambda v, kind: v
        assert _errors(model, batch, {"scale"}) > 1e-4
    finally:
        smp.reciprocal = original


@pytest.mark.parametrize("head", ["graph", "params"])
def test_mlp_fails_permutation(head: str) -> None:
    """The flat-parameter MLP is not permutation-invariant: the test must detect it."""
    arch = ARCHS["relu"]()
    batch = random_batch(arch, 3)
    model = _model("mlp", head, arch=arch)
    _randomise(model, 2)  # an untrained params head proposes zero, which every permutation keeps
    model.fit_normalisation(batch)
    assert model.symmetries == ()
    assert _errors(model, batch, {"permutation"}) > 1e-3


@pytest.mark.parametrize("head", ["graph", "params"])
@pytest.mark.parametrize("name", ["nfn-np", "nfn-hnp"])
def test_nfn_permutation(name: str, head: str) -> None:
    arch = ARCHS["relu"]()
    batch = random_batch(arch, 3)
    model = _model(name, head, arch=arch)
    _randomise(model, 8)
    model.fit_normalisation(batch)
    assert _errors(model, batch, {"permutation"}) <= TOL


def test_float32_relative_tolerance() -> None:
    """float32: scale equivariance of ScaleGMN-B holds to 1e-4 relative."""
    batch = random_batch(ARCHS["relu"](), 3, dtype=torch.float32)
    torch.manual_seed(0)
    model = build_model("scalegmn-b", out_dim=3, **SMALL).eval()
    assert _errors(model, batch, {"permutation", "scale"}) <= 1e-4


@pytest.mark.parametrize("head", ["graph", "params"])
@pytest.mark.parametrize("name", ["ng-gnn", "ng-t"])
def test_probe_features_keep_permutation_equivariance(name: str, head: str) -> None:
    batch = _batch_for("siren")
    torch.manual_seed(0)
    model = build_model(name, out_dim=3, head=head, edge_dim=1, probes=6, **SMALL).double().eval()
    _randomise(model, 4)
    model.fit_normalisation(batch)
    assert _errors(model, batch, {"permutation"}) <= TOL
    # the probes matter: moving the probe points changes the output
    with torch.no_grad():
        before = model(batch)
        model.probe.points.add_(0.3)
        after = model(batch)
    a = before if head == "graph" else before.x
    b = after if head == "graph" else after.x
    assert (a - b).abs().max() > 1e-6


@pytest.mark.parametrize("name", ["scalegmn", "scalegmn-b"])
@pytest.mark.parametrize("arch_name,kinds",
                         [("siren", {"permutation", "sign"}), ("relu-inr", {"permutation", "scale"})])
def test_scalegmn_probes_keep_scale_and_sign_equivariance(name: str, arch_name: str, kinds: set) -> None:
    from core.network import mlp_architecture

    arch = mlp_architecture([2, 7, 6, 1], "relu") if arch_name == "relu-inr" else ARCHS[arch_name]()
    batch = random_batch(arch, 3, seed=0)
    torch.manual_seed(0)
    model = build_model(name, out_dim=3, head="graph", edge_dim=1, probes=5, **SMALL).double().eval()
    _randomise(model, 5)
    model.fit_normalisation(batch)
    assert _errors(model, batch, kinds) <= TOL
    with torch.no_grad():
        before = model(batch)
        model.probe.points.add_(0.3)
        assert (model(batch) - before).abs().max() > 1e-6
