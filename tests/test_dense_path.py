"""NG-GNN's dense per-architecture blocks (`edge_layout.DenseBlocks`) give the sparse reference's outputs and
gradients, and are only taken when that is guaranteed; the PNA statistics stay float32 under bfloat16."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from core.graph import to_graph, to_graphs
from core.models import build_model
from core.models.layers.edge_layout import DenseBlocks, SparseEdges
from core.network.spec import Activation, Architecture, Linear, Network, Residual, mlp_architecture
from tests.model_helpers import ARCHS, random_batch


def _twins(batch: Batch, **config) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two NG-GNNs with the same weights (float64, fitted to the batch): sparse reference, dense blocks."""
    sparse = build_model("ng-gnn", dense_path=False, edge_dim=batch.edge_attr.shape[1], **config).double()
    with torch.no_grad():  # non-zero parameters everywhere, so the params head's gradients are not trivially zero
        for p in sparse.parameters():
            p.add_(0.1 * torch.randn_like(p))
    sparse.fit_normalisation(batch)
    dense = build_model("ng-gnn", dense_path=True, edge_dim=batch.edge_attr.shape[1], **config).double()
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def _outputs_and_grads(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
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
    sparse, dense = _twins(batch, out_dim=4, hidden=16, layers=2, head=head)
    assert isinstance(dense.edge_layout(batch), DenseBlocks) and isinstance(sparse.edge_layout(batch), SparseEdges)
    out_sparse, grad_sparse = _outputs_and_grads(sparse, batch)
    out_dense, grad_dense = _outputs_and_grads(dense, batch)
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


def test_mixed_batches_take_the_sparse_path_with_the_dense_model() -> None:
    """The same weights read a batch of two architectures through the sparse path, and each graph alone through
    its dense blocks: the same outputs."""
    graphs = [to_graph(Network.from_flat(a, torch.randn(a.num_parameters, dtype=torch.float64)), grid_size=1)
              for a in (mlp_architecture([3, 5, 2], "relu"), mlp_architecture([3, 4, 2], "relu"))]
    torch.manual_seed(1)
    _, dense = _twins(Batch.from_data_list(graphs), out_dim=3, hidden=8, layers=2)
    assert isinstance(dense.edge_layout(Batch.from_data_list(graphs)), SparseEdges)
    with torch.no_grad():
        together = dense(Batch.from_data_list(graphs))
        alone = torch.cat([dense(Batch.from_data_list([g])) for g in graphs])
    torch.testing.assert_close(together, alone, rtol=1e-10, atol=1e-10)


def test_bench_models_prints_figures() -> None:
    import argparse
    import json

    from tests.cli_runner import run_cli_ok

    # one model: each memory figure is taken in a freshly spawned process, which imports torch again
    out = run_cli_ok("bench", "models", "--models", "ng-gnn", "--batch", "4", "--hidden", "8", "--layers", "1",
                     "--repeats", "1", "--large", "8", "8", "--memory-batch", "2", "--device", "cpu", "--json")
    result = json.loads(out.stdout)
    rows = {(r["model"], r["network"]): r for r in result["rows"]}
    assert set(rows) == {("ng-gnn", n) for n in ("2-32-32-1", "small-cnn")}
    assert rows[("ng-gnn", "small-cnn")]["weights_per_graph"] == 4970  # the Small CNN Zoo's networks
    for r in rows.values():
        assert r["train_graphs_per_s"] > 0 and r["inference_graphs_per_s"] > 0 and r["parameters"] > 0
        assert r["peak_train_memory_mb"] >= 0
        # the products' FLOPs as counted (a training step costs more than a pass) and the bound they give
        assert 0 < r["inference_gflop"] < r["train_gflop"]
        bound = r["product_bound"]["fp32"]
        assert bound["inference"] == pytest.approx(4 * result["matmul_peak_gflops"]["fp32"] / r["inference_gflop"])
        assert bound["train"] < bound["inference"]
    assert result["machine"]["cpu_model"] in result["machine"]["summary"]  # figures depend on the CPU kind
    assert result["machine"]["numpy_blas"] in result["machine"]["summary"]  # and on the BLAS kernels numpy picked
    assert [g["model"] for g in result["memory_growth"]] == ["ng-gnn"]
    assert all(g["large_mb"] >= 0 for g in result["memory_growth"])
    # the flat baseline, in this process (its memory figure would need another spawn)
    from core.bench.models import bench_model

    args = argparse.Namespace(batch=4, memory_batch=2, hidden=8, layers=1, large=[8, 8], device="cpu", repeats=1)
    row = bench_model("mlp", "cnn", args)
    assert row["weights_per_graph"] == 4970 and row["train_graphs_per_s"] > 0 and row["inference_graphs_per_s"] > 0
    assert 0 < row["inference_gflop"] < row["train_gflop"]


def test_dense_path_in_bfloat16_tracks_the_float32_sparse_path() -> None:
    """Under bfloat16 autocast the dense path's statistics are taken in float32 (std = sqrt(E[m²] - E[m]²)
    would cancel in bfloat16), so its outputs stay close to the float32 reference."""
    from core.device import autocast

    batch = random_batch(ARCHS["siren"](), 6, seed=2, dtype=torch.float32)
    sparse = build_model("ng-gnn", out_dim=4, hidden=32, layers=3, dense_path=False).eval()
    sparse.fit_normalisation(batch)
    dense = build_model("ng-gnn", out_dim=4, hidden=32, layers=3).eval()
    dense.load_state_dict(sparse.state_dict())
    assert isinstance(dense.edge_layout(batch), DenseBlocks)
    with torch.no_grad():
        ref = sparse(batch)
        with autocast(torch.device("cpu"), "bf16"):
            low = dense(batch).float()
    torch.testing.assert_close(low, ref, rtol=0.05, atol=0.05 * float(ref.abs().max()))


@pytest.mark.parametrize("name, dense", [("ng-gnn", True), ("ng-gnn", False), ("ng-t", None)])
def test_edge_states_between_layers_are_kept_in_the_autocast_dtype(name: str, dense: bool | None) -> None:
    """Under bfloat16 autocast every layer receives and returns bfloat16 edge states (they only feed products
    and a residual sum; half the memory traffic), the readout gets them back in float32, and without
    autocast they stay float32."""
    from core.device import autocast

    batch = random_batch(ARCHS["siren"](), 3, seed=1, dtype=torch.float32)
    model = build_model(name, out_dim=4, hidden=16, layers=2, head="params", **({"dense_path": dense} if dense else {}))
    model.eval().fit_normalisation(batch)
    seen: list[tuple[torch.dtype, torch.dtype]] = []  # (edge states in, edge states out) per layer

    hooks = [layer.register_forward_hook(lambda mod, inp, out: seen.append((inp[1].dtype, out[1].dtype)))
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


def test_statistics_of_bfloat16_messages_are_taken_in_float32() -> None:
    """Messages with a large mean and a small spread: in bfloat16, E[m²] - E[m]² would be rounding noise.
    The dense and the scatter form agree."""
    from core.models.layers.pna_aggregation import dense_statistics, scatter_statistics

    gen = torch.Generator().manual_seed(0)
    m = (10 + 0.05 * torch.randn(4, 3, 32, 8, generator=gen)).to(torch.bfloat16)
    ref = dense_statistics(m.double(), 2)
    low = dense_statistics(m, 2)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.double(), ref, rtol=1e-3, atol=1e-3)
    receivers = torch.arange(12).repeat_interleave(32)  # the 32 messages of each (graph, target) row
    scattered = scatter_statistics(m.reshape(-1, 8), receivers, 12)
    assert scattered.dtype == torch.float32
    torch.testing.assert_close(scattered.double(), ref.reshape(12, 32), rtol=1e-3, atol=1e-3)


def test_cpu_allocator_tuning_is_applied_once_on_glibc() -> None:
    import platform

    from core.device import tune_cpu_allocator

    applied = tune_cpu_allocator()
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    assert tune_cpu_allocator() == applied


def test_cpu_model_names_the_bfloat16_units_and_the_generation() -> None:
    from core.device import cpu_model

    def info(flags: str) -> str:
        return f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 {flags}\n"

    assert cpu_model(info("avx512_bf16 amx_bf16 amx_tile")) == "Some CPU (AMX)"
    assert cpu_model(info("avx512f avx512_bf16")) == "Some CPU (AVX512-BF16, no AMX)"
    assert cpu_model(info("avx512f")) == "Some CPU (no bf16 units)"
    # one model name, two generations: family and model tell them apart
    zen3 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2\n"
    assert cpu_model(zen3) == "AMD EPYC (no bf16 units, family 25 model 1)"
