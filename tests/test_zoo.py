"""Zoo generation, format, resume and CLI tests (small and fast)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import WeightSpaceError
from core.graph import from_graph
from core.zoo import (
    Zoo,
    ZooError,
    ZooGraphDataset,
    build_cnn_zoo,
    build_inr_zoo,
    coordinate_grid,
    fit_inrs,
    inr_architecture,
    load_images,
    render_inr,
    siren_init,
)
from core.zoo.inr import _Batch, _Layout

ROOT = Path(__file__).resolve().parents[1]


def test_load_images_sources(tmp_path):
    x, y = load_images("digits", limit=20)
    assert x.shape == (20, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    np.savez(tmp_path / "imgs.npz", images=np.random.rand(5, 6, 7), labels=np.arange(5))
    x2, y2 = load_images(tmp_path / "imgs.npz")
    assert x2.shape == (5, 6, 7) and y2.tolist() == [0, 1, 2, 3, 4]
    from PIL import Image
    for label in ("3", "7"):
        (tmp_path / "png" / label).mkdir(parents=True)
        pixels = np.full((4, 4), 255 if label == "7" else 0, dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "png" / label / "a.png")
    x3, y3 = load_images(tmp_path / "png")
    assert y3.tolist() == [3, 7] and float(x3[1].min()) == 1.0
    with pytest.raises(ZooError):
        load_images("no-such-source")


def test_coordinate_grid_convention():
    g = coordinate_grid(3, 4)
    assert g.shape == (12, 2)
    assert torch.allclose(g[:4, 0], torch.linspace(-1, 1, 4)) and torch.all(g[:4, 1] == -1)  # row 0: x varies
    assert torch.allclose(g[::4, 1], torch.linspace(-1, 1, 3))


def test_hand_written_gradient_matches_autograd():
    hidden = (5, 4, 3)
    arch = inr_architecture(hidden)
    flat = torch.stack([siren_init(hidden, 30.0, s, torch.float64) for s in range(3)])
    img = torch.rand(3, 6, 7, dtype=torch.float64)
    layout = _Layout(hidden)
    model = _Batch(layout, 6, 7, 30.0, 0.5, torch.float64)
    theta = layout.from_canonical(flat)
    assert torch.equal(layout.to_canonical(theta), flat)
    grad = torch.empty_like(theta)
    mse = model.loss_and_grad(theta, img.reshape(3, -1), grad)
    f = flat.clone().requires_grad_()
    ref = ((render_inr(arch, f, (6, 7)) - img) ** 2).mean((1, 2))
    ref.sum().backward()
    assert torch.allclose(mse, ref, atol=1e-12)
    assert torch.allclose(layout.to_canonical(grad), f.grad, atol=1e-10)


def test_fit_inrs_improves_psnr_and_records_it():
    x, _ = load_images("digits", limit=8)
    flat0, psnr0, steps0 = fit_inrs(x, hidden=(16, 16), steps=0, seeds=0, batch_size=4)
    flat, psnr, steps = fit_inrs(x, hidden=(16, 16), steps=60, target_psnr=None, seeds=0, batch_size=4)
    assert flat.shape == (8, inr_architecture((16, 16)).num_parameters)
    assert torch.all(steps0 == 0) and torch.all(steps == 60)
    assert torch.all(psnr > psnr0 + 5)
    rendered = render_inr(inr_architecture((16, 16)), flat, 8)
    check = -10 * torch.log10(((rendered - x) ** 2).mean((1, 2)))
    assert torch.allclose(check, psnr, atol=1e-2)
    # early stopping: every INR stops on its own once it reaches the target (the siren init fits these in < 400 steps)
    _, psnr_t, steps_t = fit_inrs(x, hidden=(16, 16), steps=400, target_psnr=30.0, seeds=0, init="siren", batch_size=3,
                                  refill_every=2)
    assert torch.all(psnr_t >= 30.0) and len(set(steps_t.tolist())) > 1 and int(steps_t.max()) < 400


def test_inr_zoo_round_trip_and_splits(tmp_path):
    zoo = build_inr_zoo(tmp_path / "z", images="digits", count=10, inrs_per_image=2, hidden=(8,), steps=20,
                        target_psnr=None, chunk_size=8, workers=1, progress=False)
    t = zoo.table
    n = len(zoo)
    assert set(t.columns) >= {"index", "group", "label", "psnr", "steps", "seed", "image_index", "split"}
    manifest = json.loads((tmp_path / "z" / "manifest.json").read_text())
    assert manifest["format"] == "weight-space-explorer.zoo" and manifest["count"] == n
    # splits by source image: the INRs of an image share it; training images have two views (different seeds),
    # validation and test images one; splits partition the zoo
    assert t.groupby("image_index")["split"].nunique().max() == 1
    views = t.groupby("image_index").size()
    split_of = t.groupby("image_index")["split"].first()
    assert set(views[split_of == "train"]) == {2} and set(views[split_of != "train"]) == {1}
    assert (split_of != "train").any() and n == 2 * (split_of == "train").sum() + (split_of != "train").sum()
    assert t[t["split"] == "train"].groupby("image_index")["seed"].nunique().min() == 2
    all_idx = np.sort(np.concatenate([zoo.split_indices(s) for s in ("train", "val", "test")]))
    assert np.array_equal(all_idx, np.arange(n))
    again = build_inr_zoo(tmp_path / "z2", images="digits", count=10, inrs_per_image=2, hidden=(8,), steps=20,
                          target_psnr=None, chunk_size=8, workers=1, progress=False)
    assert again.manifest["splits"] == zoo.manifest["splits"]
    arch, flat = zoo.flat([0, 3])
    assert flat.dtype == torch.float32 and flat.shape == (2, arch.num_parameters)
    net = zoo.network(3)
    assert net.meta["index"] == 3 and torch.equal(net.flat(), flat[1])
    rendered = render_inr(arch, flat[1], 8)
    x, _ = load_images("digits")
    psnr = -10 * torch.log10(((rendered - x[int(t.loc[3, "image_index"])]) ** 2).mean())
    assert abs(float(psnr) - float(t.loc[3, "psnr"])) < 1e-2
    graphs = zoo.graphs(split="test")
    assert [g.index for g in graphs] == zoo.split_indices("test").tolist()
    assert torch.equal(from_graph(graphs[0]).flat(), zoo.network(graphs[0].index).flat())
    ds = ZooGraphDataset(zoo, "train", "label")
    assert len(ds) == len(zoo.split_indices("train")) and int(ds[0].y) == int(t.loc[ds.indices[0], "label"])
    # a rebuild with the same options returns the finished zoo; other options are refused
    build_inr_zoo(tmp_path / "z", images="digits", count=10, inrs_per_image=2, hidden=(8,), steps=20,
                  target_psnr=None, chunk_size=8, workers=1, progress=False)
    with pytest.raises(ZooError):
        build_inr_zoo(tmp_path / "z", images="digits", count=11, hidden=(8,), steps=20, workers=1, progress=False)


RESUME_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from core.zoo import store, build_inr_zoo
    original = store.ZooBuilder.write_chunk
    def write_then_die(self, k, groups, rows):
        original(self, k, groups, rows)
        os._exit(17)  # simulate a crash right after the first chunk is on disk
    store.ZooBuilder.write_chunk = write_then_die
    build_inr_zoo({out!r}, images="digits", count=12, hidden=(8,), steps=15, target_psnr=None, chunk_size=4,
                  batch_size=4, workers=1, progress=False)
""")


def test_interrupted_build_resumes(tmp_path):
    out = tmp_path / "resumed"
    proc = subprocess.run([sys.executable, "-c", RESUME_SCRIPT.format(root=str(ROOT), out=str(out))], timeout=120)
    assert proc.returncode == 17
    assert not (out / "manifest.json").exists() and (out / "progress.json").exists()
    assert len(list((out / "chunks").glob("chunk-*.safetensors"))) == 1
    with pytest.raises(ZooError):
        Zoo.open(out)
    # the batch size only sets the speed: a build resumes with another one (here the size-based default)
    resumed = build_inr_zoo(out, images="digits", count=12, hidden=(8,), steps=15, target_psnr=None, chunk_size=4,
                            workers=1, progress=False)
    full = build_inr_zoo(tmp_path / "full", images="digits", count=12, hidden=(8,), steps=15, target_psnr=None,
                         chunk_size=4, batch_size=4, workers=1, progress=False)
    assert torch.allclose(resumed.flat(range(12))[1], full.flat(range(12))[1], atol=1e-6, rtol=0)
    assert resumed.table.drop(columns="psnr").equals(full.table.drop(columns="psnr"))
    assert np.allclose(resumed.table["psnr"], full.table["psnr"], atol=1e-3)
    assert not (out / "chunks").exists() and not (out / "progress.json").exists()
    again = build_inr_zoo(out, images="digits", count=12, hidden=(8,), steps=15, target_psnr=None, chunk_size=4,
                          batch_size=2, workers=1, progress=False)   # done already: nothing refitted, no refusal
    assert torch.equal(again.flat(range(12))[1], resumed.flat(range(12))[1])
    with pytest.raises(ZooError, match="different zoo"):              # a recipe option still counts
        build_inr_zoo(out, images="digits", count=12, hidden=(8,), steps=16, target_psnr=None, chunk_size=4,
                      workers=1, progress=False)


def test_cnn_zoos(tmp_path):
    zoo = build_cnn_zoo(tmp_path / "cnn", images="digits", count=6, max_epochs=1, workers=1, progress=False)
    t = zoo.table
    assert len(zoo) == 6 and set(t["group"]) <= {"relu", "tanh"}
    assert t["test_accuracy"].between(0, 1).all()
    assert {"lr", "optimiser", "init_scale", "train_fraction"} <= set(t.columns)
    net = zoo.network(0)
    assert net.architecture.num_parameters == 4970
    from core.network import run
    x, y = load_images("digits", limit=50)
    assert run(net, x[:, None]).shape == (50, 10)
    wild = build_cnn_zoo(tmp_path / "wild", images="digits", count=4, wild=True, nets_per_arch=2, max_epochs=1,
                         workers=1, progress=False)
    assert len(wild.architectures) == 2 and len(wild.graphs()) == 4


def _cli(argv):
    from core.cli import zoo_cmd
    parser = argparse.ArgumentParser()
    zoo_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_build_and_info(tmp_path, capsys):
    out = tmp_path / "cli"
    assert _cli(["zoo", "build", "inr", "--images", "digits", "--count", "6", "--hidden", "8", "--steps", "10",
                 "--workers", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert _cli(["zoo", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == 6 and "psnr" in info and sum(info["splits"].values()) == 6
    assert _cli(["zoo", "info", str(out)]) == 0
    assert "6 networks" in capsys.readouterr().out
    with pytest.raises(WeightSpaceError):
        _cli(["zoo", "info", str(tmp_path)])
