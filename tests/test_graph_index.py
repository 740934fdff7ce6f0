"""One node → graph id helper (`graph_index`, `graph_count`) for batched and single neural graphs, on the
nodes' device: probe features once built a CPU tensor here, which failed on a GPU."""

from __future__ import annotations

import torch

from core.device import pick_device
from core.graph import to_graph, to_graphs
from core.models.base import graph_count, graph_index
from core.models.layers.probe_features import ProbeFeatures
from core.network import Network, siren_architecture


def test_graph_index_of_a_batch_and_of_a_single_graph() -> None:
    dev = pick_device()
    arch = siren_architecture()
    batch = to_graphs(arch, torch.randn(3, arch.num_parameters)).to(dev)
    assert torch.equal(graph_index(batch), batch.batch) and graph_count(batch) == 3
    single = to_graph(Network.from_flat(arch, torch.randn(arch.num_parameters))).to(dev)
    ids = graph_index(single)
    assert ids.device == single.x.device and ids.dtype == torch.long
    assert torch.equal(ids, torch.zeros(single.num_nodes, dtype=torch.long, device=dev)) and graph_count(single) == 1


def test_probe_features_of_a_single_graph_match_the_batched_ones_on_the_model_device() -> None:
    dev = pick_device()
    arch = siren_architecture()
    flat = torch.randn(2, arch.num_parameters) * 0.1
    probe = ProbeFeatures(4, 8).to(dev)
    batched = probe(to_graphs(arch, flat).to(dev))  # [2·N, 8]
    single = probe(to_graph(Network.from_flat(arch, flat[1])).to(dev))  # no `batch` / `ptr` attributes
    assert single.device == batched.device and single.abs().sum() > 0  # the SIREN was probed
    torch.testing.assert_close(single, batched[single.shape[0]:])
