"""Importers for the public zoo formats, on small synthetic examples of each."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import torch

from core.network import run
from core.zoo import ZooError, import_zoo


def _siren_state(hidden=(4, 4), seed=0, prefix=lambda i: f"seq.{i}"):
    g = torch.Generator().manual_seed(seed)
    widths = [2, *hidden, 1]
    sd = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        sd[f"{prefix(i)}.weight"] = torch.randn(b, a, generator=g)
        sd[f"{prefix(i)}.bias"] = torch.randn(b, generator=g)
    return sd


def test_import_dwsnets(tmp_path):
    src = tmp_path / "mnist-inrs"
    for part, label, idx in [("training", 3, 0), ("training", 5, 1), ("training", 3, 2), ("testing", 7, 0)]:
        d = src / f"mnist_png_{part}_{label}_{idx}" / "checkpoints"
        d.mkdir(parents=True)
        torch.save(_siren_state(seed=idx + label), d / "model_final.pth")
    zoo = import_zoo("dwsnets", src, tmp_path / "out")
    assert len(zoo) == 4 and sorted(zoo.table["label"]) == [3, 3, 5, 7]
    test_rows = zoo.table[zoo.table["source_split"] == "testing"]
    assert (test_rows["split"] == "test").all()
    i = int(test_rows["index"].iloc[0])
    net = zoo.network(i)
    sd = _siren_state(seed=7)
    x = torch.rand(5, 2)
    hidden = torch.sin(30 * (x @ sd["seq.0.weight"].T + sd["seq.0.bias"]))
    ref = torch.sin(30 * (hidden @ sd["seq.1.weight"].T + sd["seq.1.bias"]))
    ref = ref @ sd["seq.2.weight"].T + sd["seq.2.bias"] + 0.5
    assert torch.allclose(run(net, x), ref, atol=1e-5)


def test_import_nfn(tmp_path):
    src = tmp_path / "nfn"
    for label in (0, 1):
        d = src / f"randinit_smaller_{label}s"
        d.mkdir(parents=True)
        for idx in (0, 1, 10):
            torch.save(_siren_state(seed=idx, prefix=lambda i: f"net.{i}.linear"), d / f"net{idx}.pth")
    zoo = import_zoo("nfn", src, tmp_path / "out")
    assert len(zoo) == 6 and sorted(set(zoo.table["label"])) == [0, 1]
    assert list(zoo.network(0).params)[0] == "seq.0.weight"
    assert zoo.network(0).architecture.ops[-1].kind != "offset"  # original SIREN: no +0.5


def test_import_small_cnn_zoo(tmp_path):
    src = tmp_path / "scz"
    src.mkdir()
    shapes = [("sequential/conv2d/kernel:0", (3, 3, 1, 16)), ("sequential/conv2d/bias:0", (16,)),
              ("sequential/conv2d_1/kernel:0", (3, 3, 16, 16)), ("sequential/conv2d_1/bias:0", (16,)),
              ("sequential/conv2d_2/kernel:0", (3, 3, 16, 16)), ("sequential/conv2d_2/bias:0", (16,)),
              ("sequential/dense/kernel:0", (16, 10)), ("sequential/dense/bias:0", (10,))]
    rows, start = [], 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        rows.append({"varname": name, "start_idx": start, "end_idx": start + n, "shape": str(shape)})
        start += n
    assert start == 4970
    pd.DataFrame(rows).to_csv(src / "layout.csv", index=False)
    np.save(src / "weights.npy", np.random.default_rng(0).normal(size=(6, start)).astype(np.float32))
    metrics = pd.DataFrame({"step": [86, 0, 86, 86, 86, 86], "test_accuracy": np.linspace(0.1, 0.6, 6),
                            "config.activation": ["relu", "relu", "tanh", "tanh", "relu", "tanh"]})
    with gzip.open(src / "metrics.csv.gz", "wt") as fh:
        metrics.to_csv(fh, index=False)
    zoo = import_zoo("small-cnn-zoo", src, tmp_path / "out")
    assert len(zoo) == 5 and set(zoo.architectures) == {"relu", "tanh"}
    final_accuracy = metrics["test_accuracy"][metrics["step"] == 86].tolist()
    assert zoo.table["test_accuracy"].tolist() == pytest.approx(final_accuracy)
    assert sum(len(g.x) > 0 for g in zoo.graphs()) == 5


def test_import_cnn_wild_park(tmp_path):
    src = tmp_path / "wild"
    src.mkdir()
    for i, (ch, k) in enumerate([(4, 3), (8, 5), (4, 3)]):
        model = torch.nn.Sequential(torch.nn.Conv2d(1, ch, k, padding=k // 2), torch.nn.ReLU(),
                                    torch.nn.Conv2d(ch, ch, 3, padding=1), torch.nn.ReLU(),
                                    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(ch, 10))
        config = {"activation": "relu", "test_acc": 0.5 + i / 10, "lr": 0.01}
        torch.save({"model": model.state_dict(), "config": config}, src / f"model_{i}.pt")
    zoo = import_zoo("cnn-wild-park", src, tmp_path / "out")
    assert len(zoo) == 3 and len(zoo.architectures) == 2
    assert zoo.table["test_accuracy"].tolist() == pytest.approx([0.5, 0.6, 0.7])
    assert "config.lr" in zoo.table


def test_import_errors(tmp_path):
    with pytest.raises(ZooError):
        import_zoo("unknown", tmp_path, tmp_path / "o")
    with pytest.raises(ZooError):
        import_zoo("dwsnets", tmp_path, tmp_path / "o")
