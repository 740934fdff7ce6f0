"""Exactness: module → Network → NeuralGraph → Network → module reproduces every parameter bit for bit, and
the executor matches the original module (float64, ≤ 1e-6)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import core
from core.graph import from_graph, from_graphs, to_graph, to_graphs
from core.io import load_network, network_from_module, network_to_bytes, save_network
from core.network import forward_many, run, to_module
from tests.zoo_of_modules import cases

CASES = cases()
IDS = [c[0] for c in CASES]


def _traced(module: nn.Module, shape: tuple[int, ...]):
    module = module.double().eval()
    return module, network_from_module(module, shape)


@pytest.mark.parametrize("name,module,shape", CASES, ids=IDS)
def test_executor_matches_module(name: str, module: nn.Module, shape: tuple[int, ...]) -> None:
    module, net = _traced(module, shape)
    x = torch.randn(5, *shape, dtype=torch.float64)
    expected = module(x)
    assert (run(net, x) - expected).abs().max().item() <= 1e-6
    rebuilt = to_module(net)
    assert (rebuilt(x) - expected).abs().max().item() <= 1e-6


@pytest.mark.parametrize("name,module,shape", CASES, ids=IDS)
def test_graph_round_trip_is_bit_exact(name: str, module: nn.Module, shape: tuple[int, ...]) -> None:
    module = module.float().eval()
    net = network_from_module(module, shape)
    graph = to_graph(net)
    back = from_graph(graph)
    original = module.state_dict()
    rebuilt = to_module(back).state_dict()
    for key, value in net.params.items():
        assert torch.equal(back.params[key], value), key
        assert torch.equal(rebuilt[key], original[key]), key
    # every weight is an edge (no dense N×N), every neuron a node
    assert graph.edge_index.shape == (2, graph.edge_attr.shape[0])
    assert graph.x.shape[0] == graph.node_role.shape[0]


@pytest.mark.parametrize("name,module,shape", CASES, ids=IDS)
def test_export_round_trip(name: str, module: nn.Module, shape: tuple[int, ...], tmp_path) -> None:
    module, net = _traced(module, shape)
    path = tmp_path / "net.safetensors"
    save_network(net, path)
    loaded = load_network(path)
    assert loaded.architecture == net.architecture
    for key, value in net.params.items():
        assert torch.equal(loaded.params[key], value)
    x = torch.randn(3, *shape, dtype=torch.float64)
    assert torch.equal(run(loaded, x), run(net, x))


def test_export_is_byte_reproducible(tmp_path) -> None:
    """safetensors 0.8 writes metadata keys in a random order on every save; the export sorts them, so one network
    gives one file (as bytes and on disk), which still loads back exactly."""
    net = network_from_module(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval(), (3,))
    net.meta.update({"source": "test", "labels": ["a", "b"], "note": "é \n\t\u0001 \"q\""})
    files = []
    for i in range(6):
        save_network(net, tmp_path / f"{i}.safetensors")
        files.append((tmp_path / f"{i}.safetensors").read_bytes())
    files += [network_to_bytes(net) for _ in range(6)]
    assert all(f == files[0] for f in files)
    size = int.from_bytes(files[0][:8], "little")
    header = json.loads(files[0][8:8 + size])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    loaded = load_network(tmp_path / "0.safetensors")
    assert loaded.meta["note"] == net.meta["note"] and loaded.meta["labels"] == ["a", "b"]
    for key, value in net.params.items():
        assert torch.equal(loaded.params[key], value)


def test_metadata_sort_keeps_a_header_it_cannot_fit() -> None:
    """A header whose sorted form would be longer (here `1e1` re-serialises as `10.0`) is kept as the library wrote
    it, so no data offset can move; otherwise the sorted header is padded to the original length."""
    from core.io.export import _sort_metadata_keys

    longer = b'{"__metadata__":{"b":"1","a":"2"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,1e1]}}'
    assert _sort_metadata_keys(longer) == longer
    fits = b'{"__metadata__":{"b":"1","a":"2"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   '
    out = _sort_metadata_keys(fits)
    assert len(out) == len(fits) and out.startswith(b'{"__metadata__":{"a":"2","b":"1"},')
    assert json.loads(out) == json.loads(fits)


def test_mlp_graph_counts() -> None:
    net = network_from_module(
        nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)))
    g = to_graph(net)
    assert g.num_nodes == 784 + 128 + 64 + 10
    assert g.num_edges == 784 * 128 + 128 * 64 + 64 * 10


def test_batched_conversion_equals_single() -> None:
    arch = core.siren_architecture()
    flat = torch.randn(7, arch.num_parameters)
    batch = to_graphs(arch, flat)
    for i in (0, 3, 6):
        single = to_graph(core.Network.from_flat(arch, flat[i]))
        example = batch.get_example(i)
        assert torch.equal(example.x, single.x)
        assert torch.equal(example.edge_attr, single.edge_attr)
        assert torch.equal(example.edge_index, single.edge_index)
    arch2, flat2 = from_graphs(batch)
    assert arch2 == arch and torch.equal(flat2, flat)


def test_mixed_architectures_batch_with_pyg() -> None:
    from torch_geometric.data import Batch

    a = to_graph(core.Network.from_flat(core.siren_architecture(),
                                        torch.randn(core.siren_architecture().num_parameters)))
    cnn = nn.Sequential(nn.Conv2d(1, 3, 5), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    net_b = network_from_module(cnn, (1, 8, 8))
    b = to_graph(net_b, grid_size=5)
    a5 = to_graph(from_graph(a), grid_size=5)
    batch = Batch.from_data_list([a5, b])
    assert batch.num_graphs == 2
    assert batch.x.shape[0] == a5.num_nodes + b.num_nodes
    assert torch.equal(from_graph(batch.get_example(1)).flat(), net_b.flat())


def test_forward_many_matches_run() -> None:
    arch = core.siren_architecture()
    flat = torch.randn(4, arch.num_parameters, dtype=torch.float64) * 0.1
    x = torch.rand(10, 2, dtype=torch.float64) * 2 - 1
    many = forward_many(arch, flat, x)
    for i in range(4):
        assert torch.allclose(many[i], run(core.Network.from_flat(arch, flat[i]), x), atol=1e-12)


@pytest.mark.parametrize("fmt", ["bare", "state_dict", "model_state_dict", "model", "module-prefix"])
def test_state_dict_files_nested_and_bare(fmt: str, tmp_path) -> None:
    module = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    sd = module.state_dict()
    obj = {
        "bare": sd,
        "state_dict": {"state_dict": sd, "epoch": 4},
        "model_state_dict": {"model_state_dict": sd, "optimizer_state_dict": {"state": {}}, "loss": 0.1},
        "model": {"model": sd, "config": {"lr": 0.1}},
        "module-prefix": {f"module.{k}": v for k, v in sd.items()},
    }[fmt]
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    net = load_network(path, "tanh")
    assert [op.kind for op in net.architecture.ops] == ["linear", "activation", "linear"]
    assert torch.equal(net.flat(), network_from_module(module).flat())
    x = torch.randn(4, 3)
    assert torch.allclose(run(net, x), module(x), atol=1e-6)


def test_state_dict_naming_conventions() -> None:
    from core.io import network_from_state_dict
    from tests.zoo_of_modules import LeNet5, Siren

    siren = network_from_state_dict(Siren().state_dict())
    assert [op.describe() for op in siren.architecture.activations()] == ["sine(w0=30)", "sine(w0=30)"]
    assert siren.architecture.ops[-1].kind == "offset"
    lenet = network_from_state_dict(LeNet5().state_dict(), "relu")
    kinds = [op.kind for op in lenet.architecture.ops]
    assert kinds.count("flatten") == 1 and kinds.count("conv") == 2 and kinds.count("linear") == 3
    assert torch.equal(to_graph(lenet).edge_attr.abs().sum(), to_graph(lenet).edge_attr.abs().sum())
    unknown = network_from_state_dict(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).state_dict())
    assert [a.fn for a in unknown.architecture.activations()] == ["unknown"]


def test_lenet_state_dict_graph_matches_traced_graph() -> None:
    from core.io import network_from_state_dict
    from tests.zoo_of_modules import LeNet5

    module = LeNet5()
    inferred = to_graph(network_from_state_dict(module.state_dict(), "relu"))
    traced = to_graph(network_from_module(module, (1, 28, 28)))
    assert torch.equal(inferred.edge_attr, traced.edge_attr)
    assert torch.equal(inferred.edge_index, traced.edge_index)
    assert torch.equal(inferred.x, traced.x)


def test_unsupported_module_names_the_op() -> None:
    from core.errors import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError, match="Softplus"):
        network_from_module(nn.Sequential(nn.Linear(2, 3), nn.Softplus(), nn.Linear(3, 1)))
    with pytest.raises(UnsupportedLayerError, match="grouped"):
        network_from_module(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten()), (4, 5, 5))


def test_edges_carry_their_own_weights_after_a_skip() -> None:
    """Each weight edge holds W[target, source] of its own layer, also for layers after a residual."""
    from tests.zoo_of_modules import MlpWithNorms

    net = network_from_module(MlpWithNorms())
    graph = to_graph(net)
    layout = graph.layout
    for block in layout.blocks:
        w = net.params[f"{block.name}.weight"]
        s, t = layout.layers[block.source_layer], layout.layers[block.target_layer]
        edges = slice(block.edge_start, block.edge_start + s.size * t.size)
        src, dst = graph.edge_index[:, edges]
        assert torch.equal(graph.edge_attr[edges, 0], w[dst - t.start, src - s.start])
        assert (graph.edge_type[edges] != 3).all()


def test_loaded_tensors_are_aligned_and_own_their_memory(tmp_path) -> None:
    # safetensors packs tensors at 8-byte offsets; MKL sums misaligned operands in another order, so a loaded
    # network computed different last bits than the same weights in memory (seen on an AMD EPYC machine)
    from core.io.read import ALIGNMENT, read_tensor_file

    net = network_from_module(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1)).double(), (3,))
    save_network(net, tmp_path / "net.safetensors")
    torch.save({"w": torch.arange(12.0)[2:8]}, tmp_path / "view.pt")  # a view: the whole storage is saved
    for name in ("net.safetensors", "view.pt"):
        for key, t in read_tensor_file(tmp_path / name).tensors.items():
            assert t.is_contiguous() and t.data_ptr() % ALIGNMENT == 0, (name, key)
            assert t.untyped_storage().nbytes() == t.nbytes, (name, key)
    loaded = load_network(tmp_path / "net.safetensors")
    for _ in range(20):
        x = torch.randn(4, 3, dtype=torch.float64)
        assert torch.equal(run(loaded, x), run(net, x))
