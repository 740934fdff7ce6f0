"""core.viz.graph_figure: per-layer edge budgets keep every layer visible; intensity per layer or global."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.graph.layout import EDGE_FLATTEN, EDGE_RESIDUAL, layout_for
from core.graph.neural_graph import to_graph
from core.io import load_network_bytes
from core.viz.graph_figure import (
    edge_groups,
    edge_intensity,
    edge_strengths,
    graph_figure,
    layer_budgets,
    neuron_weight_statistics,
    select_edges,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def _example(name: str):
    return load_network_bytes((EXAMPLES / name).read_bytes(), name, "relu")


def test_every_layer_of_the_784_128_64_10_mlp_keeps_edges_at_the_default_budget() -> None:
    net = _example("mlp-784-128-64-10.pt")
    groups = edge_groups(net)
    assert np.bincount(groups).tolist() == [784 * 128, 128 * 64, 64 * 10]
    shown = select_edges(edge_strengths(to_graph(net)), groups, 3000)
    per_layer = np.bincount(groups[shown], minlength=3)
    assert len(shown) == 3000 and (per_layer > 0).all()
    assert per_layer.tolist() == [1180, 1180, 640]  # the 640-edge output layer is drawn whole, the rest shared


def test_within_a_layer_the_strongest_edges_are_drawn() -> None:
    net = _example("mlp-784-128-64-10.pt")
    w, groups = edge_strengths(to_graph(net)), edge_groups(net)
    shown = select_edges(w, groups, 3000)
    first = np.flatnonzero(groups == 0)
    drawn = np.intersect1d(shown, first)
    weakest_drawn = np.abs(w[drawn]).min()
    assert (np.abs(w[np.setdiff1d(first, drawn)]) <= weakest_drawn).all()


def test_flatten_and_residual_edges_keep_their_share() -> None:
    for name, edge_type in (("lenet5-mnist.pt", EDGE_FLATTEN), ("cnn-digits-residual.safetensors", EDGE_RESIDUAL)):
        net = _example(name)
        layout = layout_for(net.architecture)
        kind = layout.edge_type.numpy() == edge_type
        assert kind.any(), f"{name} has no edge of type {edge_type}"
        shown = select_edges(edge_strengths(to_graph(net)), edge_groups(net), 200)
        assert kind[shown].any(), name
        assert set(np.unique(edge_groups(net)[shown])) == set(np.unique(edge_groups(net)))


@pytest.mark.parametrize("sizes,budget,expected", [
    ([10, 10, 10], 30, [10, 10, 10]),
    ([100, 5, 100], 45, [20, 5, 20]),
    ([1000, 1000], 7, [3, 4]),
    ([3, 0, 500], 1, [1, 0, 1]),  # a budget below the number of layers still shows each layer
])
def test_layer_budgets_share_equally_and_pass_on_leftovers(sizes, budget, expected) -> None:
    assert layer_budgets(np.array(sizes), budget).tolist() == expected


def test_intensity_is_relative_to_each_layer_unless_global() -> None:
    strength = np.concatenate([np.linspace(0.01, 1, 100), np.linspace(1, 100, 100)])
    groups = np.repeat([0, 1], 100)
    per_layer = edge_intensity(strength, groups, "layer")
    overall = edge_intensity(strength, groups, "global")
    assert per_layer[:100].max() == pytest.approx(1.0) and per_layer[100:].max() == pytest.approx(1.0)
    assert overall[:100].max() < 0.02
    with pytest.raises(ValueError):
        edge_intensity(strength, groups, "per-edge")


def test_signs_alternate_from_weak_to_strong_traces() -> None:
    fig, hidden = graph_figure(_example("mlp-784-128-64-10.pt"))
    assert hidden == 784 * 128 + 128 * 64 + 64 * 10 - 3000
    edges = [t.name for t in fig.data if t.name and "weights" in t.name]
    levels = [n.split("(")[1].rstrip(")") for n in edges]
    assert levels == sorted(levels, key=("weak", "medium", "strong", "strongest").index)  # weak drawn first
    signs = [n.split()[0] for n in edges]
    assert signs[:2] != signs[2:4]  # the sign drawn last differs between levels
    assert json.loads(fig.to_json())  # serialisable for the browser


def test_acted_neurons_are_hidden_and_carry_every_change_of_a_permutation() -> None:
    import torch

    from core.symmetry.lab import acted_neurons, transformed_network

    net = _example("siren-mnist-3.pth")
    after = transformed_network(net, "permutation", seed=0)
    moved = acted_neurons(net, "permutation", seed=0)
    layout = layout_for(net.architecture)
    assert len(moved) > 0 and (layout.node_role.numpy()[moved] == 1).all()  # inputs and outputs never move
    # the biases of the neurons not listed are unchanged, and the listed ones hold other neurons' biases
    before_x, after_x = to_graph(net).x[:, 0], to_graph(after).x[:, 0]
    still = np.setdiff1d(np.arange(layout.num_nodes), moved)
    assert torch.equal(before_x[still], after_x[still]) and not torch.equal(before_x[moved], after_x[moved])


def test_neuron_hover_counts_incoming_and_outgoing_weights() -> None:
    w = np.array([1.0, -3.0, 2.0])
    stats = neuron_weight_statistics(w, np.array([0, 1, 2]), np.array([2, 2, 3]), 4)
    assert stats[2].tolist() == [2, -1.0, 2.0, 1, 2.0, 2.0]  # node 2: in from 0 and 1, out to 3
    assert stats[0].tolist() == [0, 0, 0, 1, 1.0, 1.0]


def test_histogram_axis_titles_only_on_the_bottom_row() -> None:
    from core.viz import weight_histograms

    fig = weight_histograms(_example("mlp-784-128-64-10.pt"))
    titled = [name for name in fig.layout if name.startswith("xaxis") and fig.layout[name].title.text]
    assert sorted(titled) == ["xaxis5", "xaxis6"]  # 3 layers × (weights, biases): only the last row's x axes


def test_zooming_into_layers_draws_only_their_neurons_and_edges() -> None:
    net = _example("mlp-784-128-64-10.pt")
    fig, hidden = graph_figure(net, max_edges=10_000, layers=(1, 3))
    neurons = next(t for t in fig.data if (t.name or "").startswith("neurons"))
    assert len(neurons.x) == 128 + 64 + 10 and set(neurons.x) == {1.0, 2.0, 3.0}
    assert hidden == 0 and "8,832 of 8,832 edges drawn" in fig.layout.title.text  # 128·64 + 64·10
