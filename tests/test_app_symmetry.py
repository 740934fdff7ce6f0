"""The Symmetry lab page through AppTest: symmetries listed, checks pass, 'break it' fails them."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest
from torch import nn


def _length(values) -> int:
    """Length of a plotly data array, plain or base64-typed ({"dtype", "bdata"})."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values or [])


APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _lab_with(state: dict, activation: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/symmetry_lab.py").run()
    at.radio(key="symmetry-source").set_value("Upload").run()
    buf = io.BytesIO()
    torch.save(state, buf)
    at.file_uploader(key="symmetry-upload").upload("net.pt", buf.getvalue()).run()
    if activation:
        at.selectbox(key="symmetry-activation").set_value(activation).run()
    assert not at.exception, at.exception
    return at


def test_relu_network_symmetries_and_break_it() -> None:
    at = _lab_with(nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)).state_dict(), "relu")
    text = " ".join(m.value for m in at.markdown)
    assert "permutation of 8 hidden neurons" in text and "positive scaling on 8 neurons" in text
    assert at.success and "preserved" in at.success[0].value and not at.error
    after = json.loads(at.get("plotly_chart")[1].proto.spec)
    ringed = [t for t in after["data"] if t.get("name") == "neurons the permutation acts on"]
    assert len(ringed) == 1 and 2 <= _length(ringed[0]["x"]) <= 8  # hidden neurons only, at least a swap
    at.radio(key="symmetry-kind").set_value("scale").run()
    assert at.success and not at.error
    at.toggle(key="symmetry-broken").set_value(True).run()
    assert at.error and "changed" in at.error[0].value and not at.success
    table = at.dataframe[0].value
    assert not table["passed"].any()


def test_dead_relu_network_pass_comes_with_a_warning() -> None:
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    at = _lab_with(net.state_dict(), "relu")
    assert at.success and not at.warning
    with torch.no_grad():
        net[0].bias.fill_(-1e3)  # every hidden ReLU dead on the probe inputs: the output is the last bias
    at = _lab_with(net.state_dict(), "relu")
    assert at.success and len(at.warning) == 1 and "same output for every probe input" in at.warning[0].value


def test_unknown_activation_asks_for_it() -> None:
    at = _lab_with(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).state_dict(), None)
    assert at.warning and "activation is unknown" in at.warning[0].value


def test_bundled_siren_sign_and_phase() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/symmetry_lab.py").run()
    at.selectbox(key="symmetry-example").set_value("siren-mnist-3.pth").run()
    assert not at.exception
    assert "sign flips" in " ".join(m.value for m in at.markdown)
    for kind in ("sign", "phase"):
        at.radio(key="symmetry-kind").set_value(kind).run()
        assert at.success and not at.error, kind
        # the bundled runs: the classifier reading canonical forms is checked through its whole pipeline (its
        # graph model alone is not sign-invariant), ng-t's graph model directly
        runs = at.dataframe[1].value.set_index("model")
        canonical = runs.loc["inr-classify-mnist5k-ng-gnn-canonical"]
        assert canonical["claims"] == "all (reads canonical forms)"
        assert canonical[f"error under {kind}"] < 1e-4 and canonical["respects it"], kind
        if kind == "sign":
            assert runs.loc["inr-classify-mnist5k-ng-t", "error under sign"] > 1e-4


def test_a_declared_activation_contradicting_the_file_is_a_warning_and_the_file_runs() -> None:
    import json

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/symmetry_lab.py").run()
    at.selectbox(key="symmetry-example").set_value("siren-mnist-3.pth").run()
    at.selectbox(key="symmetry-activation").set_value("relu").run()
    assert not at.exception
    assert len(at.warning) == 1 and "sine" in at.warning[0].value and "relu" in at.warning[0].value
    at.radio(key="symmetry-kind").set_value("scale").run()
    # ReLU scalings claimed for a sine network: checked against the sine function, so they fail
    assert at.error and "changed" in at.error[0].value and not at.success
    table = at.dataframe[0].value
    assert not table.set_index("symmetry").loc["scale", "passed"]
    assert table.set_index("symmetry").loc["permutation", "passed"]
    formats = json.loads(at.dataframe[0].proto.columns)
    assert formats["max abs error"]["type_config"]["format"] == "%.1e"
    metanets = [d.value for d in at.dataframe if "respects it" in d.value]
    assert metanets and all(v in (True, False) for v in metanets[0]["respects it"])
    assert metanets[0]["respects it"].dtype == bool
