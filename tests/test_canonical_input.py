"""`train --canonical`: the model reads each network's canonical form, so any model — the flat MLP included — is
exactly invariant to every symmetry the canonical form removes, in training, evaluation, predict and embed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.explore import embed_networks
from core.network import siren_architecture
from core.network.spec import Network
from core.runs import load_run, train_run
from core.symmetry import apply_to_flat, apply_to_network, random_element
from core.symmetry.canonical import canonicalize, canonicalize_flat
from core.tasks import TaskError
from core.training import TrainConfig
from core.zoo import Zoo

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SMALL = {"hidden": 8, "layers": 1}


@pytest.fixture(scope="module")
def inr_zoo(tmp_path_factory) -> Path:
    from core.zoo import build_inr_zoo

    out = tmp_path_factory.mktemp("zoo") / "digits-tiny"
    build_inr_zoo(out, images="digits", count=40, hidden=(8, 8), steps=60, target_psnr=None, workers=1, progress=False)
    return out


def _members(zoo_dir: Path, count: int) -> list[Network]:
    zoo = Zoo.open(zoo_dir)
    return [zoo.network(i) for i in range(count)]


def _moved(nets: list[Network], kinds: list[str], seed: int) -> list[Network]:
    """Each network under its own random group element of `kinds` (float64 action, float32 storage)."""
    return [apply_to_network(n.to(torch.float64), random_element(n, kinds=kinds, seed=seed + i)).to(torch.float32)
            for i, n in enumerate(nets)]


def test_the_batched_canonical_form_is_the_per_network_one() -> None:
    arch = siren_architecture((6, 5))
    flat = torch.randn(12, arch.num_parameters, dtype=torch.float64) * 0.3
    batched = canonicalize_flat(arch, flat)
    one_by_one = torch.stack([canonicalize(Network.from_flat(arch, f, {})).flat() for f in flat])
    assert torch.equal(batched, one_by_one)
    moved = apply_to_flat(arch, flat, random_element(arch, seed=3, batch=12))  # every admitted kind, phases too
    assert not torch.allclose(moved, flat)
    assert (canonicalize_flat(arch, moved) - batched).abs().max() < 1e-9


@pytest.mark.parametrize("model", ["mlp", "ng-gnn"])
def test_a_canonical_classifier_is_invariant_to_every_symmetry_of_its_input(inr_zoo: Path, tmp_path: Path,
                                                                            model: str) -> None:
    """Permutations, sign flips and sine phase shifts: the flat MLP is invariant to none by itself, ng-gnn only to
    permutations; with --canonical both give the same prediction for every member of the orbit."""
    runs = {}
    for canonical in (False, True):
        out = tmp_path / f"{model}-{canonical}"
        train_run("inr-classify", model, inr_zoo, out, train=TrainConfig(epochs=1, batch_size=8),
                  model_overrides=SMALL, canonical=canonical, progress=False)
        runs[canonical] = load_run(out)
    assert json.loads((tmp_path / f"{model}-True" / "config.json").read_text())["canonical"] == "incoming"
    assert runs[True].task.canonical and not runs[False].task.canonical
    nets = _members(inr_zoo, 6)
    moved = _moved(nets, ["permutation", "sign", "phase"], seed=11)
    assert all(not torch.allclose(a.flat(), b.flat()) for a, b in zip(nets, moved))
    before, after = runs[True].predict(nets), runs[True].predict(moved)
    assert (before - after).abs().max() < 1e-5
    plain_before, plain_after = runs[False].predict(nets), runs[False].predict(moved)
    assert (plain_before - plain_after).abs().max() > 1e-4  # without it the same transforms move the output


@pytest.mark.parametrize("rule", ["outgoing", "incoming-first"])
def test_other_rules_are_recorded_invariant_and_not_mixed_up_on_resume(rule: str, inr_zoo: Path,
                                                                        tmp_path: Path) -> None:
    """`canonical=rule`: config.json records the rule, predictions are invariant to every symmetry it removes,
    they differ from the incoming rule's input, and a resume with another rule is refused."""
    out = tmp_path / "out"
    cfg = TrainConfig(epochs=1, batch_size=8)
    train_run("inr-classify", "ng-gnn", inr_zoo, out, train=cfg, model_overrides=SMALL, canonical=rule,
              progress=False)
    assert json.loads((out / "config.json").read_text())["canonical"] == rule
    run = load_run(out)
    assert run.task.canonical == rule
    nets = _members(inr_zoo, 6)
    moved = _moved(nets, ["permutation", "sign", "phase"], seed=5)
    assert (run.predict(nets) - run.predict(moved)).abs().max() < 1e-5
    flat = torch.stack([n.flat() for n in nets]).double()
    arch = nets[0].architecture
    assert not torch.allclose(canonicalize_flat(arch, flat, rule), canonicalize_flat(arch, flat, "incoming"))
    with pytest.raises(TaskError, match="different configuration.*canonical"):
        train_run("inr-classify", "ng-gnn", inr_zoo, out, train=cfg, model_overrides=SMALL, canonical=True,
                  resume=True, progress=False)


def test_runs_from_before_the_rules_had_names_read_as_incoming(tmp_path: Path) -> None:
    """The bundled canonical classifier's config.json says `"canonical": true`: it reads incoming canonical forms."""
    run = load_run(ASSETS / "models" / "inr-classify-mnist5k-ng-gnn-canonical")
    assert run.config.canonical is True and run.task.canonical == "incoming"


def test_a_canonical_embedder_is_invariant_to_positive_scales_of_relu_networks(tmp_path: Path) -> None:
    """ReLU networks: permutations and positive rescalings of hidden neurons; the Zoo explorer's embedding path."""
    zoo_dir = ASSETS / "zoos" / "cnn-digits"
    train_run("embed", "ng-gnn", zoo_dir, tmp_path / "run", train=TrainConfig(epochs=1, batch_size=32),
              model_overrides=SMALL, canonical=True, progress=False)
    run = load_run(tmp_path / "run")
    nets = _members(zoo_dir, 4)
    moved = _moved(nets, ["permutation", "scale"], seed=2)
    assert all(not torch.allclose(a.flat(), b.flat()) for a, b in zip(nets, moved))
    a, b = embed_networks(nets, run), embed_networks(moved, run)
    assert a.shape == (4, run.task.dim) and np.abs(a - b).max() < 1e-4


def test_an_editor_refuses_canonical_inputs(inr_zoo: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="--canonical applies to tasks"):
        train_run("inr-edit", "ng-gnn", inr_zoo, tmp_path / "edit", train=TrainConfig(epochs=1),
                  model_overrides=SMALL, canonical=True, progress=False)
    assert not (tmp_path / "edit").exists()


def test_the_cli_flag_is_stored_and_the_contrastive_views_are_canonical(inr_zoo: Path, tmp_path: Path,
                                                                        monkeypatch) -> None:
    """`train --canonical` reaches the run's config; embed's contrastive views, built inside the task, are canonical
    forms too (every parameter vector turned into graphs during training is its own canonical form)."""
    from core.cli import main
    from core.graph import neural_graph

    seen = []
    original = neural_graph.to_graphs

    def spy(arch, flat, grid_size=None):
        seen.append((arch, flat.detach().clone()))
        return original(arch, flat, grid_size)

    monkeypatch.setattr(neural_graph, "to_graphs", spy)  # what EmbedTask.step imports to build its two views
    out = tmp_path / "embed"
    assert main(["train", "embed", "--model", "ng-gnn", "--zoo", str(inr_zoo), "--out", str(out), "--canonical",
                 "--views", "ng", "--epochs", "1", "--hidden", "8", "--layers", "1", "--batch-size", "8",
                 "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["canonical"] == "incoming"  # the flag's default rule
    assert len(seen) >= 2 * 4  # `--views ng`: both views built in the task, per training batch (40 networks, batch 8)
    for arch, flat in seen:
        assert (canonicalize_flat(arch, flat) - flat).abs().max() < 1e-6


def test_canonical_inputs_turn_symmetry_transforms_off(inr_zoo: Path, tmp_path: Path, capsys) -> None:
    """The canonical form undoes every permutation and sign flip, so `--augment` asking for them gets a note and
    the run trains without them (the flat MLP, whose default has them on, too)."""
    from core.cli import main

    common = ["--zoo", str(inr_zoo), "--epochs", "1", "--hidden", "8", "--layers", "1", "--batch-size", "8", "--quiet"]
    assert main(["train", "inr-classify", "--model", "ng-gnn", "--out", str(tmp_path / "a"), "--canonical",
                 "--augment", "ng,symmetry", *common]) == 0
    assert "symmetry transforms of --augment are off" in capsys.readouterr().err
    for name, extra in (("a", []), ("b", ["--model", "mlp", "--canonical"]), ("c", ["--model", "mlp"])):
        if extra:
            assert main(["train", "inr-classify", *extra, "--out", str(tmp_path / name), *common]) == 0
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["augment"] is (name == "c")  # the mlp keeps its default without --canonical
    assert "symmetry transforms" not in capsys.readouterr().err  # the default alone asks for no note
