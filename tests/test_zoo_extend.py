"""`zoo extend` / `add_inr_views`: more training views of an INR zoo, the source's networks and splits kept."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main
from core.zoo import Zoo, ZooError, add_inr_views, build_inr_zoo, fit_inrs, load_images


@pytest.fixture()
def source(tmp_path):
    return build_inr_zoo(tmp_path / "src", images="digits", count=12, hidden=(8,), steps=15, seed=3, chunk_size=5,
                         workers=1, progress=False)


def _drop_from_manifest(zoo_dir, option: str, recipe: bool = False) -> None:
    """Remove a generator option (and with `recipe` the recorded recipe) from a zoo's manifest, as older builds lack."""
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    del manifest["generator"]["options"][option]
    if recipe:
        del manifest["recipe"]
    (zoo_dir / "manifest.json").write_text(json.dumps(manifest))


def test_extended_zoo_keeps_the_source_and_adds_training_views(tmp_path, source):
    out = add_inr_views(source.dir, tmp_path / "out", views=2, seed=5, workers=1, progress=False)
    n = len(source)
    train_images = np.unique(source.table.loc[source.table["split"] == "train", "image_index"])
    assert len(out) == n + 2 * len(train_images)
    # the source's networks, rows and splits are unchanged
    assert torch.equal(out.flat(np.arange(n))[1], source.flat(np.arange(n))[1])
    for column in ("label", "seed", "image_index", "split"):
        assert out.table[column].iloc[:n].tolist() == source.table[column].tolist()
    new = out.table.iloc[n:]
    assert (new["split"] == "train").all()
    assert sorted(new["image_index"]) == sorted(np.repeat(train_images, 2))
    assert set(new["seed"]) == {5_000_000 + j for j in range(len(new))}
    # val / test keep one INR per image and share no image with training
    held_out = out.table.loc[out.table["split"] != "train", "image_index"]
    assert held_out.is_unique and not set(held_out) & set(new["image_index"])
    # each new INR is exactly what fitting its image from its seed gives
    x, y = load_images("digits")
    assert (new["label"].to_numpy() == y.numpy()[new["image_index"].to_numpy()]).all()
    images = x[torch.tensor(new["image_index"].tolist())]
    flat, _, _ = fit_inrs(images, hidden=(8,), steps=15, seeds=new["seed"].tolist())
    assert torch.allclose(out.flat(new.index.to_numpy())[1], flat, atol=1e-6)
    options = out.manifest["generator"]["options"]
    assert options["inrs_per_image"] == 3 and options["extended_from"]["views"] == 2
    assert out.manifest["recipe"] == source.manifest["recipe"]


def test_extend_refuses_overlapping_seeds_and_bad_views(tmp_path, source):
    with pytest.raises(ZooError, match="reuses init seeds"):
        add_inr_views(source.dir, tmp_path / "a", views=1, seed=3, workers=1, progress=False)
    with pytest.raises(ZooError, match="positive"):
        add_inr_views(source.dir, tmp_path / "b", views=0, seed=5, workers=1, progress=False)


def test_zoo_extend_cli_is_rerunnable(tmp_path, source, capsys):
    args = ["zoo", "extend", str(source.dir), "--views", "1", "--seed", "9", "--out", str(tmp_path / "cli"),
            "--workers", "1"]
    assert main(args) == 0
    first = Zoo.open(tmp_path / "cli")
    assert main(args) == 0  # finished: opens the same zoo instead of refitting
    assert torch.equal(Zoo.open(tmp_path / "cli").flat()[1], first.flat()[1])
    assert "splits" in capsys.readouterr().out


def test_extend_refuses_zoos_it_cannot_extend(tmp_path):
    with pytest.raises(ZooError, match="not a one-architecture image-INR zoo"):
        add_inr_views("assets/zoos/cnn-digits", tmp_path / "cnn", views=1, seed=5, workers=1, progress=False)
    shared = build_inr_zoo(tmp_path / "shared", images="digits", count=6, hidden=(8,), steps=3, init="shared",
                           workers=1, progress=False)
    with pytest.raises(ZooError, match="shared-init zoo"):
        add_inr_views(shared.dir, tmp_path / "b", views=1, seed=5, workers=1, progress=False)
    assert not (tmp_path / "cnn").exists() and not (tmp_path / "b").exists()  # refused before writing anything


def test_extend_an_older_zoo_without_a_recorded_recipe(tmp_path):
    """Zoos built before recipes were recorded used the `siren` init; their new views must too."""
    old = build_inr_zoo(tmp_path / "old", images="digits", count=8, hidden=(8,), steps=10, init="siren", seed=2,
                        workers=1, progress=False)
    _drop_from_manifest(old.dir, "init", recipe=True)
    out = add_inr_views(old.dir, tmp_path / "out", views=1, seed=4, workers=1, progress=False)
    assert out.manifest["recipe"]["init"] == "siren"
    new = out.table.iloc[len(old):]
    x, _ = load_images("digits")
    flat, _, _ = fit_inrs(x[torch.tensor(new["image_index"].tolist())], hidden=(8,), steps=10, init="siren",
                          seeds=new["seed"].tolist())
    assert torch.allclose(out.flat(new.index.to_numpy())[1], flat, atol=1e-6)


def test_extend_checks_the_new_views_labels(tmp_path, source, monkeypatch):
    import core.zoo.extend as extend

    def mislabelled(*args, **kwargs):
        fitted = build_inr_zoo(*args, **kwargs)
        fitted.table["label"] = (fitted.table["label"] + 1) % 10
        return fitted

    monkeypatch.setattr(extend, "build_inr_zoo", mislabelled)
    with pytest.raises(ZooError, match="labels of the new views"):
        add_inr_views(source.dir, tmp_path / "out", views=1, seed=5, workers=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_extend_needs_to_know_the_source_images(tmp_path, source):
    _drop_from_manifest(source.dir, "images")
    with pytest.raises(ZooError, match="which images it was fitted to"):
        add_inr_views(source.dir, tmp_path / "out", views=1, seed=5, workers=1, progress=False)


def test_extend_needs_the_step_budget_of_an_older_zoo(tmp_path):
    old = build_inr_zoo(tmp_path / "old", images="digits", count=6, hidden=(8,), steps=3, init="siren", seed=2,
                        workers=1, progress=False)
    _drop_from_manifest(old.dir, "steps", recipe=True)
    with pytest.raises(ZooError, match="step budget"):
        add_inr_views(old.dir, tmp_path / "out", views=1, seed=5, workers=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_extend_fits_at_its_own_batch_size_not_the_sources(tmp_path, monkeypatch):
    import core.zoo.extend as extend

    src = build_inr_zoo(tmp_path / "src", images="digits", count=6, hidden=(8,), steps=5, seed=3, chunk_size=4,
                        batch_size=256, workers=1, progress=False)
    seen = []

    def recording(*args, **kwargs):
        seen.append({k: kwargs.get(k) for k in ("batch_size", "chunk_size")})
        return build_inr_zoo(*args, **kwargs)

    monkeypatch.setattr(extend, "build_inr_zoo", recording)
    default = add_inr_views(src.dir, tmp_path / "a", views=1, seed=5, workers=1, progress=False)
    # a speed setting, chosen by the CLI like a build's
    assert main(["zoo", "extend", str(src.dir), "--views", "1", "--seed", "5", "--out", str(tmp_path / "b"),
                 "--workers", "1", "--batch-size", "2"]) == 0
    assert seen == [{"batch_size": None, "chunk_size": 4}, {"batch_size": 2, "chunk_size": 4}]
    # the networks do not depend on it
    assert torch.allclose(Zoo.open(tmp_path / "b").flat()[1], default.flat()[1], atol=1e-6)


def test_refit_held_out_fits_new_inrs_of_the_split_images_alone(tmp_path, source):
    from core.zoo import refit_held_out

    out = refit_held_out(source.dir, tmp_path / "refit", "test", views=2, seed=6, workers=1, progress=False)
    test = source.table[source.table["split"] == "test"]
    assert len(out) == 2 * len(test) and (out.table["split"] == "test").all()
    assert {k: v for k, v in out.manifest["splits"].items() if v} == {"test": list(range(len(out)))}
    assert sorted(out.table["image_index"]) == sorted(np.repeat(test["image_index"].to_numpy(), 2))
    assert set(out.table["seed"]) == {6_000_000 + j for j in range(len(out))}
    assert not set(out.table["seed"]) & set(source.table["seed"])
    # each is exactly what fitting its image from its seed with the source's recipe gives
    x, y = load_images("digits")
    index = out.table["image_index"].to_numpy()
    assert (out.table["label"].to_numpy() == y.numpy()[index]).all()
    flat, _, _ = fit_inrs(x[torch.tensor(index)], hidden=(8,), steps=15, seeds=out.table["seed"].tolist())
    assert torch.allclose(out.flat()[1], flat, atol=1e-6)
    assert out.manifest["recipe"] == source.manifest["recipe"]
    assert out.manifest["generator"]["options"]["refit_of"]["split"] == "test"


def test_refit_refuses_the_training_split_reused_seeds_and_bad_views(tmp_path, source):
    from core.zoo import refit_held_out

    with pytest.raises(ZooError, match="zoo extend"):
        refit_held_out(source.dir, tmp_path / "a", "train", views=1, seed=6, workers=1, progress=False)
    with pytest.raises(ZooError, match="reuses init seeds"):
        refit_held_out(source.dir, tmp_path / "b", "val", views=1, seed=3, workers=1, progress=False)
    with pytest.raises(ZooError, match="positive"):
        refit_held_out(source.dir, tmp_path / "c", "val", views=0, seed=6, workers=1, progress=False)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_zoo_refit_cli(tmp_path, source, capsys):
    args = ["zoo", "refit", str(source.dir), "--split", "val", "--views", "1", "--seed", "9", "--out",
            str(tmp_path / "cli"), "--workers", "1"]
    assert main(args) == 0
    out = Zoo.open(tmp_path / "cli")
    val = source.table[source.table["split"] == "val"]
    assert sorted(out.table["image_index"]) == sorted(val["image_index"]) and (out.table["split"] == "val").all()
    assert "splits" in capsys.readouterr().out


def test_a_refit_zoo_is_refused_for_training_before_anything_is_written(tmp_path, source):
    from core.runs import train_run
    from core.tasks import TaskError
    from core.zoo import refit_held_out

    refit = refit_held_out(source.dir, tmp_path / "refit", "test", views=1, seed=6, workers=1, progress=False)
    with pytest.raises(TaskError, match="no training networks"):
        train_run("inr-classify", "ng-gnn", refit.dir, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # a rerun with a proper zoo is not mistaken for an interrupted run
    with pytest.raises(ZooError, match="no images in that split"):
        add_inr_views(refit.dir, tmp_path / "more", views=1, seed=7, workers=1, progress=False)


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from core.zoo import add_inr_views, refit_held_out, store
    out = Path({out!r})
    original = store.ZooBuilder.write_chunk
    def write_then_die(self, k, groups, rows):
        original(self, k, groups, rows)
        # die right after the first chunk of the fitted views ("work") or of the written zoo ("final") is on disk
        if (self.dir == out) == ({where!r} == "final"):
            os._exit(17)
    store.ZooBuilder.write_chunk = write_then_die
    if {command!r} == "refit":
        refit_held_out({src!r}, out, "test", views=3, seed=6, workers=1, progress=False, batch_size=2)
    else:
        add_inr_views({src!r}, out, views=1, seed=6, workers=1, progress=False, batch_size=2)
""")


@pytest.mark.parametrize("command", ["refit", "extend"])
@pytest.mark.parametrize("where", ["work", "final"])
def test_an_interrupted_refit_or_extend_resumes_to_the_uninterrupted_zoo(tmp_path, source, command, where):
    from core.zoo import refit_held_out

    out = tmp_path / "resumed"
    script = CRASH_SCRIPT.format(root=str(Path(__file__).resolve().parents[1]), out=str(out), where=where,
                                 command=command, src=str(source.dir))
    proc = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert proc.returncode == 17
    work = out.with_name(out.name + ".views") / "zoo"
    if where == "work":   # killed while fitting: part of the views on disk, nothing of the zoo
        assert len(list((work / "chunks").glob("chunk-*.safetensors"))) == 1 and not out.exists()
    else:                 # killed while writing the zoo: the views fitted, the zoo unfinished
        assert (work / "manifest.json").exists() and not (out / "manifest.json").exists()
    with pytest.raises(ZooError):
        Zoo.open(out)

    def make(dest):
        if command == "refit":
            return refit_held_out(source.dir, dest, "test", views=3, seed=6, workers=1, progress=False)
        return add_inr_views(source.dir, dest, views=1, seed=6, workers=1, progress=False)

    resumed, full = make(out), make(tmp_path / "full")
    assert torch.allclose(resumed.flat()[1], full.flat()[1], atol=1e-6, rtol=0)
    columns = ["label", "seed", "image_index", "split", "steps"]
    assert resumed.table[columns].equals(full.table[columns])
    assert np.allclose(resumed.table["psnr"], full.table["psnr"], atol=1e-3)
    assert not work.parent.exists()  # the fitted views are removed once the zoo is written


@pytest.mark.parametrize("command", ["refit", "extend"])
def test_a_finished_zoo_is_reopened_without_fitting_and_other_options_refused_first(tmp_path, source, monkeypatch,
                                                                                    command):
    from core.zoo import extend, refit_held_out

    def make(seed):
        if command == "refit":
            return refit_held_out(source.dir, tmp_path / "out", "val", views=1, seed=seed, workers=1, progress=False)
        return add_inr_views(source.dir, tmp_path / "out", views=1, seed=seed, workers=1, progress=False)

    (tmp_path / "out.views").mkdir()
    (tmp_path / "out.views" / "notes.txt").write_text("mine")   # not the command's: kept when its files go
    first = make(6)
    assert [p.name for p in (tmp_path / "out.views").iterdir()] == ["notes.txt"]

    def no_fitting(*args, **kwargs):
        raise AssertionError("fitted again")
    monkeypatch.setattr(extend, "_fit_views", no_fitting)
    assert torch.equal(make(6).flat()[1], first.flat()[1])
    with pytest.raises(ZooError, match="different zoo"):
        make(7)
    assert [p.name for p in (tmp_path / "out.views").iterdir()] == ["notes.txt"]


def test_a_source_whose_image_file_moved_is_refused_by_name(tmp_path):
    from core.zoo import refit_held_out

    x, y = load_images("digits", limit=12)
    npz = tmp_path / "images.npz"
    np.savez(npz, images=x.numpy(), labels=y.numpy())
    src = build_inr_zoo(tmp_path / "src", images=str(npz), count=12, hidden=(8,), steps=5, seed=3, workers=1,
                        progress=False)
    npz.rename(tmp_path / "moved.npz")
    with pytest.raises(ZooError, match="no image folder or .npz file at .*images.npz"):
        refit_held_out(src.dir, tmp_path / "refit", "test", views=1, seed=6, workers=1, progress=False)
    assert not (tmp_path / "refit").exists() and not (tmp_path / "refit.views").exists()
    with pytest.raises(ZooError, match="unknown image source 'mnist'"):   # a mistyped name is still named as one
        load_images("mnist")
    with pytest.raises(ZooError, match="no image folder or .npz file at './pngs'"):   # "./" marks a path
        load_images("./pngs")
    with pytest.raises(ZooError, match="no image folder or .npz file at 'pngs'"):   # so does a Path object
        load_images(Path("pngs"))
