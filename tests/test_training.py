"""The Trainer on every task with small synthetic zoos: metrics move the right way, and an interrupted run
resumes to exactly the weights of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.data import GraphSet, Group
from core.models import build_model
from core.network import mlp_architecture, siren_architecture
from core.tasks import ClassifyTask, EmbedTask, GeneralizationTask
from core.training import TrainConfig, Trainer


def _classify_set(n: int = 48, seed: int = 0) -> GraphSet:
    """Two classes of small ReLU MLPs that differ in the mean of their hidden biases."""
    arch = mlp_architecture([2, 8, 1], "relu")
    gen = torch.Generator().manual_seed(seed)
    flat = torch.randn(n, arch.num_parameters, generator=gen) * 0.3
    y = torch.arange(n) % 2
    bias = slice(16, 24)  # layers.0.bias
    flat[:, bias] += (y[:, None] * 2 - 1) * 0.8
    return GraphSet([Group(arch, flat, torch.arange(n), y)])


def test_classification_learns() -> None:
    task = ClassifyTask()
    task.num_classes = 2
    data = _classify_set()
    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=16, layers=2)
    trainer = Trainer(task, model, TrainConfig(epochs=15, batch_size=16, lr=5e-3, patience=0), progress=False)
    before = trainer.evaluate(data)["accuracy"]
    trainer.fit(data)
    after = trainer.evaluate(data)
    assert after["accuracy"] >= 0.9 > before or after["accuracy"] == 1.0
    assert len(after["confusion"]) == 2


def test_untrained_model_is_kept_when_training_only_hurts_validation() -> None:
    task = ClassifyTask()
    task.num_classes = 2
    train = _classify_set()
    group = train.groups[0]
    # the same networks with the other label: whatever training learns makes validation worse
    val = GraphSet([Group(group.architecture, group.flat, group.index, 1 - group.targets)])
    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=16, layers=2)
    trainer = Trainer(task, model, TrainConfig(epochs=10, batch_size=16, lr=5e-3, patience=0), progress=False)
    before = trainer.evaluate(val)["accuracy"]
    result = trainer.fit(train, val)
    assert min(h["val_accuracy"] for h in result["history"]) < before  # training did hurt validation
    assert result["best_epoch"] == 0
    assert trainer.evaluate(val)["accuracy"] == before


@pytest.mark.parametrize(("best_epoch", "noted"), [(0, True), (3, False)])
def test_train_command_says_when_it_kept_the_untrained_model(monkeypatch, capsys, best_epoch, noted) -> None:
    import core.runs
    from core.cli import build_parser

    metrics = {"test": {"accuracy": 0.5}, "training": {"best_epoch": best_epoch, "epochs_run": 6}}
    monkeypatch.setattr(core.runs, "train_run", lambda *a, **k: metrics)
    args = build_parser().parse_args(["train", "inr-classify", "--model", "ng-gnn", "--zoo", "z", "--out", "o"])
    assert args.func(args) == 0
    assert ("the saved model is the untrained one" in capsys.readouterr().err) is noted


def test_generalization_regression_ranks() -> None:
    arch = mlp_architecture([3, 6, 2], "tanh")
    gen = torch.Generator().manual_seed(1)
    n = 64
    flat = torch.randn(n, arch.num_parameters, generator=gen)
    target = torch.sigmoid(flat[:, :18].abs().mean(1) * 3 - 2.5)  # a function of the first layer's weights
    data = GraphSet([Group(arch, flat, torch.arange(n), target)])
    task = GeneralizationTask()
    model = build_model("ng-gnn", out_dim=1, edge_dim=1, hidden=16, layers=2)
    trainer = Trainer(task, model, TrainConfig(epochs=30, batch_size=16, lr=5e-3, patience=0), progress=False)
    trainer.fit(data)
    metrics = trainer.evaluate(data)
    assert metrics["kendall_tau"] > 0.4


def test_edit_beats_identity() -> None:
    from core.tasks.edit import EditTask

    arch = siren_architecture(hidden=(8, 8))
    gen = torch.Generator().manual_seed(2)
    n = 16
    flat = torch.randn(n, arch.num_parameters, generator=gen) * 0.05
    task = EditTask("dilate", resolution=8)
    extras = task.extras(arch, flat, None, None)
    data = GraphSet([Group(arch, flat, torch.arange(n), None, extras)])
    model = build_model("ng-gnn", out_dim=1, head="params", edge_dim=1, hidden=16, layers=2)
    trainer = Trainer(task, model, TrainConfig(epochs=30, batch_size=8, lr=3e-3, patience=0), progress=False)
    trainer.fit(data)
    metrics = trainer.evaluate(data)
    assert metrics["mse"] < metrics["identity_mse"]


def test_embed_contrastive_loss_decreases() -> None:
    data = _classify_set(32)
    for g in data.groups:
        g.extras["positive_group"] = g.index.clone()
    task = EmbedTask(dim=8)
    model = build_model("ng-gnn", out_dim=8, edge_dim=1, hidden=16, layers=2)
    trainer = Trainer(task, model, TrainConfig(epochs=8, batch_size=16, lr=5e-3, patience=0), progress=False)
    before = trainer.evaluate(data)["loss"]
    trainer.fit(data)
    after = trainer.evaluate(data)
    assert after["loss"] < before
    assert 0.0 <= after["knn_accuracy"] <= 1.0


def test_embed_views_change_the_function_where_symmetry_copies_cannot() -> None:
    """A metanetwork invariant to all of a network's symmetries (ScaleGMN, ReLU MLP: permutations and positive
    scales) embeds the symmetry-transformed second copy exactly like the first, so without `views` the contrastive
    task is trivial; INR views (on a coordinate network) make the two copies differ, and evaluation still embeds
    the untransformed networks."""
    arch = mlp_architecture([2, 8, 8, 1], "relu")
    n = 12
    flat = torch.randn(n, arch.num_parameters, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 0.2
    data = GraphSet([Group(arch, flat, torch.arange(n), torch.arange(n) % 3, {"positive_group": torch.arange(n)})])
    torch.manual_seed(0)
    invariant = build_model("scalegmn", out_dim=4, edge_dim=1, hidden=16, layers=2).double().eval()
    outputs: list[torch.Tensor] = []

    def model(graph):  # records every embedding the task computes
        outputs.append(invariant(graph))
        return outputs[-1]

    model.training = False
    batch = next(data.batches(n))
    with torch.no_grad():
        EmbedTask(dim=4).step(model, batch)
        first, second = outputs
        torch.testing.assert_close(first, second, atol=1e-9, rtol=0)
        outputs.clear()
        views = EmbedTask(dim=4, views="translate=0.3,rotate=30,noise=0.1")
        _, prediction = views.step(model, batch)
        view1, view2, original = outputs
    assert views.options()["views"] == "translate=0.3,rotate=30,noise=0.1"
    assert (view1 - view2).abs().max() > 1e-3 and (view1 - original).abs().max() > 1e-3
    torch.testing.assert_close(first, original)
    torch.testing.assert_close(prediction.double(), torch.nn.functional.normalize(original, dim=-1), atol=1e-6, rtol=0)


def test_embed_metrics_on_accuracy_targets() -> None:
    """Without labels (CNN zoos) the embedding is judged by how its neighbours' test accuracies agree."""
    acc = torch.linspace(0.1, 0.9, 20, dtype=torch.float64)
    task = EmbedTask(dim=2)
    ordered = torch.nn.functional.normalize(torch.stack([torch.cos(acc), torch.sin(acc)], 1).float(), dim=-1)
    shuffled = ordered[torch.randperm(20, generator=torch.Generator().manual_seed(0))]
    good, bad = task.metrics(ordered, acc)["knn_kendall_tau"], task.metrics(shuffled, acc)["knn_kendall_tau"]
    assert good > 0.8 and bad < 0.5
    assert "knn_accuracy" in task.metrics(ordered, torch.arange(20) % 2)


class _Interrupt(Exception):
    """Raised mid-epoch to simulate a killed training run."""


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_after_interrupt_gives_identical_weights(tmp_path: Path, ema: float) -> None:
    data = _classify_set(32)
    task = ClassifyTask()
    task.num_classes = 2
    cfg = TrainConfig(epochs=4, batch_size=8, lr=3e-3, patience=0, seed=3, ema=ema)

    def fresh() -> torch.nn.Module:
        torch.manual_seed(cfg.seed)
        return build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=8, layers=2, dropout=0.1)

    full = Trainer(task, fresh(), cfg, tmp_path / "full", progress=False)
    full.fit(data)

    calls = {"n": 0}
    original_step = task.step

    def dying_step(model, batch):
        calls["n"] += 1
        if calls["n"] == 4 * 2 + 2:  # in the middle of the third epoch (4 batches per epoch)
            raise _Interrupt
        return original_step(model, batch)

    task.step = dying_step
    with pytest.raises(_Interrupt):
        Trainer(task, fresh(), cfg, tmp_path / "resumed", progress=False).fit(data)
    del task.step
    ckpt = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1  # epochs 0 and 1 finished before the interruption

    resumed = Trainer(task, fresh(), cfg, tmp_path / "resumed", progress=False)
    resumed.fit(data, resume=True)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("compiled", [False, True])
def test_ema_keeps_the_moving_average_of_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    compiled: bool) -> None:
    """--ema d: the kept weights are e ← d·e + (1 − d)·w over the weights after each optimiser step (e starts at the
    first step's); training itself goes on from the live weights, which the checkpoint holds. The same with
    --compile, whose layers the average (an uncompiled copy) maps back to by name order."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    task = ClassifyTask()
    task.num_classes = 2
    torch.manual_seed(0)
    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=8, layers=2)
    compiles: list[str] = []
    if compiled:  # Dynamo's tracing without inductor's C++ build: the same module wrapping, seconds not minutes
        def eager_compile() -> torch.nn.Module:
            compiles.append("eager")
            return type(model).compile_layers(model, backend="eager")

        monkeypatch.setattr(model, "compile_layers", eager_compile)
    decay = 0.7
    steps: list[list[torch.Tensor]] = []
    handle = register_optimizer_step_post_hook(
        lambda *_: steps.append([p.detach().clone() for p in model.parameters()]))
    try:
        Trainer(task, model, TrainConfig(epochs=1, batch_size=8, lr=1e-2, patience=0, ema=decay, compile=compiled),
                tmp_path, progress=False).fit(_classify_set(32))
    finally:
        handle.remove()
    assert len(steps) == 4 and compiles == (["eager"] if compiled else [])
    expected = steps[0]
    for live in steps[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, live)]
    kept = list(model.parameters())
    for e, k in zip(expected, kept):
        torch.testing.assert_close(k, e, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(k, w) for k, w in zip(kept, steps[-1]))  # the average, not the last step
    live_state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    for k, w in zip((live_state[n] for n, _ in model.named_parameters()), steps[-1]):
        assert torch.equal(k, w)


def test_a_checkpoint_without_ema_does_not_resume_a_run_that_keeps_one(tmp_path: Path) -> None:
    from core.errors import WeightSpaceError

    task = ClassifyTask()
    task.num_classes = 2
    data = _classify_set(16)
    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=8, layers=1)
    Trainer(task, model, TrainConfig(epochs=1, batch_size=8, patience=0), tmp_path, progress=False).fit(data)
    averaging = Trainer(task, model, TrainConfig(epochs=2, batch_size=8, patience=0, ema=0.9), tmp_path,
                        progress=False)
    with pytest.raises(WeightSpaceError, match="written without --ema"):
        averaging.fit(data, resume=True)


def test_ema_outside_zero_to_one_is_a_clear_error() -> None:
    from core.errors import WeightSpaceError

    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=8, layers=1)
    with pytest.raises(WeightSpaceError, match="ema must be in"):
        Trainer(ClassifyTask(), model, TrainConfig(device="cpu", ema=1.0), progress=False)


def test_bfloat16_training_learns_and_is_recorded() -> None:
    """--precision bf16: bfloat16 autocast in training and evaluation (on CPU too), float32 weights."""
    task = ClassifyTask()
    task.num_classes = 2
    data = _classify_set()
    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=16, layers=2)
    cfg = TrainConfig(epochs=15, batch_size=16, lr=5e-3, patience=0, device="cpu", precision="bf16")
    trainer = Trainer(task, model, cfg, progress=False)
    trainer.fit(data)
    assert trainer.evaluate(data)["accuracy"] >= 0.9
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert TrainConfig.from_dict(cfg.to_dict()).precision == "bf16"


def test_unknown_precision_is_a_clear_error() -> None:
    from core.errors import WeightSpaceError

    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=8, layers=1)
    with pytest.raises(WeightSpaceError, match="unknown precision 'fp8'"):
        Trainer(ClassifyTask(), model, TrainConfig(device="cpu", precision="fp8"), progress=False)


def test_old_runs_without_amp_train_in_float32() -> None:
    """amp=False (the earlier switch) still means float32 everywhere under the default `auto` precision."""
    model = build_model("ng-gnn", out_dim=2, edge_dim=1, hidden=8, layers=1)
    assert Trainer(ClassifyTask(), model, TrainConfig(device="cpu", amp=False), progress=False).precision == "fp32"
