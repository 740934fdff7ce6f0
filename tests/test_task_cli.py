"""The task pipeline through the `python -m core` CLI on tiny zoos (run in-process, `tests/cli_runner.py`; the
resume test kills a real `python -m core` process): train, evaluate, predict, edit, embed,
symmetry-invariant predictions, clear errors, and resume after a kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.cli_runner import run_cli, run_cli_ok

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--hidden", "8", "--layers", "1", "--batch-size", "8", "--quiet"]



@pytest.fixture(scope="module")
def inr_zoo(tmp_path_factory) -> Path:
    from core.zoo import build_inr_zoo

    out = tmp_path_factory.mktemp("zoo") / "digits-tiny"
    build_inr_zoo(out, images="digits", count=40, hidden=(8, 8), steps=60, target_psnr=None, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def classify_run(inr_zoo: Path, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "classify"
    run_cli_ok("train", "inr-classify", "--model", "ng-gnn", "--zoo", str(inr_zoo), "--out", str(run), "--epochs", "2",
               "--stop-window", "2", *SMALL)
    return run


@pytest.fixture(scope="module")
def refit(inr_zoo: Path, tmp_path_factory) -> Path:
    """Two new INRs of each test image (`zoo refit`)."""
    out = tmp_path_factory.mktemp("zoo") / "test-refit"
    run_cli_ok("zoo", "refit", str(inr_zoo), "--split", "test", "--views", "2", "--seed", "4", "--out", str(out),
               "--workers", "1")
    return out


@pytest.fixture(scope="module")
def other_classify_run(inr_zoo: Path, tmp_path_factory) -> Path:
    """A second classifier of another model, probes and seed."""
    run = tmp_path_factory.mktemp("runs") / "classify-t"
    run_cli_ok("train", "inr-classify", "--model", "ng-t", "--probes", "4", "--zoo", str(inr_zoo), "--out", str(run),
               "--epochs", "2", "--seed", "1", *SMALL)
    return run


def test_evaluate_an_ensemble_averages_the_runs_probabilities(classify_run: Path, other_classify_run: Path,
                                                               inr_zoo: Path, tmp_path: Path) -> None:
    from sklearn.metrics import accuracy_score, confusion_matrix

    from core.runs import graph_set_from_zoo, load_run
    from core.zoo import Zoo

    other = other_classify_run
    out = json.loads(run_cli_ok("evaluate", str(classify_run), "--ensemble", str(other), "--split", "all", "--json",
                                "--device", "cpu").stdout)
    zoo, probs, targets = Zoo.open(inr_zoo), [], None
    for path in (classify_run, other):
        run = load_run(path)
        data = graph_set_from_zoo(zoo, None, run.task, run.config.grid_size)
        probs.append(run.trainer("cpu").predict(data))
        targets = data.targets()
        alone = json.loads(run_cli_ok("evaluate", str(path), "--split", "all", "--json", "--device", "cpu").stdout)
        assert out["members"][len(probs) - 1]["accuracy"] == alone["accuracy"]
    mean = (probs[0] + probs[1]).argmax(1).numpy()
    assert out["accuracy"] == pytest.approx(accuracy_score(targets.numpy(), mean))
    assert out["confusion"] == confusion_matrix(targets.numpy(), mean, labels=list(range(10))).tolist()
    assert out["runs"] == [str(classify_run), str(other)]
    mixed = run_cli("evaluate", str(classify_run), "--ensemble", str(ROOT / "assets" / "models" / "embed-ng-gnn"))
    assert mixed.returncode != 0 and "an ensemble needs runs of one task" in mixed.stderr
    # predict: the mean of the two runs' class probabilities for a file
    _export_member(inr_zoo, 3, tmp_path / "inr.pth")
    each = [json.loads(run_cli_ok("predict", str(path), str(tmp_path / "inr.pth"), "--json").stdout)[0]["probabilities"]
            for path in (classify_run, other)]
    both = json.loads(run_cli_ok("predict", str(classify_run), str(tmp_path / "inr.pth"), "--ensemble", str(other),
                                 "--json").stdout)[0]
    assert both["probabilities"] == pytest.approx(np.mean(each, axis=0), abs=2e-6) and both["ensemble_size"] == 2


def test_compare_pairs_runs_on_refits_by_source_image(classify_run: Path, other_classify_run: Path, inr_zoo: Path,
                                                       refit: Path, tmp_path: Path, capsys) -> None:
    """`compare`: each group's mean is its runs' mean accuracy (what `evaluate` prints), a group against itself
    differs by exactly 0, and the bootstrap resamples the refit zoo's source images (2 INRs each)."""
    from core.cli import main
    from core.zoo import Zoo

    def printed(*args: str) -> str:
        assert main([*args, "--zoo", str(refit), "--device", "cpu"]) == 0
        return capsys.readouterr().out

    alone = [json.loads(printed("evaluate", str(p), "--json"))["accuracy"] for p in (classify_run, other_classify_run)]
    out = json.loads(printed("compare", f"A={classify_run}", f"B={classify_run},{other_classify_run}",
                             f"C={classify_run}", "--json", "--resamples", "500"))
    assert out["score"] == "accuracy" and out["resampled"] == "source image"
    source = Zoo.open(inr_zoo).table
    assert out["networks"] == 2 * int((source["split"] == "test").sum())
    a, b, c = out["groups"]
    assert a["run_means"] == pytest.approx([alone[0]]) and b["run_means"] == pytest.approx(alone)
    assert b["mean"] == pytest.approx(np.mean(alone)) and c["mean"] == a["mean"]
    to_b, to_c = out["differences"]
    assert to_b["mean"] == pytest.approx(np.mean(alone) - alone[0]) and to_b["low"] <= to_b["mean"] <= to_b["high"]
    assert to_b["clusters"] == out["networks"] // 2  # two refits of each test image: one cluster
    assert (to_c["mean"], to_c["low"], to_c["high"]) == (0.0, 0.0, 0.0)
    text = printed("compare", str(classify_run), f"T={other_classify_run}", "--resamples", "200")
    assert "T − " in text and "bootstrap interval over source images" in text
    embed = str(ROOT / "assets" / "models" / "embed-ng-gnn")
    refused = {"has no per-network score": [embed], "its task is embed": [str(classify_run), embed],
               "a group is NAME=RUN": [f"A={classify_run}", "B="],
               "is given twice": [f"A={classify_run}", f"A={other_classify_run}"],
               "not a finished run directory": [str(tmp_path)],
               "--resamples must be at least 1": [str(classify_run), "--resamples", "0"]}
    for message, groups in refused.items():
        assert main(["compare", *groups, "--device", "cpu"]) == 2
        assert message in capsys.readouterr().err, message


def test_an_empty_split_is_refused_alone_and_in_an_ensemble(classify_run: Path, inr_zoo: Path) -> None:
    from core.errors import WeightSpaceError
    from core.runs import ensemble_metrics, load_run, run_split
    from core.zoo import Zoo

    run, zoo = load_run(classify_run), Zoo.open(inr_zoo)
    assert len(run_split(run, zoo, "val")) == len(zoo.split_indices("val")) > 0
    zoo.split_indices = lambda split: np.zeros(0, dtype=np.int64)  # a zoo whose splits hold no network
    for evaluate in (lambda: run_split(run, zoo, "val"), lambda: ensemble_metrics([run, run], zoo, "val", "cpu")):
        with pytest.raises(WeightSpaceError, match="split 'val' of .* is empty"):
            evaluate()


def _export_member(zoo_dir: Path, i: int, path: Path) -> None:
    from core.zoo import Zoo

    net = Zoo.open(zoo_dir).network(i)
    torch.save(net.state_dict(), path)  # DWSNets-style keys seq.N.*: recognised as a SIREN


def test_train_writes_a_complete_run(classify_run: Path) -> None:
    for name in ("config.json", "weights.safetensors", "metrics.json", "log.csv"):
        assert (classify_run / name).is_file(), name
    assert not (classify_run / "checkpoint.pt").exists()
    config = json.loads((classify_run / "config.json").read_text())
    assert config["task"] == "inr-classify" and config["model"] == "ng-gnn" and config["model_config"]["hidden"] == 8
    assert config["train"]["stop_window"] == 2  # the training loop's options are serialised with the run
    # where it ran: the same seed gives other bits on another CPU kind
    assert config["versions"]["cpu"] and int(config["versions"]["torch_threads"]) >= 1
    metrics = json.loads((classify_run / "metrics.json").read_text())
    assert set(metrics) >= {"train", "val", "test", "training"}


def test_evaluate_reproduces_metrics(classify_run: Path) -> None:
    metrics = json.loads((classify_run / "metrics.json").read_text())
    out = json.loads(run_cli_ok("evaluate", str(classify_run), "--json", "--device", "cpu").stdout)
    assert out["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_evaluate_on_held_out_refits_of_the_test_images(classify_run: Path, inr_zoo: Path, refit: Path) -> None:
    """`zoo refit` + `evaluate --zoo`: the run scores new INRs of its test images, which it has never seen."""
    from sklearn.metrics import accuracy_score

    from core.runs import graph_set_from_zoo, load_run
    from core.zoo import Zoo

    zoo, source = Zoo.open(refit), Zoo.open(inr_zoo)
    assert len(zoo) == 2 * len(source.table[source.table["split"] == "test"])
    out = json.loads(run_cli_ok("evaluate", str(classify_run), "--zoo", str(refit), "--split", "test", "--json",
                                "--device", "cpu").stdout)
    run = load_run(classify_run)
    data = graph_set_from_zoo(zoo, "test", run.task, run.config.grid_size)
    predicted = run.trainer("cpu").predict(data).argmax(1).numpy()
    assert out["accuracy"] == pytest.approx(accuracy_score(data.targets().numpy(), predicted))


@pytest.mark.parametrize("flag", ["--reference-centred", "--no-reference-centred"])
def test_nfn_graph_head_choice_is_recorded_and_reloads(inr_zoo: Path, tmp_path: Path, flag: str) -> None:
    """nfn-np's graph head: the reference-centred one (default) or the NFN paper's (--no-reference-centred); the run's
    config records it, and `evaluate` rebuilds the same model (its test accuracy again)."""
    run = tmp_path / "nfn"
    run_cli_ok("train", "inr-classify", "--model", "nfn-np", "--zoo", str(inr_zoo), "--out", str(run), "--epochs", "2",
               flag, *SMALL)
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"]["reference_centred"] is (flag == "--reference-centred")
    assert any(k.startswith("reference") for k in load_file(str(run / "weights.safetensors"))) is (
        flag == "--reference-centred")
    metrics = json.loads((run / "metrics.json").read_text())
    out = json.loads(run_cli_ok("evaluate", str(run), "--json", "--device", "cpu").stdout)
    assert out["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_predict_is_invariant_to_a_symmetry_of_the_file(classify_run: Path, inr_zoo: Path, tmp_path: Path) -> None:
    from core.io import load_network
    from core.symmetry import apply_to_network, random_element

    original = tmp_path / "inr.pth"
    _export_member(inr_zoo, 3, original)
    net = load_network(original)
    element = random_element(net, kinds=["permutation"], seed=5)
    moved = apply_to_network(net.to(torch.float64), element).to(torch.float32)
    transformed = tmp_path / "inr-permuted.pth"
    torch.save(moved.state_dict(), transformed)
    assert not torch.equal(moved.flat(), net.flat())
    rows = json.loads(run_cli_ok("predict", str(classify_run), str(original), str(transformed), "--json").stdout)
    p, q = np.array(rows[0]["probabilities"]), np.array(rows[1]["probabilities"])
    assert p.shape == (10,) and abs(p.sum() - 1) < 1e-4
    assert np.abs(p - q).max() < 1e-4


def test_predict_prints_the_likeliest_classes_with_their_probabilities(classify_run: Path, inr_zoo: Path,
                                                                         tmp_path: Path) -> None:
    """The readable output names the three likeliest classes with the probabilities that --json gives."""
    path = tmp_path / "inr.pth"
    _export_member(inr_zoo, 3, path)
    (row,) = json.loads(run_cli_ok("predict", str(classify_run), str(path), "--json").stdout)
    probabilities = np.array(row["probabilities"])
    top = np.argsort(-probabilities, kind="stable")[:3]
    line = run_cli_ok("predict", str(classify_run), str(path)).stdout.strip()
    expected = ", ".join(f"{c} ({probabilities[c]:.3f})" for c in top)
    assert line == f"{path}: predicted_class={top[0]}, likeliest {expected}"


def test_errors_exit_2(classify_run: Path, tmp_path: Path) -> None:
    missing = run_cli("evaluate", str(tmp_path / "no-run"))
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    wrong_task = run_cli("edit", str(classify_run), "x.pth", "--out", str(tmp_path / "o.pth"))
    assert wrong_task.returncode == 2
    cnn = tmp_path / "cnn.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 5), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten(), torch.nn.Linear(4, 10)).state_dict(), cnn)
    unreadable = run_cli("predict", str(classify_run), str(cnn), "--activation", "relu")
    assert unreadable.returncode == 2 and "grid size" in unreadable.stderr
    zoo = json.loads((classify_run / "config.json").read_text())["zoo"]
    bad_precision = run_cli("train", "inr-classify", "--model", "ng-gnn", "--zoo", zoo, "--out", str(tmp_path / "run"),
                             "--epochs", "1", "--precision", "fp16")
    assert bad_precision.returncode == 2 and "unknown precision 'fp16'" in bad_precision.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written
    bad_window = run_cli("train", "inr-classify", "--model", "ng-gnn", "--zoo", zoo, "--out", str(tmp_path / "run"),
                          "--epochs", "1", "--stop-window", "0")
    assert bad_window.returncode == 2 and "--stop-window must be at least 1" in bad_window.stderr
    assert not (tmp_path / "run").exists()


def test_edit_writes_checkpoint_and_png(inr_zoo: Path, tmp_path: Path) -> None:
    run = tmp_path / "edit"
    run_cli_ok("train", "inr-edit", "--edit", "erode", "--model", "ng-gnn", "--zoo", str(inr_zoo), "--out", str(run),
               "--epochs", "1", *SMALL)
    source = tmp_path / "inr.pth"
    _export_member(inr_zoo, 0, source)
    out = json.loads(run_cli_ok("edit", str(run), str(source), "--out", str(tmp_path / "edited.pth"),
                                "--png", str(tmp_path / "e.png"), "--json").stdout)
    edited = torch.load(tmp_path / "edited.pth", weights_only=True)
    assert set(edited) == set(torch.load(source, weights_only=True))
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    assert out["edit"] == "erode" and out["mse"] >= 0 and out["identity_mse"] > 0
    assert 0 <= out["intensity_only_mse"] <= out["identity_mse"] * (1 + 1e-6)  # a = 1, b = 0 is a candidate
    # the same edit, the same bytes: the file holds no trace of the temporary name it was written under
    run_cli_ok("edit", str(run), str(source), "--out", str(tmp_path / "again.pth"))
    assert (tmp_path / "again.pth").read_bytes() == (tmp_path / "edited.pth").read_bytes()


def test_embed_writes_embeddings_with_table(inr_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "embed"
    run_cli_ok("train", "embed", "--dim", "4", "--model", "ng-gnn", "--zoo", str(inr_zoo), "--out", str(run),
               "--epochs", "1", *SMALL)
    run_cli_ok("embed", str(run), str(inr_zoo), "--out", str(tmp_path / "emb.npz"))
    data = np.load(tmp_path / "emb.npz")
    assert data["embeddings"].shape == (40, 4)
    assert np.allclose(np.linalg.norm(data["embeddings"], axis=1), 1, atol=1e-4)
    assert len(data["table_label"]) == 40
    # the Zoo explorer's cache entry, as the bundled ones are written; then read back like the app does
    from core import explore
    from core.cli import main
    from core.embedding_cache import cached_embed_zoo
    from core.runs import load_run
    from core.training import Trainer
    from core.zoo import Zoo

    calls = []
    embed_zoo = explore.embed_zoo
    monkeypatch.setattr(explore, "embed_zoo", lambda *a, **k: calls.append(a) or embed_zoo(*a, **k))
    monkeypatch.setattr(Trainer, "predict", lambda *a, **k: pytest.fail("a second pass over the zoo"))
    assert main(["embed", str(run), str(inr_zoo), "--cache", str(tmp_path / "cache"),
                 "--out", str(tmp_path / "both.npz")]) == 0
    assert len(calls) == 1  # one pass over the zoo feeds both outputs
    got, source = cached_embed_zoo(Zoo.open(inr_zoo), load_run(run), cache_dirs=[tmp_path / "cache"])
    assert source == "cache" and got.vectors.shape == (40, 4)
    # the same vectors everywhere: the .npz, the cache entry and a fresh pass of the app's embedder
    both = np.load(tmp_path / "both.npz")["embeddings"]
    assert np.allclose(both, data["embeddings"], atol=1e-5) and np.allclose(got.vectors, both, atol=1e-5)
    assert np.allclose(embed_zoo(Zoo.open(inr_zoo), load_run(run)).vectors, both, atol=1e-5)
    no_output = run_cli("embed", str(run), str(inr_zoo))
    assert no_output.returncode != 0 and "--out FILE.npz, --cache DIR or both" in no_output.stderr


def test_a_classifier_with_a_rendering_head_embeds_as_its_logits(inr_zoo: Path, tmp_path: Path) -> None:
    """`--render-loss` appends the rendered pixels to the output: `embed` keeps the class logits only."""
    from core.data import GraphSet, Group
    from core.explore import embed_zoo
    from core.runs import load_run
    from core.zoo import Zoo

    run = tmp_path / "classify-rl"
    run_cli_ok("train", "inr-classify", "--model", "ng-gnn", "--zoo", str(inr_zoo), "--out", str(run), "--epochs", "1",
               "--render-loss", "1", *SMALL)
    loaded, zoo = load_run(run), Zoo.open(inr_zoo)
    got = embed_zoo(zoo, loaded)
    classes = loaded.task.num_classes
    assert got.vectors.shape == (40, classes)
    arch, flat = zoo.flat(range(5))
    batch = next(iter(GraphSet([Group(arch, flat.float(), torch.arange(5))], loaded.config.grid_size).batches(5)))
    loaded.model.eval()
    with torch.no_grad():
        output = loaded.model(batch.graph)
    assert output.shape[1] > classes  # the logits, then the rendered pixels
    assert torch.allclose(torch.as_tensor(got.vectors[:5]), output[:, :classes], atol=1e-5)


def test_generalization_on_a_cnn_zoo(tmp_path: Path) -> None:
    from core.zoo import build_cnn_zoo

    zoo = tmp_path / "cnn"
    build_cnn_zoo(zoo, images="digits", count=16, max_epochs=2, workers=1, progress=False)
    run = tmp_path / "gen"
    run_cli_ok("train", "generalization", "--model", "ng-gnn", "--zoo", str(zoo), "--out", str(run), "--epochs", "2",
               *SMALL)
    out = json.loads(run_cli_ok("evaluate", str(run), "--split", "all", "--json").stdout)
    assert -1.0 <= out["kendall_tau"] <= 1.0 and "r2" in out


def test_resume_after_kill_matches_uninterrupted(inr_zoo: Path, tmp_path: Path) -> None:
    args = ["inr-classify", "--model", "ng-gnn", "--zoo", str(inr_zoo), "--epochs", "40", "--patience", "0",
            "--seed", "7", *SMALL]
    full = tmp_path / "full"
    run_cli_ok("train", *args, "--out", str(full))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "core", "train", *args, "--out", str(killed)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoint.pt"
    deadline = time.time() + 300
    epoch = -1
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                epoch = torch.load(ckpt, weights_only=True)["epoch"]
            except Exception:  # being replaced right now
                epoch = -1
            if epoch >= 1:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= epoch < 39, "the run must be interrupted part-way"
    assert not (killed / "weights.safetensors").exists()
    run_cli_ok("train", *args, "--out", str(killed), "--resume")
    a, b = load_file(str(full / "weights.safetensors")), load_file(str(killed / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("run_name", sorted(p.name for p in (ROOT / "assets" / "models").iterdir() if p.is_dir()))
def test_bundled_runs_reproduce_their_test_metrics(run_name: str) -> None:
    """`python -m core evaluate assets/models/<run>` gives the test metrics stored with the run (README table)."""
    run = ROOT / "assets" / "models" / run_name
    stored = json.loads((run / "metrics.json").read_text())["test"]
    out = json.loads(run_cli_ok("evaluate", str(run), "--json", "--device", "cpu").stdout)
    compared = [k for k, v in stored.items() if isinstance(v, float) and k != "loss"]
    assert compared, f"{run_name} stores no test metric"
    for key in compared:
        assert out[key] == pytest.approx(stored[key], rel=1e-3, abs=1e-4), key
