"""The dense-block fast path of NG-GNN gives the sparse path's outputs and gradients, and is only taken
when that is guaranteed."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from core.graph import to_graph, to_graphs
from core.models import build_model
from core.models.layers.dense_blocks import DenseBlocks
from core.models.layers.edge_update import AffineEdges, linear_terms, materialise
from core.network.spec import Activation, Architecture, Linear, Network, Residual, mlp_architecture
from tests.model_helpers import ARCHS, random_batch


def _outputs_and_grads(model: torch.nn.Module, batch: Batch, dense: bool) -> tuple[torch.Tensor, torch.Tensor]:
    model.dense_path = dense
    model.zero_grad()
    out = model(batch)
    flat = out if torch.is_tensor(out) else torch.cat([out[0].reshape(-1), out[1].reshape(-1)])
    weights = torch.linspace(-1, 1, flat.numel(), dtype=flat.dtype).view(flat.shape)
    (flat * weights).sum().backward()  # a loss whose gradient reaches every output
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    return flat.detach(), grads


@pytest.mark.parametrize("arch_name", sorted(ARCHS))
@pytest.mark.parametrize("head", ["graph", "params"])
def test_dense_path_matches_sparse_path(arch_name: str, head: str) -> None:
    torch.manual_seed(0)
    batch = random_batch(ARCHS[arch_name](), 5, seed=3)
    assert DenseBlocks.for_batch(batch) is not None
    model = build_model("ng-gnn", out_dim=4, hidden=16, layers=2, head=head, edge_dim=batch.edge_attr.shape[1]).double()
    with torch.no_grad():  # non-zero parameters everywhere, so the params head's gradients are not trivially zero
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.fit_normalisation(batch)
    out_sparse, grad_sparse = _outputs_and_grads(model, batch, dense=False)
    out_dense, grad_dense = _outputs_and_grads(model, batch, dense=True)
    assert grad_sparse.abs().max() > 0
    torch.testing.assert_close(out_dense, out_sparse, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad_dense, grad_sparse, rtol=1e-9, atol=1e-9)


def test_dense_path_is_refused_for_mixed_batches() -> None:
    graphs = [to_graph(Network.from_flat(a, torch.randn(a.num_parameters)), grid_size=3)
              for a in (mlp_architecture([3, 5, 2], "relu"), mlp_architecture([3, 4, 2], "relu"))]
    assert DenseBlocks.for_batch(Batch.from_data_list(graphs)) is None


def test_dense_path_is_refused_for_skip_connections() -> None:
    arch = Architecture((Linear("a", 2, 4), Activation("relu"), Linear("b", 4, 4), Residual(1), Activation("relu"),
                         Linear("c", 4, 1)), (2,))
    assert DenseBlocks.for_batch(to_graphs(arch, torch.randn(3, arch.num_parameters))) is None


def test_dense_path_is_refused_for_relabelled_nodes() -> None:
    batch = random_batch(mlp_architecture([3, 5, 2], "relu"), 2)
    assert DenseBlocks.for_batch(batch) is not None
    relabel = torch.arange(batch.num_nodes)
    relabel[3], relabel[4] = 4, 3  # swap two hidden nodes' labels: same graph, different numbering
    batch.edge_index = relabel[batch.edge_index]
    assert DenseBlocks.for_batch(batch) is None


def test_dense_path_is_refused_for_other_edge_types() -> None:
    batch = random_batch(mlp_architecture([3, 5, 2], "relu"), 2)
    batch.edge_type = batch.edge_type.clone()
    batch.edge_type[0] = 1 - batch.edge_type[0]  # one edge of another type: a block is no longer of one type
    assert DenseBlocks.for_batch(batch) is None


def test_folded_edge_products_equal_the_materialised_ones() -> None:
    gen = torch.Generator().manual_seed(0)
    phi = torch.randn(2, 3, 4, 2, dtype=torch.float64, generator=gen)
    edges = AffineEdges(phi, torch.randn(6, 2, dtype=torch.float64, generator=gen),
                        torch.randn(6, dtype=torch.float64, generator=gen))
    weight = torch.randn(5, 6, dtype=torch.float64, generator=gen)
    bias = torch.randn(5, dtype=torch.float64, generator=gen)
    dense = materialise(edges)
    torch.testing.assert_close(dense, phi @ edges.basis.T + edges.offset, rtol=1e-12, atol=1e-12)
    x, w, b = linear_terms(edges, weight, bias)
    assert x is phi and w.shape == (5, 2)
    torch.testing.assert_close(x @ w.T + b, dense @ weight.T + bias, rtol=1e-12, atol=1e-12)
    x, w, b = linear_terms(edges, weight)  # without a bias: W c alone
    torch.testing.assert_close(x @ w.T + b, dense @ weight.T, rtol=1e-12, atol=1e-12)
    assert linear_terms(dense, weight, bias) == (dense, weight, bias)  # a tensor passes through


@pytest.mark.parametrize("arch_name, edge_hidden, folded", [("siren", 0, True), ("cnn", 0, True), ("cnn", 8, False)])
def test_first_layer_reads_narrow_edge_features_unmaterialised(arch_name: str, edge_hidden: int, folded: bool) -> None:
    """φ narrower than the edge states (1 column for an MLP, 9 for 3×3 kernels): the first layer gets `AffineEdges`
    and its edge products run on φ; as wide or wider (9 columns into 8-wide states): tensors. Same outputs."""
    batch = random_batch(ARCHS[arch_name](), 3, seed=2)
    model = build_model("ng-gnn", out_dim=4, hidden=16, layers=2, edge_dim=batch.edge_attr.shape[1],
                        edge_hidden=edge_hidden).double()
    model.fit_normalisation(batch)
    with torch.no_grad():
        model.dense_path = False
        out_sparse = model(batch)
        received = []
        model.layers[0].register_forward_hook(lambda mod, inp, out: received.append(inp[1]))
        model.dense_path = True
        out_dense = model(batch)
        model.fold_edge_features = False  # the switch: materialised tensors, same outputs
        out_unfolded = model(batch)
    blocks, unfolded = received
    assert all(isinstance(b, AffineEdges) == folded for b in blocks)
    assert not any(isinstance(b, AffineEdges) for b in unfolded)
    torch.testing.assert_close(out_dense, out_sparse, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out_unfolded, out_sparse, rtol=1e-10, atol=1e-10)


def test_compiled_layers_give_the_eager_outputs_and_gradients() -> None:
    # inductor around the fused kernel's custom op (core/kernels): same values and, through its registered
    # backward, the same gradients as eager
    batch = random_batch(ARCHS["siren"](), 4, seed=1, dtype=torch.float32)
    model = build_model("ng-gnn", out_dim=3, hidden=8, layers=1)
    model.fit_normalisation(batch)
    keys = set(model.state_dict())
    eager_out, eager_grads = _outputs_and_grads(model, batch, dense=True)
    model.compile_layers()
    compiled_out, compiled_grads = _outputs_and_grads(model, batch, dense=True)
    assert set(model.state_dict()) == keys  # checkpoints of compiled runs load into eager models
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled_grads, eager_grads, rtol=1e-4, atol=1e-6)


def test_compiled_layers_never_fall_back_to_eager() -> None:
    """Three architectures × {train, eval} × {float32, bfloat16}: more graph variants than Dynamo's default
    cache holds (traced with the eager backend: the cache, not the kernels, is under test)."""
    import torch._dynamo.config as dynamo_config

    from core.device import autocast

    with dynamo_config.patch(fail_on_recompile_limit_hit=True):  # a fallback to eager raises instead of warning
        for arch_name in ("siren", "relu", "cnn"):
            batch = random_batch(ARCHS[arch_name](), 4, seed=1, dtype=torch.float32)
            model = build_model("ng-gnn", out_dim=3, hidden=8, layers=2, edge_dim=batch.edge_attr.shape[1])
            model.fit_normalisation(batch)
            model.compile_layers(backend="eager")
            for precision in ("fp32", "bf16"):
                model.train()
                with autocast(torch.device("cpu"), precision):
                    model(batch).sum().backward()
                model.eval()
                with torch.no_grad(), autocast(torch.device("cpu"), precision):
                    model(batch)


def test_bench_models_prints_figures() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "core", "bench", "models", "--models", "ng-gnn", "mlp", "--batch", "4",
                          "--hidden", "8", "--layers", "1", "--repeats", "1", "--large", "8", "8", "--memory-batch", "2",
                          "--json"], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout)
    rows = {(r["model"], r["network"]): r for r in result["rows"]}
    assert set(rows) == {(m, n) for m in ("ng-gnn", "mlp") for n in ("2-32-32-1", "small-cnn")}
    assert rows[("mlp", "small-cnn")]["weights_per_graph"] == 4970  # the Small CNN Zoo's networks
    for r in rows.values():
        assert r["train_graphs_per_s"] > 0 and r["inference_graphs_per_s"] > 0 and r["parameters"] > 0
        assert r["peak_train_memory_mb"] >= 0
        # the products' FLOPs as counted (a training step costs more than a pass) and the bound they give
        assert 0 < r["inference_gflop"] < r["train_gflop"]
        bound = r["product_bound"]["fp32"]
        assert bound["inference"] == pytest.approx(4 * result["matmul_peak_gflops"]["fp32"] / r["inference_gflop"])
        assert bound["train"] < bound["inference"]
    assert result["machine"]["cpu_model"] in result["machine"]["summary"]  # figures depend on the CPU kind
    assert [g["model"] for g in result["memory_growth"]] == ["ng-gnn", "mlp"]
    assert all(g["large_mb"] >= 0 for g in result["memory_growth"])


def test_dense_path_in_bfloat16_tracks_the_float32_sparse_path() -> None:
    """Under bfloat16 autocast the dense path's statistics are taken in float32 (std = sqrt(E[m²] - E[m]²)
    would cancel in bfloat16), so its outputs stay close to the float32 reference."""
    from core.device import autocast

    batch = random_batch(ARCHS["siren"](), 6, seed=2, dtype=torch.float32)
    model = build_model("ng-gnn", out_dim=4, hidden=32, layers=3).eval()
    model.fit_normalisation(batch)
    with torch.no_grad():
        model.dense_path = False
        ref = model(batch)
        model.dense_path = True
        with autocast(torch.device("cpu"), "bf16"):
            low = model(batch).float()
    torch.testing.assert_close(low, ref, rtol=0.05, atol=0.05 * float(ref.abs().max()))


@pytest.mark.parametrize("name, dense", [("ng-gnn", True), ("ng-gnn", False), ("ng-t", False)])
def test_edge_states_between_layers_are_kept_in_the_autocast_dtype(name: str, dense: bool) -> None:
    """Under bfloat16 autocast every layer receives and returns bfloat16 edge states (they only feed products
    and a residual sum; half the memory traffic), the readout gets them back in float32, and without
    autocast they stay float32."""
    from core.device import autocast

    batch = random_batch(ARCHS["siren"](), 3, seed=1, dtype=torch.float32)
    model = build_model(name, out_dim=4, hidden=16, layers=2, head="params").eval()
    if name == "ng-gnn":
        model.dense_path = dense
    model.fit_normalisation(batch)
    seen: list[tuple[torch.dtype, torch.dtype]] = []  # (edge states in, edge states out) per layer

    def dtypes(states) -> torch.dtype:
        # the dense path hands the first layer unmaterialised `AffineEdges`: the dtype they materialise in
        kinds = {materialise(t).dtype for t in (states if isinstance(states, tuple) else (states,))}
        assert len(kinds) == 1
        return kinds.pop()

    hooks = [layer.register_forward_hook(lambda mod, inp, out: seen.append((dtypes(inp[1]), dtypes(out[1]))))
             for layer in model.layers]
    with torch.no_grad():
        model(batch)
        assert seen == [(torch.float32, torch.float32)] * 2
        seen.clear()
        with autocast(torch.device("cpu"), "bf16"):
            model.readout.edge.register_forward_pre_hook(lambda mod, inp: seen.append((inp[0].dtype,) * 2))
            model(batch)
    for hook in hooks:
        hook.remove()
    assert seen == [(torch.bfloat16, torch.bfloat16)] * 2 + [(torch.float32, torch.float32)]


def test_block_stats_of_bfloat16_messages_are_taken_in_float32() -> None:
    """Messages with a large mean and a small spread: in bfloat16, E[m²] - E[m]² would be rounding noise."""
    from core.kernels.film_message_stats import block_stats

    gen = torch.Generator().manual_seed(0)
    m = (10 + 0.05 * torch.randn(4, 3, 32, 8, generator=gen)).to(torch.bfloat16)
    ref = block_stats(m.double(), 2)
    low = block_stats(m, 2)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.double(), ref, rtol=1e-3, atol=1e-3)


def test_cpu_allocator_tuning_is_applied_once_on_glibc() -> None:
    import platform

    from core.device import tune_cpu_allocator

    applied = tune_cpu_allocator()
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    assert tune_cpu_allocator() == applied


def test_product_flops_count_what_the_first_layer_fold_saves() -> None:
    """`bench models`' FLOP count sees the fold: the first layer's FiLM (H_e → 4H) and W_e (H_e → H_e) products run
    on d = 1 column instead of H_e for every edge, at the price of W·M (H_e·d per output) once per block."""
    from core.bench.models import product_flops

    batch = random_batch(ARCHS["siren"](), 3, seed=2)
    hidden, edges, blocks, d = 16, batch.edge_attr.shape[0], 3, 1
    model = build_model("ng-gnn", out_dim=4, hidden=hidden, layers=2, edge_dim=d)
    model.fit_normalisation(batch)
    folded = product_flops(model, batch, train=False)
    model.fold_edge_features = False
    unfolded = product_flops(model, batch, train=False)
    outputs = 4 * hidden + hidden  # FiLM's γ, β for both directions, and W_e's
    assert unfolded - folded == 2 * edges * outputs * (hidden - d) - blocks * 2 * outputs * hidden * d
    assert product_flops(model, batch, train=True) > 2 * unfolded  # the backward pass: about twice the forward


def test_cpu_model_names_the_bfloat16_units() -> None:
    from core.bench.machine import cpu_model

    def info(flags: str) -> str:
        return f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 {flags}\n"

    assert cpu_model(info("avx512_bf16 amx_bf16 amx_tile")) == "Some CPU (AMX)"
    assert cpu_model(info("avx512f avx512_bf16")) == "Some CPU (AVX512-BF16, no AMX)"
    assert cpu_model(info("avx512f")) == "Some CPU (no bf16 units)"
