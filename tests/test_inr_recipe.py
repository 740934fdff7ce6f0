"""The INR fitting recipe: init schemes, shared init, recipe in the manifest, reproducible builds."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from core.network.spec import unflatten_params
from core.zoo import Zoo, ZooError, build_inr_zoo, inr_architecture, siren_init
from core.zoo.inr import FitError, fit_inrs, initial_parameters, inr_recipe

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = (32, 32)
W0 = 30.0


def _layers(scheme: str, seeds: range) -> dict[str, torch.Tensor]:
    flat = torch.stack([siren_init(HIDDEN, W0, s, torch.float64, scheme) for s in seeds])
    return unflatten_params(inr_architecture(HIDDEN), flat)


def _check_uniform(values: torch.Tensor, bound: float) -> None:
    """Inside ±bound, reaching close to both ends, mean near 0 (a too-narrow or too-wide bound fails)."""
    assert float(values.abs().max()) <= bound
    assert float(values.max()) > 0.97 * bound and float(values.min()) < -0.97 * bound
    assert abs(float(values.mean())) < 0.05 * bound
    assert abs(float(values.std()) - bound / math.sqrt(3)) < 0.05 * bound


def test_dwsnets_init_distribution():
    p = _layers("dwsnets", range(200))
    fan_ins = {"seq.0": 2, "seq.1": 32}
    for name, fan_in in fan_ins.items():  # sine layers, the first included
        _check_uniform(p[f"{name}.weight"], math.sqrt(6.0 / fan_in) / W0)
        assert torch.count_nonzero(p[f"{name}.bias"]) == 0
    # the output layer keeps torch's default nn.Linear init: weight and bias within ±1/√fan_in
    torch.manual_seed(0)
    reference = torch.stack([torch.nn.Linear(32, 1).weight.detach().reshape(-1) for _ in range(200)]).double()
    ref_bound = float(reference.abs().max())
    bound = 1.0 / math.sqrt(32)
    assert abs(ref_bound - bound) < 0.03 * bound
    _check_uniform(p["seq.2.weight"], bound)
    _check_uniform(p["seq.2.bias"], bound)


def test_siren_init_distribution_is_the_older_recipe():
    p = _layers("siren", range(200))
    _check_uniform(p["seq.0.weight"], 1.0 / 2)
    _check_uniform(p["seq.1.weight"], math.sqrt(6.0 / 32) / W0)
    _check_uniform(p["seq.0.bias"], 1.0 / math.sqrt(2))
    _check_uniform(p["seq.1.bias"], 1.0 / math.sqrt(32))


def test_init_depends_on_seed_only():
    assert torch.equal(siren_init(HIDDEN, W0, 7), siren_init(HIDDEN, W0, 7))
    assert not torch.equal(siren_init(HIDDEN, W0, 7), siren_init(HIDDEN, W0, 8))
    with pytest.raises(FitError):
        siren_init(HIDDEN, W0, 0, scheme="shared")
    with pytest.raises(FitError):
        fit_inrs(torch.rand(1, 4, 4), steps=0, init="kaiming")


def _tiny(out: Path, **kw) -> Zoo:
    options = dict(images="digits", count=6, hidden=(8,), steps=12, target_psnr=None, chunk_size=4, batch_size=4,
                   workers=1, progress=False)
    return build_inr_zoo(out, **{**options, **kw})


def test_zero_steps_zoo_holds_the_recorded_initial_values(tmp_path):
    for init in ("dwsnets", "shared", "siren"):
        zoo = _tiny(tmp_path / init, steps=0, init=init)
        recipe = inr_recipe(zoo.manifest)
        assert recipe["recorded"] and recipe["init"] == init and recipe["steps"] == 0
        _, flat = zoo.flat(range(len(zoo)))
        assert torch.equal(flat, initial_parameters(recipe, zoo.table["seed"].tolist()))
        distinct = len({tuple(row.tolist()) for row in flat})
        assert distinct == (1 if init == "shared" else len(zoo))


def test_recipe_recorded_and_builds_are_identical(tmp_path):
    a = _tiny(tmp_path / "a", init="shared", seed=3)
    b = _tiny(tmp_path / "b", init="shared", seed=3)
    assert torch.equal(a.flat(range(6))[1], b.flat(range(6))[1])
    assert a.table.equals(b.table)
    ma, mb = (json.loads((z.dir / "manifest.json").read_text()) for z in (a, b))
    assert ma == mb
    recipe = ma["recipe"]
    assert recipe["init"] == "shared" and recipe["init_seed"] == 3_000_000
    assert {recipe[k] for k in ("w0", "lr", "steps", "target_psnr")} == {30.0, 5e-4, 12, None}
    assert set(ma["seeds"]) == {3_000_000} and ma["generator"]["options"]["init"] == "shared"
    c = _tiny(tmp_path / "c", init="dwsnets", seed=3)
    assert not torch.equal(a.flat(range(6))[1], c.flat(range(6))[1])
    assert c.manifest["seeds"] == [3_000_000 + i for i in range(6)]


def test_bad_init_options_are_refused(tmp_path):
    with pytest.raises(ZooError, match="unknown init"):
        _tiny(tmp_path / "x", init="normal")
    with pytest.raises(ZooError, match="same INR"):
        _tiny(tmp_path / "y", init="shared", inrs_per_image=2)


@pytest.mark.parametrize("name", ["digits-inr", "mnist5k-inr"])
def test_bundled_zoos_record_the_dwsnets_recipe(name):
    zoo = Zoo.open(ROOT / "assets" / "zoos" / name)
    recipe = inr_recipe(zoo.manifest)
    assert recipe["recorded"] and recipe["init"] == "dwsnets" and recipe["lr"] == 5e-4 and recipe["steps"] == 1000
    init = initial_parameters(recipe, zoo.table["seed"].tolist()[:3])
    assert init.shape == zoo.flat([0, 1, 2])[1].shape


def test_zoos_without_recipe_still_load():
    # a manifest written before recipes (and the init option) existed: read as the old `siren` init
    zoo = Zoo.open(ROOT / "assets" / "zoos" / "digits-inr")
    manifest = copy.deepcopy(zoo.manifest)
    del manifest["recipe"]
    manifest["generator"]["options"].pop("init")
    recipe = inr_recipe(manifest)
    assert not recipe["recorded"] and recipe["init"] == "siren" and recipe["w0"] == 30.0
    init = initial_parameters(recipe, zoo.table["seed"].tolist()[:3])
    assert init.shape == zoo.flat([0, 1, 2])[1].shape


def test_recipe_of_a_cnn_zoo_is_refused():
    zoo = Zoo.open(ROOT / "assets" / "zoos" / "cnn-digits")
    with pytest.raises(ZooError, match="zoo build inr"):
        inr_recipe(zoo.manifest)


def test_cli_init_option(tmp_path, capsys):
    import argparse

    from core.cli import zoo_cmd

    parser = argparse.ArgumentParser()
    zoo_cmd.register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "cli"
    args = parser.parse_args(["zoo", "build", "inr", "--images", "digits", "--count", "4", "--hidden", "8",
                              "--steps", "3", "--workers", "1", "--init", "shared", "--out", str(out)])
    assert args.func(args) == 0
    assert Zoo.open(out).manifest["recipe"]["init"] == "shared"
    with pytest.raises(SystemExit):
        parser.parse_args(["zoo", "build", "inr", "--init", "bogus", "--out", str(out)])


def test_malformed_recipe_is_a_clear_error():
    manifest = {"generator": {"name": "inr", "options": {}}, "recipe": {"init": "dwsnets", "scheme": "dwsnets",
                                                                        "w0": 30.0, "hidden": [8]}}
    assert inr_recipe(manifest)["recorded"]
    for bad in ({"scheme": "xavier"}, {"hidden": "32,32"}, {"hidden": [0]}, {"w0": None}):
        with pytest.raises(ZooError, match="malformed INR recipe"):
            inr_recipe({**manifest, "recipe": {**manifest["recipe"], **bad}})
    with pytest.raises(ZooError, match="malformed INR recipe"):
        inr_recipe({**manifest, "recipe": [1, 2]})


def test_fitting_keeps_the_process_thread_setting(monkeypatch):
    """threads=None uses torch's current setting (OMP_NUM_THREADS=1 keeps a build on one core), not every core."""
    import core.zoo.inr as inr

    before = torch.get_num_threads()
    monkeypatch.setattr(inr.os, "cpu_count", lambda: 64)
    seen: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda k: (seen.append(k), real(k)))
    try:
        real(1)
        fit_inrs(torch.rand(2, 4, 4), steps=2, seeds=0)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 1
    finally:
        real(before)


def test_fitted_inrs_do_not_depend_on_the_batch_size():
    """The batch size is a speed setting only (`fit_batch_size`'s choice): each INR follows its own Adam trajectory."""
    images = torch.rand(7, 6, 6)
    small = fit_inrs(images, steps=15, seeds=3, batch_size=2)
    large = fit_inrs(images, steps=15, seeds=3, batch_size=16)
    for a, b in zip(small, large):
        assert torch.allclose(a.double(), b.double(), atol=1e-6, rtol=0)
