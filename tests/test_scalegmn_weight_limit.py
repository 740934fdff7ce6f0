"""ScaleGMN's range in float32 (issue #22). Its node states grow like w^(layers+1) with the input network's weights
w, so the squares inside its LayerNorms and norms overflowed from w ≈ 3e7 although screening admitted weights up to
4.3e9. Those are now computed from power-of-two rescaled rows (the same function, up to float32 rounding), which
makes a model of ≤ 2 layers finite up to the screening limit; deeper ones declare a lower `weight_limit`, and zoos
are screened with the limit of the model that reads them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.graph import to_graphs
from core.models import build_model, config_for, model_class
from core.models.layers.equivariant import RangeSafeLayerNorm
from core.models.layers.invariant import POSITIVE, REAL, SIGN, canonicalise, reciprocal
from core.models.layers.probe_features import safe_magnitude
from core.network.spec import Activation, Architecture, Conv, GlobalAvgPool, Linear
from core.tasks.base import TaskError
from core.tasks.generalization import unusable_networks, without_unusable_networks
from core.zoo import Zoo
from tests.test_generalization_diverged import write_relu_zoo
from tests.test_scalegmn_stability import _cnn, _finite_step

SCREENING = safe_magnitude(torch.float32)  # ≈ 4.3e9: what a float32 metanetwork reads in general


FLOAT32_MAX = float(torch.finfo(torch.float32).max)
ACTIVATIONS = ("silu", "relu", "tanh", "gelu", "sine")


def _limit(name: str, layers: int, gate_norm: bool = True) -> float:
    config = config_for(name, layers=layers)
    if not gate_norm:  # a config saved before `gate_norm` existed
        config = type(config).from_dict({k: v for k, v in config.to_dict().items() if k != "gate_norm"})
        assert config.gate_norm is False
    return model_class(name).weight_limit(config)


def test_the_limit_follows_the_depth_and_equals_the_screening_limit_up_to_two_layers() -> None:
    assert _limit("scalegmn", 1) == _limit("scalegmn", 2) == _limit("scalegmn-b", 2) == SCREENING
    assert 5e7 < _limit("scalegmn", 3) < 5.2e7 and 2.6e6 < _limit("scalegmn-b", 4) < 2.7e6
    assert _limit("scalegmn", 8) == pytest.approx(FLOAT32_MAX ** (1 / 10))  # 7.1e3
    assert 80 < _limit("scalegmn-b", 8) < 90 and 1.6e3 < _limit("scalegmn-b", 6) < 1.7e3  # backward messages
    assert 7e3 < _limit("scalegmn", 1, gate_norm=False) < 7.2e3 and 9 < _limit("scalegmn-b", 2, gate_norm=False) < 10
    assert 1 < _limit("scalegmn", 4, gate_norm=False) < 1.2
    assert _limit("ng-gnn", 4) == _limit("ng-t", 8) == SCREENING


def test_range_safe_layer_norm_is_layer_norm_bit_for_bit_in_range_and_finite_beyond() -> None:
    torch.manual_seed(0)
    norm = RangeSafeLayerNorm(16)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    plain = torch.nn.LayerNorm(16)
    plain.load_state_dict(norm.state_dict())  # the same parameters: saved runs load unchanged
    x = torch.randn(8, 16) * torch.logspace(-3, 9, 8)[:, None]  # rows up to 1e9 · N(0, 1): below 2^32 ≈ 4.3e9
    x = x.clamp(-4e9, 4e9)
    assert torch.equal(norm(x), plain(x))
    huge = torch.randn(4, 16) * torch.tensor([1e20, 1e25, 1e30, 1e36])[:, None]
    assert not torch.isfinite(plain(huge)).all()  # the squares overflow float32
    reference = torch.nn.functional.layer_norm(huge.double(), (16,), norm.weight.double(), norm.bias.double())
    huge.requires_grad_(True)
    out = norm(huge)
    torch.testing.assert_close(out.double(), reference, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    assert torch.isfinite(huge.grad).all()


@pytest.mark.parametrize("kind", [POSITIVE, SIGN, REAL])
def test_canonicalise_and_reciprocal_of_huge_rows_match_float64(kind: int) -> None:
    v = torch.randn(3, 8, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 1e25, 1e35])[:, None]
    kinds = torch.full((3,), kind)
    for f in (canonicalise, reciprocal):
        got = f(v, kinds)
        assert torch.isfinite(got).all(), f.__name__
        want = f(v.double(), kinds)
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=0.0)


def _deep_cnn(act: str) -> Architecture:
    """Five convolutions and a linear layer on 8×8 images: deeper than the model's layers, so states keep growing."""
    ops: list = [Conv("c1", 1, 4, (3, 3)), Activation(act)]
    for k in range(2, 6):
        ops += [Conv(f"c{k}", 4, 4, (3, 3), padding=(1, 1)), Activation(act)]
    return Architecture(tuple(ops + [GlobalAvgPool(), Linear("fc", 4, 3)]), (1, 8, 8))


def _finite_below(name: str, layers: int, limit: float, gate_norm: bool = True) -> list[str]:
    """The activations / architectures (a deep and a two-conv CNN) whose networks with weights of standard deviation
    0.99 × `limit` give a non-finite forward or backward pass. The model's parameters are scaled by 1.5 (trained ones:
    ≤ 1.3 × their initial norm in the #22 runs)."""
    return [f"{act}/{kind}" for act in ACTIVATIONS for kind, arch in (("deep", _deep_cnn(act)), ("small", _cnn(act)))
            if not _finite_step(name, act, 0.99 * limit, gate_norm, arch=arch, layers=layers, gain=1.5)]


@pytest.mark.parametrize("name", ["scalegmn", "scalegmn-b"])
@pytest.mark.parametrize("layers", [1, 2, 3, 4, 5, 6, 8])
def test_forward_and_backward_are_finite_just_below_the_models_limit(name: str, layers: int) -> None:
    """For ≤ 2 layers that is the screening limit 4.3e9 (the model before the rescaled norms: non-finite from 3e7)."""
    assert _finite_below(name, layers, _limit(name, layers)) == []


def test_deep_scalegmn_b_overflows_below_the_unidirectional_limit() -> None:
    """Why ScaleGMN-B's limit falls faster beyond 4 layers: with max^(1/(layers+2)), ScaleGMN's, it is not finite."""
    assert len(_finite_below("scalegmn-b", 8, FLOAT32_MAX ** (1 / 10))) >= 5


@pytest.mark.parametrize("name", ["scalegmn", "scalegmn-b"])
@pytest.mark.parametrize("layers", [1, 2, 3, 4, 5, 6])
def test_configs_without_gate_norm_are_finite_just_below_their_own_limit(name: str, layers: int) -> None:
    """Saved runs from before `gate_norm` keep their model; their limit is far below the screening limit."""
    assert _finite_below(name, layers, _limit(name, layers, gate_norm=False), gate_norm=False) == []
    if layers <= 2:  # the general limit they had before: every case overflows
        assert len(_finite_below(name, layers, SCREENING, gate_norm=False)) == 2 * len(ACTIVATIONS)


@pytest.fixture(scope="module")
def large_weight_zoo(tmp_path_factory) -> Path:
    """24 relu CNNs on 8×8 inputs; network 5's largest |weight| is just above a 4-layer ScaleGMN's limit."""
    def enlarge(flat: torch.Tensor) -> None:
        flat[5] *= 1.01 * _limit("scalegmn", 4) / flat[5].abs().max()

    return write_relu_zoo(tmp_path_factory.mktemp("large") / "zoo", 24, enlarge)


def test_screening_drops_a_network_for_scalegmn_that_ng_gnn_keeps(large_weight_zoo: Path, tmp_path: Path,
                                                                   capsys) -> None:
    from core.bench.tasks import weight_limit

    zoo = Zoo.open(large_weight_zoo)
    assert unusable_networks(zoo) == []  # below the general float32 limit
    limit, reader = weight_limit(["ng-gnn", "scalegmn"], {"hidden": 8, "layers": 4})
    assert (limit, reader) == (_limit("scalegmn", 4), "scalegmn")
    assert weight_limit(["ng-gnn", "scalegmn"], {"hidden": 8, "layers": 2}) == (SCREENING, "any metanetwork")
    kept, dropped = without_unusable_networks(large_weight_zoo, tmp_path / "usable", 0, "--cnn-zoo", limit, reader)
    assert [d["index"] for d in dropped] == [5] and dropped[0]["reason"].startswith("weights up to 2.6")
    warning = capsys.readouterr().out
    assert "dropping 1 of 24 networks" in warning and "relu#5" in warning
    assert "beyond what scalegmn reads in float32" in warning
    assert len(kept) == 23 and 5 not in set(kept.table["source_index"])
    same, none = without_unusable_networks(large_weight_zoo, tmp_path / "ng", 0, "--cnn-zoo",
                                           *weight_limit(["ng-gnn"], {"hidden": 8, "layers": 4}))
    assert none == [] and len(same) == 24


def test_training_refuses_the_network_for_a_deep_scalegmn_and_reads_it_with_two_layers(large_weight_zoo: Path,
                                                                                       tmp_path: Path) -> None:
    from core.runs import train_run
    from core.training.trainer import TrainConfig

    with pytest.raises(TaskError, match=r"1 network\(s\).*scalegmn cannot read.*relu#5"):
        train_run("generalization", "scalegmn", large_weight_zoo, tmp_path / "deep", progress=False,
                  model_overrides={"hidden": 8, "layers": 4}, train=TrainConfig(epochs=1))
    assert not (tmp_path / "deep").exists()
    metrics = train_run("generalization", "scalegmn", large_weight_zoo, tmp_path / "shallow", progress=False,
                        model_overrides={"hidden": 8, "layers": 2}, train=TrainConfig(epochs=1))
    assert np.isfinite(metrics["test"]["kendall_tau"]) and np.isfinite(metrics["train"]["loss"])


def test_bench_screens_with_the_strictest_model_and_records_it(large_weight_zoo: Path, tmp_path: Path) -> None:
    from core.bench import tasks as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--tasks", "generalization", "--models", "scalegmn", "--cnn-zoo", str(large_weight_zoo),
                              "--epochs", "1", "--hidden", "8", "--layers", "4", "--no-references",
                              "--out", str(tmp_path / "bench")])
    assert bench.run(args) == 0
    report = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert "error" not in report["results"][0], report["results"][0]
    assert [d["index"] for d in report["dropped_networks"]["cnn_zoo"]] == [5]


def test_zoo_explorer_leaves_a_network_beyond_the_runs_own_limit_grey(large_weight_zoo: Path, tmp_path: Path) -> None:
    """`predicted_accuracy` screens with the run's model's `weight_limit`, not float32's general one: network 5 (just
    above a 4-layer ScaleGMN's limit, far below 4.3e9) gets no prediction from a 4-layer ScaleGMN run, one from a
    2-layer run, and the other networks get the same prediction as in a zoo without it."""
    from core.explore import predicted_accuracy
    from core.runs import load_run, train_run
    from core.training.trainer import TrainConfig

    clean = write_relu_zoo(tmp_path / "clean", 24, lambda flat: None)  # the same networks, network 5 not enlarged
    runs = {}
    for layers in (4, 2):
        train_run("generalization", "scalegmn", clean, tmp_path / f"run{layers}", progress=False,
                  model_overrides={"hidden": 8, "layers": layers}, train=TrainConfig(epochs=1, batch_size=8))
        runs[layers] = load_run(tmp_path / f"run{layers}")
    rows = np.arange(24)
    deep = predicted_accuracy(Zoo.open(large_weight_zoo), rows, runs[4])
    assert np.array_equal(np.flatnonzero(np.isnan(deep)), [5])
    others = rows != 5
    np.testing.assert_allclose(deep[others], predicted_accuracy(Zoo.open(clean), rows, runs[4])[others], atol=1e-6)
    shallow = predicted_accuracy(Zoo.open(large_weight_zoo), rows, runs[2])
    assert np.isfinite(shallow).all()


@pytest.mark.parametrize("name", ["scalegmn", "scalegmn-b"])
def test_the_sync_free_divisor_gives_the_same_bits(name: str, monkeypatch) -> None:
    """On an accelerator `power_of_two_scale` skips its eager range check (a host sync per call) and always makes
    the divisor; forced here on CPU, the outputs keep every bit, in range and beyond it, and the gradients agree to
    float32 rounding (autograd may sum a tensor's gradient contributions in another order)."""
    import core.models.layers.equivariant as equivariant
    import core.models.layers.invariant as invariant

    def step(scale: float) -> list[torch.Tensor]:
        arch = _cnn("relu")
        flat = torch.randn(4, arch.num_parameters, generator=torch.Generator().manual_seed(0)) * scale
        batch = to_graphs(arch, flat, None)
        torch.manual_seed(0)
        model = build_model(name, out_dim=1, edge_dim=batch.edge_attr.shape[1], hidden=32, layers=2)
        model.fit_normalisation(batch)
        out = model(batch)
        torch.sigmoid(out).square().mean().backward()
        return [out.detach()] + [p.grad for p in model.parameters() if p.grad is not None]

    eager_path = {scale: step(scale) for scale in (1.0, 1e7)}
    original, calls = invariant.power_of_two_scale, []

    def sync_free(v, above=invariant.RESCALE_ABOVE, eager=None):
        calls.append(v.shape)
        return original(v, above, eager=False)

    monkeypatch.setattr(invariant, "power_of_two_scale", sync_free)
    monkeypatch.setattr(equivariant, "power_of_two_scale", sync_free)
    for scale, expected in eager_path.items():
        got = step(scale)
        assert len(got) == len(expected) and torch.equal(got[0], expected[0]), scale
        for a, b in zip(got[1:], expected[1:]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * b.abs().max().item())
    assert calls  # the models went through the sync-free path
