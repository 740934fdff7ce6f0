"""Init drift: statistics per parameter tensor, rebuilt inits, the CLI and the bundled zoos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import WeightSpaceError
from core.zoo import Zoo, build_inr_zoo
from core.zoo.drift import CARRIES_INIT_CORRELATION, _tensor_drift, format_drift, init_drift

ROOT = Path(__file__).resolve().parents[1]


def _tiny(out: Path, **kw) -> Zoo:
    options = dict(images="digits", count=8, hidden=(8,), steps=0, target_psnr=None, chunk_size=8, batch_size=8,
                   workers=1, progress=False)
    return build_inr_zoo(out, **{**options, **kw})


def _rows(report: dict) -> dict[str, dict]:
    return {f"{r['layer']}.{r['kind']}": r for r in report["rows"]}


def test_statistics_of_a_known_update():
    g = torch.Generator().manual_seed(0)
    init = torch.randn(4000, 30, generator=g, dtype=torch.float64)
    update = 2.0 * torch.randn(4000, 30, generator=g, dtype=torch.float64)  # independent of the init
    stats = _tensor_drift(init + update, init)
    assert abs(stats["update_ratio"] - 2.0) < 0.02
    assert abs(stats["correlation"] - 1 / np.sqrt(5)) < 0.01 and not stats["carries_init"]
    # the correlation is across networks: a per-position offset shared by all networks does not count
    offset = torch.randn(1, 30, generator=g, dtype=torch.float64) * 10
    moved = _tensor_drift(init + update + offset, init + offset)
    assert abs(moved["correlation"] - stats["correlation"]) < 1e-9
    small = _tensor_drift(init + 0.1 * update, init)
    assert small["correlation"] > 0.95 and small["carries_init"]
    assert abs(stats["update_correlation"]) < 0.01 and abs(small["update_correlation"]) < 0.01


def test_an_update_that_grows_the_init_keeps_it_however_large():
    """F = I + (a·I + noise): the update correlates with the init, and F stays > 0.5 correlated for any a."""
    g = torch.Generator().manual_seed(1)
    init = torch.randn(4000, 30, generator=g, dtype=torch.float64)
    noise = torch.randn(4000, 30, generator=g, dtype=torch.float64)
    for a in (1.0, 3.0, 10.0):
        stats = _tensor_drift(init + a * init + noise, init)
        expected = (1 + a) / np.sqrt((1 + a) ** 2 + 1)  # corr(F, I), the noise's variance 1 against (1 + a)²
        assert abs(stats["correlation"] - expected) < 0.01 and stats["carries_init"]
        assert abs(stats["update_correlation"] - a / np.sqrt(a * a + 1)) < 0.01
        assert stats["update_ratio"] > a


def test_unfitted_zoo_carries_its_init_and_zero_biases_have_no_correlation(tmp_path):
    rows = _rows(init_drift(_tiny(tmp_path / "d")))
    for key in ("seq.0.weight", "seq.1.weight", "seq.1.bias"):
        assert rows[key]["correlation"] == pytest.approx(1.0) and rows[key]["update_ratio"] == 0.0
        assert rows[key]["carries_init"]
    bias = rows["seq.0.bias"]  # dwsnets: sine-layer biases start at zero
    assert bias["correlation"] is None and bias["update_ratio"] is None and bias["note"] == "init all zeros"
    assert not bias["carries_init"]


def test_fitting_moves_parameters_and_shared_init_has_no_per_network_noise(tmp_path):
    fitted = _rows(init_drift(_tiny(tmp_path / "f", steps=30)))
    assert fitted["seq.1.weight"]["update_ratio"] > 0
    assert fitted["seq.0.bias"]["update_std"] > 0
    shared = _rows(init_drift(_tiny(tmp_path / "s", steps=30, init="shared")))
    w = shared["seq.0.weight"]
    assert w["correlation"] is None and w["note"] == "init identical across networks" and w["update_ratio"] > 0


def test_rebuilt_inits_match_the_seeds(tmp_path):
    """Drift from the stored seeds vs from wrong seeds: only the right seeds correlate."""
    zoo = _tiny(tmp_path / "w", steps=5, init="siren")
    right = _rows(init_drift(zoo))["seq.0.weight"]["correlation"]
    zoo.table["seed"] = zoo.table["seed"] + 1000
    wrong = _rows(init_drift(zoo))["seq.0.weight"]["correlation"]
    assert right > 0.95 and abs(wrong) < 0.5


def test_bundled_digits_zoo_first_layer_carries_the_init():
    # the rebuilt zoo (DWSNets recipe, recorded): zero-init biases have no correlation; the output layer keeps its init
    report = init_drift(Zoo.open(ROOT / "assets" / "zoos" / "digits-inr"))
    rows = _rows(report)
    assert report["networks"] == 1797 and report["recipe"]["recorded"] and report["recipe"]["init"] == "dwsnets"
    assert rows["seq.0.bias"]["correlation"] is None and rows["seq.1.bias"]["correlation"] is None
    assert rows["seq.2.bias"]["correlation"] > 0.99 and 0.5 < rows["seq.0.weight"]["correlation"] < 0.99
    assert rows["seq.0.weight"]["carries_init"] and report["threshold"] == CARRIES_INIT_CORRELATION
    assert "carries the init, not the data" in format_drift(report)


def _cli(argv):
    from core.cli import zoo_cmd

    parser = argparse.ArgumentParser()
    zoo_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_info_drift(tmp_path, capsys):
    zoo = _tiny(tmp_path / "c", steps=3)
    assert _cli(["zoo", "info", str(zoo.dir), "--drift"]) == 0
    out = capsys.readouterr().out
    assert "init drift over 8 networks, init dwsnets" in out and "seq.0.weight" in out
    assert _cli(["zoo", "info", str(zoo.dir), "--drift", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["recipe"]["init"] == "dwsnets" and len(info["drift"]["rows"]) == 4
    with pytest.raises(WeightSpaceError, match="zoo build inr"):
        _cli(["zoo", "info", str(ROOT / "assets" / "zoos" / "cnn-digits"), "--drift"])


def test_zoo_explorer_shows_the_drift_of_inr_zoos_only() -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300)
    at.run()
    at.switch_page("views/zoo_explorer.py").run()
    assert not at.exception and not at.error
    assert [e.label for e in at.expander if e.label.startswith("Init drift")] == ["Init drift of digits-inr"]
    captions = " ".join(c.value for c in at.caption)
    assert "1,797 INRs, init dwsnets" in captions
    table = next(d.value for d in at.dataframe if "correlation" in d.value.columns)
    assert table["flag"].iloc[0] == "carries the init, not the data"
    at.multiselect(key="explorer-zoos").set_value(["cnn-digits"]).run()
    assert not at.exception and not [e for e in at.expander if e.label.startswith("Init drift")]
