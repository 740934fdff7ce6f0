"""Learning to optimise: equivariance of the graph optimiser, meta-training, torch.optim wrapper, save/load."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from core.l2o import (
    Adam,
    GraphOptimizer,
    L2OError,
    LearnedOptimizer,
    MetaConfig,
    PerParamOptimizer,
    ProblemSpec,
    load_data,
    load_optimizer,
    meta_train,
    sample_problem,
    save_optimizer,
)
from core.l2o.meta import mean_trajectory_loss
from core.l2o.optimizers import init_state, update_moments
from core.network import mlp_architecture
from core.symmetry import apply_to_flat, random_element


def _random_state(arch, b, gen):
    flat = torch.randn(b, arch.num_parameters, generator=gen, dtype=torch.float64)
    state = init_state(flat)
    for _ in range(3):
        state = update_moments(state, torch.randn(b, arch.num_parameters, generator=gen, dtype=torch.float64),
                               0.9, 0.999)
    grad = torch.randn(b, arch.num_parameters, generator=gen, dtype=torch.float64)
    return flat, grad, state


def _randomise_readout(opt) -> None:
    """Params heads start at zero (an untrained optimiser is Adam); give them weights so the test has teeth."""
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in opt.named_parameters():
            if name.startswith("net."):
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.1)


@pytest.mark.parametrize("inner", ["relu-mlp", "siren"])
@pytest.mark.parametrize("model", ["ng-gnn", "scalegmn", "per-param"])
def test_update_is_permutation_equivariant(model, inner):
    from core.network import siren_architecture

    torch.manual_seed(0)
    arch = mlp_architecture([5, 7, 6, 3], "relu") if inner == "relu-mlp" else siren_architecture((6, 5))
    opt = (PerParamOptimizer(lr=0.05) if model == "per-param"
           else GraphOptimizer(model, hidden=8, layers=2, lr=0.05)).double()
    if model != "per-param":
        _randomise_readout(opt)
    with torch.no_grad():  # make the learned part matter: the default gain 0.1 keeps it near Adam
        opt.gain.fill_(3.0)
    gen = torch.Generator().manual_seed(1)
    flat, grad, state = _random_state(arch, 2, gen)
    g = random_element(arch, kinds=["permutation"], seed=3, batch=2)
    act = lambda t: apply_to_flat(arch, t, g)  # noqa: E731
    assert not torch.equal(act(flat), flat)
    delta, _ = opt.update(arch, flat, grad, state)
    pstate = {"m": act(state["m"]), "v": act(state["v"]), "t": state["t"]}
    delta_p, _ = opt.update(arch, act(flat), act(grad), pstate)
    torch.testing.assert_close(delta_p, act(delta), rtol=1e-10, atol=1e-12)
    # the learned part is not a no-op: the update differs from Adam's
    adam_delta = Adam(float(opt.log_lr.detach().exp())).step(arch, flat, grad, state)[0] - flat
    assert (delta - adam_delta).abs().max() > 1e-3


def test_graph_update_depends_on_neighbours():
    """The graph optimiser is not coordinate-wise: changing one weight's gradient changes other updates."""
    torch.manual_seed(0)
    arch = mlp_architecture([4, 5, 3], "relu")
    opt = GraphOptimizer("ng-gnn", hidden=8, layers=2).double()
    _randomise_readout(opt)
    with torch.no_grad():
        opt.gain.fill_(3.0)
    flat, grad, state = _random_state(arch, 1, torch.Generator().manual_seed(0))
    d0, _ = opt.update(arch, flat, grad, state)
    grad2 = grad.clone()
    grad2[0, 0] += 5.0
    d1, _ = opt.update(arch, flat, grad2, state)
    assert (d1 - d0)[0, 1:].abs().max() > 1e-6


def test_meta_training_reduces_meta_loss():
    torch.manual_seed(0)
    spec = ProblemSpec("digits", (16,))
    opt = GraphOptimizer("ng-gnn", hidden=8, layers=1, lr=2e-3)  # start from a too-small step size
    before = mean_trajectory_loss(opt, [spec], steps=10, networks=2, seeds=[7])
    hist = meta_train(opt, MetaConfig(meta_steps=12, unroll=5, horizon=10, networks=2, meta_lr=0.05, specs=(spec,)))
    after = mean_trajectory_loss(opt, [spec], steps=10, networks=2, seeds=[7])
    assert len(hist) == 12
    assert after < before - 0.05, (before, after)


def _digits_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def test_learned_optimizer_trains_a_user_module(tmp_path):
    data = load_data("digits")
    x, y = data.x_train[:256], data.y_train[:256]
    net = _digits_net()
    learned = GraphOptimizer("ng-gnn", hidden=8, layers=1, lr=0.02)
    save_optimizer(learned, tmp_path / "opt")
    opt = LearnedOptimizer(net, load_optimizer(tmp_path / "opt"))
    loss0 = nn.functional.cross_entropy(net(x), y).item()
    before = [p.detach().clone() for p in net.parameters()]
    for i in range(15):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if i == 0:
            assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert nn.functional.cross_entropy(net(x), y).item() < 0.7 * loss0


def test_save_load_round_trip(tmp_path):
    arch = mlp_architecture([5, 7, 3], "tanh")
    for opt in (GraphOptimizer("scalegmn", hidden=8, layers=1), PerParamOptimizer(hidden=8)):
        with torch.no_grad():
            for p in opt.parameters():
                p.add_(0.01 * torch.randn_like(p))
        save_optimizer(opt, tmp_path / opt.name)
        back = load_optimizer(tmp_path / opt.name)
        flat, grad, state = _random_state(arch, 2, torch.Generator().manual_seed(0))
        flat, grad = flat.float(), grad.float()
        state = {k: (v.float() if torch.is_tensor(v) else v) for k, v in state.items()}
        torch.testing.assert_close(back.update(arch, flat, grad, state)[0], opt.update(arch, flat, grad, state)[0])


def test_bad_input():
    with pytest.raises(L2OError):
        load_data("cifar")
    with pytest.raises(L2OError):
        load_optimizer("/nonexistent/dir")
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    with pytest.raises(L2OError):
        LearnedOptimizer(conv, GraphOptimizer("ng-gnn", hidden=8, layers=1), input_shape=(1, 8, 8))
    with pytest.raises(L2OError):
        MetaConfig(unroll=20, horizon=10)


def test_cli_train_and_eval(tmp_path, capsys):
    from core.cli import l2o_cmd

    parser = argparse.ArgumentParser()
    l2o_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["l2o", "train", "--out", str(tmp_path / "run"), "--optimizer", "per-param",
                              "--meta-steps", "2", "--unroll", "2", "--horizon", "4", "--networks", "2",
                              "--problems", "digits:8", "--quiet"])
    assert args.func(args) == 0
    args = parser.parse_args(["l2o", "eval", str(tmp_path / "run"), "--steps", "5", "10", "--eval-networks", "2",
                              "--eval-problems", "digits:8", "--out", str(tmp_path / "eval"), "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "per-param" in out and "adam" in out
    assert (tmp_path / "eval" / "loss_curves.png").stat().st_size > 1000


def test_inr_fitting_problems():
    from core.l2o.meta import rollout
    from core.l2o.problems import INR_TRAIN_SPECS, parse_specs

    spec = parse_specs(["mnist5k:8-8:inr"])[0]
    assert spec.task == "inr" and spec.label() == "mnist5k INR 2-8-8-1 sine"
    train, held = sample_problem(spec, 3, seed=4), sample_problem(spec, 3, seed=4, held_out=True)
    assert train.targets.shape == (3, 28 * 28) and train.init.shape == (3, train.architecture.num_parameters)
    assert not torch.equal(train.targets, held.targets)  # held-out problems fit other images
    from core.l2o.problems import load_images_for_inr

    images = load_images_for_inr("mnist5k").reshape(-1, 28 * 28)
    cut = int(0.75 * len(images))
    # meta-training images come from the first 75 % of the data set, held-out ones from the last 25 %
    assert all(any(torch.equal(t, im) for im in images[:cut]) for t in train.targets)
    assert all(any(torch.equal(t, im) for im in images[cut:]) for t in held.targets)
    assert set(train.train_pixels.tolist()).isdisjoint(train.test_pixels.tolist())
    assert train.train_pixels.numel() + train.test_pixels.numel() == 28 * 28
    r = rollout(Adam(1e-3), held, 60, eval_every=30, eval_at=(60,))
    assert r["train_loss"][-1].mean() < 0.5 * r["train_loss"][0].mean()  # Adam fits the images
    assert torch.isnan(r["at"][60]["test_acc"]).all() and (r["at"][60]["test_loss"] > 0).all()
    assert INR_TRAIN_SPECS[0].task == "inr"
