"""Metanetwork registry, configs, shapes on mixed-architecture batches, overfitting, nfn agreement, errors."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from core.graph import to_graph
from core.models import MODELS, ParamsOutput, build_model, config_for
from core.models.base import ModelError
from core.network.spec import Network, mlp_architecture, siren_architecture
from tests.model_helpers import ARCHS, random_batch, small_cnn

GRAPH_MODELS = ["ng-gnn", "ng-t", "scalegmn", "scalegmn-b"]
FIXED_MODELS = ["mlp", "nfn-np", "nfn-hnp"]
SMALL = dict(hidden=16, layers=2, readout_hidden=16)


def _mixed_batch() -> Batch:
    """SIREN 2-32-32-1 + small CNN + MLP 4-8-3, converted with one grid size (3)."""
    graphs = []
    for seed, arch in enumerate([siren_architecture(), small_cnn(), mlp_architecture([4, 8, 3], "tanh")]):
        flat = torch.randn(1, arch.num_parameters, generator=torch.Generator().manual_seed(seed))
        graphs.append(to_graph(Network.from_flat(arch, flat[0]), grid_size=3))
    return Batch.from_data_list(graphs)


def test_registry_names() -> None:
    assert set(MODELS) == {"mlp", "nfn-np", "nfn-hnp", "ng-gnn", "ng-t", "scalegmn", "scalegmn-b"}


@pytest.mark.parametrize("name", list(MODELS))
def test_config_roundtrip(name: str) -> None:
    cfg = config_for(name, hidden=8)
    d = cfg.to_dict()
    assert d["hidden"] == 8
    assert type(cfg).from_dict(d) == cfg
    with pytest.raises(ModelError):
        type(cfg).from_dict({**d, "hiddne": 3})
    with pytest.raises(ModelError):
        cfg.replace(nonsense=1)


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_dropout_acts_while_training_only(name: str) -> None:
    """`--dropout` reaches every graph model: outputs vary between training-mode calls, not in eval mode."""
    batch = _mixed_batch()
    model = build_model(name, out_dim=4, edge_dim=9, dropout=0.5, **SMALL)
    model.fit_normalisation(batch)
    model.train()
    assert not torch.allclose(model(batch), model(batch))
    model.eval()
    assert torch.equal(model(batch), model(batch))
    for bad in (-0.1, 1.0):
        with pytest.raises(ModelError, match="dropout"):
            config_for(name, dropout=bad)


@pytest.mark.parametrize("head", ["graph", "params"])
@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_mixed_architecture_shapes(name: str, head: str) -> None:
    batch = _mixed_batch()
    model = build_model(name, out_dim=4, head=head, edge_dim=9, **SMALL)
    model.fit_normalisation(batch)
    out = model(batch)
    if head == "graph":
        assert out.shape == (3, 4)
        # each graph's output does not depend on the other graphs of the batch
        alone = model(Batch.from_data_list([batch.get_example(1)]))
        assert torch.allclose(out[1], alone[0], atol=1e-5)
    else:
        assert isinstance(out, ParamsOutput)
        assert out.x.shape == batch.x.shape and out.edge_attr.shape == batch.edge_attr.shape
    assert torch.isfinite(out[0] if head == "params" else out).all()


@pytest.mark.parametrize("head", ["graph", "params"])
@pytest.mark.parametrize("name", FIXED_MODELS)
def test_fixed_architecture_models(name: str, head: str) -> None:
    arch = ARCHS["relu"]()
    batch = random_batch(arch, 4, dtype=torch.float32)
    model = build_model(name, out_dim=2, head=head, architecture=arch, **SMALL)
    model.fit_normalisation(batch)
    out = model(batch)
    if head == "graph":
        assert out.shape == (4, 2)
    else:
        assert out.x.shape == batch.x.shape and out.edge_attr.shape == batch.edge_attr.shape
    with pytest.raises(ModelError, match="fixed architecture"):
        model(random_batch(ARCHS["tanh"](), 2, dtype=torch.float32))


EDITOR_CASES = [(name, 0) for name in MODELS] + [(name, 4) for name in GRAPH_MODELS]


@pytest.mark.parametrize("name,probes", EDITOR_CASES)
def test_untrained_editor_proposes_no_update_and_then_learns(name: str, probes: int) -> None:
    """head="params" starts at Δθ = 0, so an editor starts at the identity edit (a random first update of the
    weights' own size ruined ScaleGMN / NFN / MLP editors: dilation 2.1× worse than not editing); one optimiser step
    then moves Δθ, so the zeroed maps still learn."""
    from core.tasks.edit import params_update

    torch.manual_seed(0)
    arch = ARCHS["siren"]()
    batch = random_batch(arch, 4, dtype=torch.float32)
    extra = {"architecture": arch} if name in FIXED_MODELS else {"probes": probes}
    model = build_model(name, out_dim=1, head="params", **SMALL, **extra)
    model.fit_normalisation(batch)

    def update() -> torch.Tensor:
        return params_update(arch, model(batch), 4, batch.grid_size[0])  # [4, P]

    assert torch.equal(update(), torch.zeros(4, arch.num_parameters))
    target = torch.randn(4, arch.num_parameters, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.nn.functional.mse_loss(update(), target).backward()
    opt.step()
    with torch.no_grad():
        assert update().abs().max() > 1e-4, f"{name}: the zeroed output maps get no gradient"


def test_fixed_models_need_an_architecture() -> None:
    for name in FIXED_MODELS:
        with pytest.raises(ModelError, match="architecture="):
            build_model(name, out_dim=2)


def test_nfn_rejects_residual_or_flatten_networks() -> None:
    from core.network.spec import Activation, Architecture, Conv, Flatten, Linear

    arch = Architecture((Conv("c", 1, 2, (3, 3)), Activation("relu"), Flatten(), Linear("fc", 2 * 4 * 4, 3)), (1, 6, 6))
    with pytest.raises(ModelError, match="flatten"):
        build_model("nfn-np", out_dim=2, architecture=arch)


def test_bad_inputs() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        build_model("gnn9000", out_dim=2)
    with pytest.raises(ModelError, match="head"):
        build_model("ng-gnn", out_dim=2, head="nodes")
    model = build_model("ng-gnn", out_dim=2, **SMALL)
    with pytest.raises(ModelError, match="edge_dim"):
        model(_mixed_batch())  # grid 3 → 9 edge channels, model built for 1
    with pytest.raises(ModelError, match="NeuralGraph"):
        model(object())


def test_nfn_wrapper_matches_package_layers() -> None:
    """Our batch → WeightSpaceFeatures equals nfn's own state_dict_to_tensors; the wrapped NP/HNP layers
    give the package's outputs on it; with `reference_centred=False` the whole model is the package's layers, pool
    and an MLP, as in the NFN paper."""
    from nfn.common import WeightSpaceFeatures, state_dict_to_tensors

    from core.models.fixed_arch import flat_from_batch

    arch = ARCHS["relu"]()
    batch = random_batch(arch, 3, dtype=torch.float32)
    for name in ("nfn-np", "nfn-hnp"):
        model = build_model(name, out_dim=2, architecture=arch, normalise=False, reference_centred=False, **SMALL)
        ours = model.weight_space_features(flat_from_batch(name, arch, batch)[0])
        ws, bs = zip(*[state_dict_to_tensors(batch.get_example(i).to_network().state_dict()) for i in range(3)])
        ref = WeightSpaceFeatures([torch.cat([w[k] for w in ws])[:, None] for k in range(3)],
                                  [torch.cat([b[k] for b in bs])[:, None] for k in range(3)])
        for a, b in zip(ours, ref):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        layer = model.nfn_layers[0]
        for a, b in zip(layer(ours), layer(ref)):
            assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])
        # the whole model equals running the package's layers and pool by hand
        wsf = ref
        for lay in model.nfn_layers:
            wsf = lay(wsf).map(torch.relu)
        expect = model.readout(model.pool(wsf).flatten(1))
        assert torch.allclose(model(batch), expect, atol=1e-6)


def test_nfn_graph_head_reads_features_centred_on_the_mean_network() -> None:
    """The default graph head: MLP((f(θ) − f(θ̄)) / s), θ̄ = the mean of the networks given to `fit_normalisation`
    and s the spread of their centred features; a run saved before the option existed loads as the plain head."""
    from nfn.common import WeightSpaceFeatures

    from core.models.fixed_arch import flat_from_batch

    arch = ARCHS["relu"]()
    batch = random_batch(arch, 5, dtype=torch.float64)
    torch.manual_seed(0)
    model = build_model("nfn-np", out_dim=3, architecture=arch, **SMALL).double().eval()
    flat = flat_from_batch("nfn-np", arch, batch)[0]
    model.fit_normalisation(batch)
    torch.testing.assert_close(model.reference, flat.mean(0, keepdim=True))

    def pooled(f: torch.Tensor) -> torch.Tensor:
        wsf = model.weight_space_features(f)
        wsf = WeightSpaceFeatures([w / model.scale[i, 0] for i, w in enumerate(wsf.weights)],
                                  [v / model.scale[i, 1] for i, v in enumerate(wsf.biases)])
        for layer in model.nfn_layers:
            wsf = layer(wsf).map(torch.relu)
        return model.pool(wsf).flatten(1)

    centred = pooled(flat) - pooled(flat.mean(0, keepdim=True))
    assert float(model.reference_norm.scale) == pytest.approx(float(centred.detach().std()))
    torch.testing.assert_close(model(batch), model.readout(centred / centred.std()))
    old = {k: v for k, v in model.config.to_dict().items() if k != "reference_centred"}
    assert config_for("nfn-np").from_dict(old).reference_centred is False
    plain = build_model("nfn-np", out_dim=3, config=old)
    assert plain.reference_norm is None and not hasattr(plain, "reference")


@pytest.mark.parametrize("name", list(MODELS))
def test_overfits_tiny_dataset(name: str) -> None:
    """8 random SIRENs, 2 classes: every model reaches 100% training accuracy."""
    torch.manual_seed(0)
    arch = siren_architecture(hidden=(8, 8))
    batch = random_batch(arch, 8, seed=1, dtype=torch.float32)
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    extra = {"architecture": arch} if name in FIXED_MODELS else {}
    model = build_model(name, out_dim=2, **SMALL, **extra)
    model.fit_normalisation(batch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 19:
            with torch.no_grad():
                if (model.eval()(batch).argmax(1) == labels).all():
                    break
            model.train()
    with torch.no_grad():
        acc = (model.eval()(batch).argmax(1) == labels).float().mean()
    assert acc == 1.0, f"{name}: train accuracy {acc:.2f}"


def test_normalisation_is_fitted_only_where_allowed() -> None:
    arch = ARCHS["relu"]()
    batch = random_batch(arch, 4, dtype=torch.float32)
    gnn = build_model("ng-gnn", out_dim=2, **SMALL).fit_normalisation(batch)
    node_std = gnn.normaliser.node_std
    assert bool(gnn.normaliser.fitted) and not torch.equal(node_std, torch.ones_like(node_std))
    sg = build_model("scalegmn", out_dim=2, **SMALL).fit_normalisation(batch)
    assert not hasattr(sg, "normaliser")
    # normalisation statistics travel with the state_dict
    other = build_model("ng-gnn", out_dim=2, **SMALL)
    other.load_state_dict(gnn.state_dict())
    assert torch.equal(other.normaliser.node_mean, gnn.normaliser.node_mean)



@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_invariant_maps_have_finite_gradients_at_zero(dtype: torch.dtype) -> None:
    """Zero and tiny rows (zero kernels, dead neurons) of every symmetry kind keep gradients finite."""
    from core.models.layers.invariant import NONE, POSITIVE, REAL, SIGN, canonicalise, reciprocal

    # 2e-18: norms seen in a trained CNN zoo, whose cube underflows float32 in a naive v/‖v‖² backward
    rows = [torch.zeros(4), torch.full((4,), 1e-30), torch.full((4,), 2e-18), torch.tensor([0.3, -1.0, 2.0, 0.5])]
    v = torch.stack([r for r in rows for _ in range(4)]).to(dtype).requires_grad_(True)
    kind = torch.tensor([NONE, POSITIVE, SIGN, REAL] * len(rows))
    (canonicalise(v, kind).sum() + reciprocal(v, kind).sum()).backward()
    assert torch.isfinite(v.grad).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_bfloat16_autocast_tracks_float32(name: str) -> None:
    """`--precision bf16` on every model: finite outputs close to the float32 ones (mixed batch for graph models)."""
    from core.device import autocast

    torch.manual_seed(0)
    if name in FIXED_MODELS:
        arch = ARCHS["relu"]()
        batch, extra = random_batch(arch, 4, dtype=torch.float32), {"architecture": arch}
    else:
        batch, extra = _mixed_batch(), {"edge_dim": 9}
    model = build_model(name, out_dim=4, **SMALL, **extra).eval()
    model.fit_normalisation(batch)
    seen: list[torch.dtype] = []  # output dtypes of the model's linear maps
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        ref = model(batch)
        calls = len(seen)
        with autocast(torch.device("cpu"), "bf16"):
            low = model(batch).float()
    for hook in hooks:
        hook.remove()
    assert calls and set(seen[:calls]) == {torch.float32}
    assert set(seen[calls:]) == {torch.bfloat16}  # the autocast really ran the products in bfloat16
    assert not torch.equal(low, ref)
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low, ref, rtol=0.05, atol=0.05 * float(ref.abs().max()))


@pytest.mark.parametrize("rff", [0, 3])
def test_edge_encoder_is_its_formula_and_writes_the_storage_dtype(rff: int) -> None:
    """e = W·φ(w) + b + T[type] (computed as one product with a gathered addend): equal to the formula in
    float64, and under bfloat16 autocast written in bfloat16 directly, close to the float32 result."""
    from core.device import autocast
    from core.models.layers.embeddings import NUM_EDGE_TYPES, EdgeEncoder

    gen = torch.Generator().manual_seed(0)
    enc = EdgeEncoder(edge_dim=2, hidden=8, rff_features=rff).double()
    attr = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    kind = torch.randint(0, NUM_EDGE_TYPES, (50,), generator=gen)
    feats = torch.cat([attr, enc.rff(attr)], dim=-1) if rff else attr
    expected = feats @ enc.lin.weight.T + enc.lin.bias + enc.edge_type.weight[kind]
    torch.testing.assert_close(enc(attr, kind), expected, rtol=1e-12, atol=1e-12)
    enc = enc.float()
    ref = enc(attr.float(), kind)
    with autocast(torch.device("cpu"), "bf16"):
        low = enc(attr.float(), kind)
    assert ref.dtype == torch.float32 and low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, rtol=0.02, atol=0.02)
