"""Symmetry toolkit: admitted transforms preserve the function, broken ones are caught, graph action ==
network action, canonical forms are invariant, group laws hold, and the metanetwork harness can fail."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch

from core.graph import from_graph, to_graph, to_graphs
from core.network import (
    Activation,
    Architecture,
    BatchNorm,
    Conv,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    Linear,
    Network,
    Offset,
    Pool,
    Residual,
    forward_many,
    mlp_architecture,
    run,
    siren_architecture,
)
from core.symmetry import (
    GroupElement,
    SymmetryError,
    admitted_symmetries,
    apply_to_flat,
    apply_to_graph,
    apply_to_network,
    augment_flat,
    canonicalize,
    check_function_preservation,
    constant_output,
    equivariance_error,
    invariance_error,
    prediction_invariance_error,
    probe_inputs,
    random_element,
)
from core.symmetry.canonical import CANONICAL_RULES, canonical_elements

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACTS = ["relu", "leaky_relu", "tanh", "sine", "sigmoid", "identity", "gelu"]
RTOL = 1e-9


# ---------------------------------------------------------------------------------------------- strategies
@st.composite
def mlp_archs(draw, min_width: int = 1) -> Architecture:
    """Random MLPs: depth, widths, activations, LayerNorm/BatchNorm before or after the activation, skips."""
    n_in = draw(st.integers(1, 3))
    depth = draw(st.integers(1, 3))
    ops: list = []
    width, prev_act_op = n_in, None
    for i in range(depth):
        w = draw(st.integers(min_width, 4))
        act = draw(st.sampled_from(ACTS))
        ops.append(Linear(f"fc{i}", width, w))
        norm = draw(st.sampled_from([None, "bn", "bn_after", "ln", "ln_after", "bn_plain"]))
        if norm == "bn":
            ops.append(BatchNorm(f"bn{i}", w))
        elif norm == "bn_plain":
            ops.append(BatchNorm(f"bn{i}", w, affine=False))
        elif norm == "ln":
            ops.append(LayerNorm(f"ln{i}", w))
        if prev_act_op is not None and w == width and draw(st.booleans()):
            ops.append(Residual(prev_act_op))
        ops.append(Activation(act, w0=draw(st.sampled_from([1.0, 30.0])), slope=0.1))
        prev_act_op = len(ops) - 1
        if norm == "bn_after":
            ops.append(BatchNorm(f"bn{i}", w))
        elif norm == "ln_after":
            ops.append(LayerNorm(f"ln{i}", w))
        width = w
    ops.append(Linear("out", width, draw(st.integers(1, 3))))
    if draw(st.booleans()):
        ops.append(Offset(0.5))
    return Architecture(tuple(ops), (n_in,))


@st.composite
def cnn_archs(draw, min_channels: int = 1) -> Architecture:
    """Random CNNs: kernels 1/3/5, BatchNorm (affine or not, running stats or batch stats), pooling, skips,
    then global average pooling or flatten, an optional hidden linear layer and an output layer."""
    c_in = draw(st.integers(1, 2))
    size = draw(st.sampled_from([4, 6]))
    ops: list = []
    ch, spatial, prev = c_in, size, None
    for i in range(draw(st.integers(1, 3))):
        k = draw(st.sampled_from([1, 3, 5]))
        c = draw(st.integers(min_channels, 4))
        ops.append(Conv(f"conv{i}", ch, c, (k, k), padding=(k // 2, k // 2)))
        bn = draw(st.sampled_from([None, "affine", "plain", "batch_stats"]))
        if bn == "affine":
            ops.append(BatchNorm(f"bn{i}", c))
        elif bn == "plain":
            ops.append(BatchNorm(f"bn{i}", c, affine=False))
        elif bn == "batch_stats":
            ops.append(BatchNorm(f"bn{i}", c, track_running_stats=False))
        act = draw(st.sampled_from(["relu", "tanh", "leaky_relu", "sigmoid"]))
        if prev is not None and c == ch and draw(st.booleans()):
            ops.append(Residual(prev))
        ops.append(Activation(act, slope=0.2))
        prev = len(ops) - 1
        ch = c
        if spatial >= 4 and draw(st.booleans()):
            ops.append(Pool(draw(st.sampled_from(["max", "avg"])), (2, 2), (2, 2)))
            spatial //= 2
            prev = None  # a skip across a pooling layer would change shape
    if draw(st.booleans()):
        ops.append(GlobalAvgPool())
        feat = ch
    else:
        ops.append(Flatten())
        feat = ch * spatial * spatial
    if draw(st.booleans()):
        h = draw(st.integers(max(min_channels, 1), 4))
        ops += [Linear("fc", feat, h), Activation(draw(st.sampled_from(["relu", "tanh"])))]
        feat = h
    ops.append(Linear("head", feat, 2))
    return Architecture(tuple(ops), (c_in, size, size))


any_arch = st.one_of(mlp_archs(), cnn_archs())


def random_network(arch: Architecture, seed: int = 0) -> Network:
    """Float64 parameters ~ N(0, 1/fan_in) for weights, N(0, 1) elsewhere; positive running variances."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for key, shape in arch.parameter_shapes():
        t = torch.randn(*shape, generator=gen, dtype=torch.float64)
        if key.endswith("running_var"):
            t = t.abs() + 0.5
        elif len(shape) > 1:
            t = t / math.sqrt(math.prod(shape[1:]))
        params[key] = t
    return Network(arch, params)


def outputs(arch: Architecture, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return forward_many(arch, flat.reshape(-1, flat.shape[-1]), x)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


# ---------------------------------------------------------------------------------------------- reports
def test_siren_report_and_summary():
    report = admitted_symmetries(siren_architecture())
    assert report.describe() == "permutation of 32+32 hidden neurons; sign flips on 64 neurons; bias periodicity 2π/30"
    assert report.kinds == ["permutation", "sign", "phase"]
    assert [layer.period for layer in report.layers] == [pytest.approx(2 * math.pi / 30)] * 2


def test_report_per_activation():
    assert admitted_symmetries(mlp_architecture([2, 5, 5, 1], "relu")).kinds == ["permutation", "scale"]
    assert admitted_symmetries(mlp_architecture([2, 5, 1], "tanh")).kinds == ["permutation", "sign"]
    for fn in ("sigmoid", "gelu", "silu"):
        report = admitted_symmetries(mlp_architecture([2, 5, 1], fn))
        assert report.kinds == ["permutation"]
        assert report.layers[0].scaling is None
    ident = admitted_symmetries(mlp_architecture([2, 5, 1], "identity")).layers[0]
    assert ident.scaling == "positive" and ident.sign_flips


def test_norm_derivations():
    # affine LayerNorm right after the linear layer: the scale enters at γ, β → admitted
    ln_first = Architecture((Linear("a", 2, 4), LayerNorm("n", 4), Activation("relu"), Linear("b", 4, 1)), (2,))
    assert admitted_symmetries(ln_first).kinds == ["permutation", "scale"]
    # LayerNorm after the activation mixes scaled features → permutation only
    ln_after = Architecture((Linear("a", 2, 4), Activation("relu"), LayerNorm("n", 4), Linear("b", 4, 1)), (2,))
    assert admitted_symmetries(ln_after).kinds == ["permutation"]
    # non-affine LayerNorm: nothing to carry the scale
    ln_plain = Architecture((Linear("a", 2, 4), LayerNorm("n", 4, affine=False), Activation("relu"),
                             Linear("b", 4, 1)), (2,))
    assert admitted_symmetries(ln_plain).kinds == ["permutation"]
    # BatchNorm with batch statistics after a ReLU: only |d| = 1 passes, which ReLU does not admit as a sign
    bs = Architecture((Linear("a", 2, 4), Activation("relu"), BatchNorm("n", 4, track_running_stats=False),
                       Linear("b", 4, 1)), (2,))
    assert admitted_symmetries(bs).kinds == ["permutation"]
    # max pooling does not commute with sign flips
    mp = Architecture((Conv("c", 1, 3, (3, 3)), Activation("tanh"), Pool("max", (2, 2), (2, 2)), GlobalAvgPool(),
                       Linear("o", 3, 1)), (1, 6, 6))
    assert admitted_symmetries(mp).kinds == ["permutation"]


def test_residual_ties_and_fixing():
    tied = Architecture((Linear("a", 2, 4), Activation("relu"), Linear("b", 4, 4), Residual(1), Activation("relu"),
                         Linear("c", 4, 1)), (2,))
    report = admitted_symmetries(tied)
    assert report.layers[0].group == report.layers[1].group and report.layers[0].tied_with == (2,)
    assert report.describe().startswith("permutation of 4×2 tied hidden neurons")
    g = random_element(tied, seed=3)
    assert torch.equal(g.perms[1], g.perms[2]) and torch.equal(g.scales[1], g.scales[2])
    # a skip from the input ties the hidden layer to input neurons, which never move
    to_input = Architecture((Linear("a", 3, 3), Activation("relu"), Residual(-1), Linear("c", 3, 1)), (3,))
    assert admitted_symmetries(to_input).kinds == [] and not admitted_symmetries(to_input).layers[0].permutable
    # the skip reads layer a before its BatchNorm (where a's scale enters), layer b after its bias (where
    # b's enters): the summands transform differently → the tied pair admits permutations only
    mismatch = Architecture((Linear("a", 2, 4), BatchNorm("n", 4), Activation("relu"), Linear("b", 4, 4), Residual(0),
                             Activation("relu"), Linear("c", 4, 1)), (2,))
    assert admitted_symmetries(mismatch).kinds == ["permutation"]
    matched = Architecture(mismatch.ops[:4] + mismatch.ops[5:], (2,))
    assert admitted_symmetries(matched).kinds == ["permutation", "scale"]


# ---------------------------------------------------------------------------------------------- preservation
@SETTINGS
@given(arch=any_arch, seed=st.integers(0, 2**16))
def test_admitted_transforms_preserve_function(arch, seed):
    net = random_network(arch, seed)
    results = check_function_preservation(net, trials=2, seed=seed)
    assert {r.symmetry for r in results} == set(admitted_symmetries(arch).kinds)
    for r in results:
        assert r.passed and r.max_rel_error <= RTOL, r
    # every kind at once, batched
    x = probe_inputs(arch, seed=seed)
    g = random_element(arch, seed=seed, batch=3)
    moved = apply_to_flat(arch, net.flat().expand(3, -1), g)
    reference = outputs(arch, net.flat(), x)[0]
    assert rel_err(outputs(arch, moved, x), reference.expand(3, *reference.shape)) <= RTOL


# found by Hypothesis: every ReLU of this network is dead on seed 386's probe inputs (not on seed 0's)
DEAD_ON_ITS_PROBES = Architecture((Linear("fc0", 1, 4), BatchNorm("bn0", 4), Activation("tanh"), Linear("fc1", 4, 3),
                                   Activation("relu"), Linear("out", 3, 1)), (1,))


@SETTINGS
@given(arch=st.one_of(mlp_archs(min_width=3), cnn_archs(min_channels=3)), seed=st.integers(0, 2**16))
@example(arch=DEAD_ON_ITS_PROBES, seed=386)
def test_broken_transforms_are_caught(arch, seed):
    net = random_network(arch, seed)
    # on the check's own probe inputs (seed): on others every ReLU can be dead and the output constant
    assume(not constant_output(net, seed=seed, rtol=1e-6))
    for r in check_function_preservation(net, trials=3, seed=seed, broken=True):
        assert not r.passed, r
    # kinds the architecture does not admit, applied anyway (e.g. sign flips on ReLU layers)
    report = admitted_symmetries(arch)
    missing = [k for k in ("scale", "sign") if k not in report.kinds]
    if missing and report.groups():
        for r in check_function_preservation(net, trials=3, seed=seed, kinds=missing):
            assert not r.admitted and not r.passed, r


def test_wrong_activation_claim_fails():
    relu = random_network(mlp_architecture([2, 6, 6, 1], "relu"))
    claimed = mlp_architecture([2, 6, 6, 1], "tanh")
    res = {r.symmetry: r for r in check_function_preservation(relu, assume=claimed)}
    assert res["permutation"].passed and not res["sign"].passed
    siren = random_network(siren_architecture())
    as_relu = Architecture(tuple(Activation("relu") if isinstance(op, Activation) else op
                                 for op in siren.architecture.ops), (2,))
    res = {r.symmetry: r for r in check_function_preservation(siren, assume=as_relu)}
    assert res["permutation"].passed and not res["scale"].passed


def test_siren_phase_uses_w0():
    """The phase is w0·b: the bias period is 2π/w0; half of it flips the sign of the neuron instead."""
    net = random_network(siren_architecture())
    x = probe_inputs(net.architecture)
    b = net.params["seq.0.bias"]
    for shift, preserved in ((2 * math.pi / 30, True), (-6 * math.pi / 30, True), (math.pi / 30, False), (1.0, False)):
        moved = net.clone()
        moved.params["seq.0.bias"] = b + shift
        assert (rel_err(run(moved, x), run(net, x)) < 1e-9) == preserved, shift


def test_batchnorm_scaling_moves_gamma_beta():
    arch = Architecture((Conv("c", 2, 3, (3, 3)), BatchNorm("bn", 3), Activation("relu"), GlobalAvgPool(),
                         Linear("o", 3, 2)), (2, 5, 5))
    net = random_network(arch)
    g = GroupElement(scales={1: torch.tensor([0.01, 3.0, 70.0], dtype=torch.float64)})
    moved = apply_to_network(net, g)
    assert torch.equal(moved.params["c.weight"], net.params["c.weight"])
    assert torch.equal(moved.params["bn.running_var"], net.params["bn.running_var"])
    assert torch.allclose(moved.params["bn.weight"], net.params["bn.weight"] * g.scales[1])
    x = probe_inputs(arch)
    assert rel_err(run(moved, x), run(net, x)) < RTOL


# ---------------------------------------------------------------------------------------------- graphs
@SETTINGS
@given(arch=any_arch, seed=st.integers(0, 2**16))
def test_graph_action_equals_network_action(arch, seed):
    net = random_network(arch, seed)
    g = random_element(arch, seed=seed)
    direct = apply_to_graph(to_graph(net), g)
    via_net = to_graph(apply_to_network(net, g))
    assert torch.allclose(direct.x, via_net.x, rtol=1e-13, atol=0)
    assert torch.allclose(direct.edge_attr, via_net.edge_attr, rtol=1e-13, atol=0)
    assert torch.equal(direct.edge_index, via_net.edge_index)
    assert torch.allclose(from_graph(direct).flat(), apply_to_network(net, g).flat(), rtol=1e-13, atol=0)


def test_graph_action_on_batch():
    arch = Architecture((Linear("a", 2, 4), Activation("relu"), Linear("b", 4, 4), Residual(1), Activation("relu"),
                         Linear("c", 4, 1)), (2,))
    flat = torch.randn(3, arch.num_parameters, dtype=torch.float64)
    g = random_element(arch, seed=1, batch=3)
    expected = to_graphs(arch, apply_to_flat(arch, flat, g))
    vectorised = apply_to_graph(to_graphs(arch, flat), g)  # one gather for the whole batch
    listed = apply_to_graph(to_graphs(arch, flat), [g.index(i) for i in range(3)])  # graph by graph
    for moved in (vectorised, listed):
        assert torch.allclose(moved.x, expected.x, rtol=1e-13, atol=0)
        assert torch.allclose(moved.edge_attr, expected.edge_attr, rtol=1e-13, atol=0)
    # a mixed batch of architectures, one element each
    nets = [random_network(siren_architecture((3, 4)), 1), random_network(arch, 2)]
    els = [random_element(n.architecture, seed=5) for n in nets]
    mixed = apply_to_graph(Batch.from_data_list([to_graph(n, grid_size=1) for n in nets]), els)
    for i, (n, el) in enumerate(zip(nets, els)):
        assert torch.allclose(mixed.get_example(i).x, to_graph(apply_to_network(n, el)).x, rtol=1e-13, atol=0)
    with pytest.raises(SymmetryError):
        apply_to_graph(to_graphs(arch, flat), random_element(arch, seed=1, batch=2))


def test_augment_flat_preserves_functions():
    arch = siren_architecture((8, 8))
    flat = torch.randn(4, arch.num_parameters, dtype=torch.float64) * 0.2
    moved = augment_flat(arch, flat, seed=0)
    x = probe_inputs(arch)
    assert not torch.allclose(moved, flat)
    assert rel_err(outputs(arch, moved, x), outputs(arch, flat, x)) < RTOL


def test_prediction_invariance_error_separates_invariant_and_weight_reading_pipelines():
    """A pipeline reading the network's function (its outputs at fixed points, or its canonical form) scores ~0
    under every admitted kind; one reading the raw weights scores O(1) under each kind that moves them."""
    arch = siren_architecture((6, 5))
    net = random_network(arch, seed=4)
    x = probe_inputs(arch, seed=1)

    def by_function(nets: list) -> torch.Tensor:
        return torch.stack([run(n, x).flatten() for n in nets])

    def by_canonical_form(nets: list) -> torch.Tensor:
        return torch.stack([canonicalize(n).flat() for n in nets])

    def by_weights(nets: list) -> torch.Tensor:
        return torch.stack([n.flat() for n in nets])

    for kind in ("permutation", "sign", "phase"):
        assert prediction_invariance_error(by_function, net, kinds=[kind]) < RTOL
        assert prediction_invariance_error(by_canonical_form, net, kinds=[kind]) < 1e-8
        assert prediction_invariance_error(by_weights, net, kinds=[kind]) > 1e-3
    absolute = prediction_invariance_error(by_weights, net, kinds=["sign"], relative=False)
    assert absolute == pytest.approx(prediction_invariance_error(by_weights, net, kinds=["sign"])
                                     * net.flat().abs().max().item())


# ---------------------------------------------------------------------------------------------- canonical
@pytest.mark.parametrize("reads", CANONICAL_RULES)
@SETTINGS
@given(arch=any_arch, seed=st.integers(0, 2**16))
def test_canonical_form_is_invariant(reads, arch, seed):
    net = random_network(arch, seed)
    try:
        canon = canonicalize(net, reads)
    except SymmetryError as exc:  # a positively scaled layer with one outgoing weight per neuron: no order to read
        assert reads != "incoming" and "at least two outgoing weights" in str(exc)
        return
    x = probe_inputs(arch, seed=seed)
    assert rel_err(run(canon, x), run(net, x)) <= 1e-8
    for s in range(2):
        other = canonicalize(apply_to_network(net, random_element(arch, seed=seed + 7 * s + 1)), reads)
        scale = canon.flat().abs().max()
        assert ((other.flat() - canon.flat()).abs().max() <= 1e-8 * scale), "canonical form moved"


def test_canonical_form_sorts_and_normalises():
    arch = mlp_architecture([3, 6, 4, 1], "relu")
    canon = canonicalize(random_network(arch, 5))
    rows = torch.cat([canon.params["layers.0.weight"], canon.params["layers.0.bias"][:, None]], 1)
    assert torch.allclose(rows.norm(dim=1), torch.ones(6, dtype=torch.float64))
    assert torch.all(rows.sum(1)[1:] >= rows.sum(1)[:-1])
    # the outgoing rule: columns of the next layer's weights (after that layer's own normalisation) instead
    # (a positive scale needs two outgoing weights per neuron to leave an order: two outputs here)
    canon = canonicalize(random_network(mlp_architecture([3, 6, 4, 2], "relu"), 5), "outgoing")
    for key, width in (("layers.2.weight", 6), ("layers.4.weight", 4)):
        columns = canon.params[key]  # column j: what neuron j of the layer before sends
        assert torch.allclose(columns.norm(dim=0), torch.ones(width, dtype=torch.float64))
        assert torch.all(columns.sum(0)[1:] >= columns.sum(0)[:-1])
    with pytest.raises(SymmetryError, match="at least two outgoing weights"):
        canonicalize(random_network(arch, 5), "outgoing")


def test_tied_layers_canonicalise_under_both_rules():
    """A residual skip ties two hidden layers (one permutation and scale for both): the outgoing rule reads the
    group's last layer, the incoming rule its first; both give one form per orbit and keep the function."""
    tied = Architecture((Linear("a", 2, 4), Activation("relu"), Linear("b", 4, 4), Residual(1), Activation("relu"),
                         Linear("c", 4, 3), Activation("tanh"), Linear("d", 3, 1)), (2,))
    net = random_network(tied, 9)
    x = probe_inputs(tied, seed=2)
    for reads in CANONICAL_RULES:
        canon = canonicalize(net, reads)
        assert rel_err(run(canon, x), run(net, x)) <= 1e-10
        for seed in range(3):
            moved = canonicalize(apply_to_network(net, random_element(tied, seed=seed)), reads)
            assert (moved.flat() - canon.flat()).abs().max() <= 1e-10 * canon.flat().abs().max()
    assert not torch.allclose(canonicalize(net, "incoming").flat(), canonicalize(net, "outgoing").flat())
    with pytest.raises(SymmetryError, match="unknown canonical form"):
        canonicalize(net, "sideways")


def test_the_outgoing_rule_keeps_signs_under_input_coordinate_transforms():
    """Translating or rotating a SIREN's input coordinates changes only its first layer's incoming parameters:
    the outgoing rule gives every neuron of the transformed INR the original's sign (the incoming rule does not)."""
    from core.zoo.inr_augment import parse_augment

    arch = siren_architecture((16, 16))
    gen = torch.Generator().manual_seed(0)
    flat = torch.randn(64, arch.num_parameters, generator=gen, dtype=torch.float64) * 0.05
    moved = parse_augment("translate=0.25,rotate=45,scale=0.2")(arch, flat, gen)

    def signs(v: torch.Tensor, reads: str) -> torch.Tensor:
        g = canonical_elements(arch, v, reads)
        return torch.cat([torch.zeros_like(g.scales[L]).scatter_(1, g.perms[L], g.scales[L]) for L in sorted(g.perms)],
                         1)

    assert torch.equal(signs(moved, "outgoing"), signs(flat, "outgoing"))
    assert not torch.equal(signs(moved, "incoming"), signs(flat, "incoming"))
    # incoming-first: the first layer's signs follow its (moved) incoming weights, the second layer's do not move
    after, before = signs(moved, "incoming-first").split(16, 1), signs(flat, "incoming-first").split(16, 1)
    assert not torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])


def test_incoming_first_reads_the_first_layer_like_incoming_and_the_rest_like_outgoing():
    """On a SIREN with two hidden layers, the first layer's element is the incoming rule's, the second's the
    outgoing rule's (each reads parameters the other layer's step does not touch)."""
    arch = siren_architecture((8, 8))
    flat = torch.randn(16, arch.num_parameters, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mixed, incoming, outgoing = (canonical_elements(arch, flat * 0.1, r)
                                 for r in ("incoming-first", "incoming", "outgoing"))
    first, second = sorted(mixed.perms)
    for part in ("perms", "scales"):
        assert torch.equal(getattr(mixed, part)[first], getattr(incoming, part)[first])
        assert torch.equal(getattr(mixed, part)[second], getattr(outgoing, part)[second])
    assert not torch.equal(mixed.perms[second], incoming.perms[second])


# ---------------------------------------------------------------------------------------------- group laws
@SETTINGS
@given(arch=any_arch, seed=st.integers(0, 2**16))
def test_compose_and_inverse(arch, seed):
    flat = random_network(arch, seed).flat()
    g, h, k = (random_element(arch, seed=seed + i) for i in range(3))
    act = lambda el, v: apply_to_flat(arch, v, el)  # noqa: E731
    close = lambda a, b: torch.allclose(a, b, rtol=1e-10, atol=1e-12)  # noqa: E731
    assert close(act(g.compose(h), flat), act(g, act(h, flat)))
    assert close(act(g.inverse(), act(g, flat)), flat)
    assert close(act(g.compose(g.inverse()), flat), flat)
    assert g.compose(h).compose(k).allclose(g.compose(h.compose(k)))
    # a batch of elements acts element-wise
    gb = random_element(arch, seed=seed, batch=2)
    both = apply_to_flat(arch, flat.expand(2, -1), gb)
    for b in range(2):
        assert close(both[b], act(gb.index(b), flat))


def test_bad_elements_raise():
    arch = mlp_architecture([2, 4, 1], "relu")
    with pytest.raises(SymmetryError):
        apply_to_flat(arch, torch.zeros(arch.num_parameters), GroupElement(perms={1: torch.tensor([0, 0, 1, 2])}))
    with pytest.raises(SymmetryError):
        apply_to_flat(arch, torch.zeros(arch.num_parameters), GroupElement(perms={2: torch.arange(1)}))
    with pytest.raises(SymmetryError):
        apply_to_flat(arch, torch.zeros(arch.num_parameters), GroupElement(shifts={1: torch.ones(4, dtype=torch.long)}))
    with pytest.raises(SymmetryError):
        random_element(arch, kinds=["rotation"])


# ---------------------------------------------------------------------------------------------- harness
def _graphs():
    nets = [random_network(mlp_architecture([2, 5, 4, 1], "relu"), 1), random_network(siren_architecture((4, 3)), 2),
            random_network(Architecture((Conv("c", 1, 3, (3, 3)), Activation("tanh"), GlobalAvgPool(),
                                         Linear("o", 3, 2)), (1, 5, 5)), 3)]
    return [to_graph(n, grid_size=3) for n in nets]


def _sum_pool(batch):
    h = torch.tanh(batch.x @ torch.linspace(-1, 1, 10, dtype=batch.x.dtype).reshape(5, 2))
    e = torch.tanh(batch.edge_attr.sum(-1, keepdim=True) * torch.tensor([[1.0, -2.0]], dtype=batch.x.dtype))
    out = torch.zeros(batch.num_graphs, 2, dtype=batch.x.dtype).index_add_(0, batch.batch, h)
    return out.index_add_(0, batch.batch[batch.edge_index[1]], e)


def _reads_first_hidden(batch):
    first_hidden = torch.stack([torch.nonzero((batch.batch == i) & (batch.node_role == 1))[0, 0]
                                for i in range(batch.num_graphs)])
    return batch.x[first_hidden][:, :2]


def test_harness_invariance():
    graphs = _graphs()
    assert invariance_error(_sum_pool, graphs, trials=3, kinds=["permutation"]) < 1e-12
    assert invariance_error(_reads_first_hidden, graphs, trials=3, kinds=["permutation"]) > 1e-2
    # sum pooling of raw features is not scale invariant, and the harness says so
    assert invariance_error(_sum_pool, graphs, trials=3, kinds=["scale", "sign"]) > 1e-2


def test_harness_equivariance():
    graphs = _graphs()
    pointwise = lambda b: (torch.sin(b.x), torch.cos(b.edge_attr))  # noqa: E731
    rolled = lambda b: (torch.roll(b.x, 1, 0), b.edge_attr)  # noqa: E731
    assert equivariance_error(pointwise, graphs, kinds=["permutation"]) < 1e-12
    assert equivariance_error(rolled, graphs, kinds=["permutation"]) > 1e-2
    linear_update = lambda b: {"node": 2 * b.x, "edge": -3 * b.edge_attr}  # noqa: E731
    assert equivariance_error(linear_update, graphs, kinds=["permutation", "scale", "sign"],
                              output="parameters") < 1e-12
    squared = lambda b: {"node": b.x ** 2, "edge": b.edge_attr ** 2}  # noqa: E731
    assert equivariance_error(squared, graphs, kinds=["permutation", "scale", "sign"], output="parameters") > 1e-2
    # node features scaling with d: biases do, so a per-node linear map of the bias is scale-equivariant
    bias_only = lambda b: (b.x[:, :1] * 4.0, None)  # noqa: E731
    mlp_only = [graphs[0]]
    assert equivariance_error(bias_only, mlp_only, kinds=["permutation", "scale"], output="scale") < 1e-12
    assert equivariance_error(lambda b: (b.x[:, :1].abs(), None), [graphs[1]], kinds=["sign"], output="scale") > 1e-2


def test_harness_refuses_a_vacuous_check_of_all_zero_outputs():
    """An untrained editor proposes Δθ = 0 everywhere; every group element keeps that, so 'error 0' would be a pass
    that tested nothing. The relative check refuses; a non-zero output under a zero reference is still a failure."""
    graphs = _graphs()
    zero_update = lambda b: (torch.zeros_like(b.x), torch.zeros_like(b.edge_attr))  # noqa: E731
    with pytest.raises(SymmetryError, match="vacuous"):
        equivariance_error(zero_update, graphs, kinds=["permutation"], output="parameters")
    with pytest.raises(SymmetryError, match="vacuous"):
        invariance_error(lambda b: torch.zeros(b.num_graphs, 2, dtype=b.x.dtype), graphs, kinds=["permutation"])
    assert equivariance_error(zero_update, graphs, kinds=["permutation"], output="parameters", relative=False) == 0.0
    calls = []

    def zero_then_not(b):
        calls.append(1)
        fill = 0.0 if len(calls) == 1 else 1.0
        return torch.full_like(b.x, fill), None

    assert equivariance_error(zero_then_not, graphs, kinds=["permutation"]) == float("inf")
