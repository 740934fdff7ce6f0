"""The Inspect page driven by Streamlit's AppTest: uploads, numbers shown, bad files."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest
from torch import nn

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="inspect-source").set_value("Upload").run()
    at.file_uploader(key="inspect-upload").upload(name, data).run()
    assert not at.exception, at.exception
    return at


def _bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_upload_state_dict_shows_counts() -> None:
    at = _app()
    state = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).state_dict()
    at = _upload(at, "tiny.pt", _bytes(state))
    at.selectbox(key="inspect-activation").set_value("relu").run()
    values = {m.label: m.value for m in at.metric}
    assert values["Parameters"] == str(5 * 7 + 7 + 7 * 3 + 3)
    assert values["Graph nodes"] == str(5 + 7 + 3)
    assert values["Graph edges"] == str(5 * 7 + 7 * 3)
    assert values["Activations"] == "relu"
    assert not at.error


def test_unknown_activation_is_reported() -> None:
    at = _upload(_app(), "tiny.pt", _bytes(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).state_dict()))
    assert {m.label: m.value for m in at.metric}["Activations"] == "unknown"
    assert any("activation" in i.value for i in at.info)


def test_bad_file_shows_error_and_app_keeps_working() -> None:
    at = _upload(_app(), "broken.pt", b"this is not a checkpoint")
    assert at.error and "Cannot read" in at.error[0].value
    assert not at.exception
    evil = pickle.dumps({"x": nn.Linear(2, 2)})
    at.file_uploader(key="inspect-upload").upload("model.pt", evil).run()
    assert at.error and "state_dict" in at.error[0].value
    good = _bytes(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).state_dict())
    at.file_uploader(key="inspect-upload").upload("ok.pt", good).run()
    assert not at.error and {m.label: m.value for m in at.metric}["Parameters"] == str(4 * 4 + 4 + 4 * 2 + 2)


def test_graph_slider_ends_at_the_models_edge_count_and_intensity_can_be_global() -> None:
    at = _app()
    at.selectbox(key="inspect-example").set_value("mlp-784-128-64-10.pt").run()
    slider = at.slider(key="inspect-edges")
    assert slider.max == 784 * 128 + 128 * 64 + 64 * 10 and slider.value == 3000
    assert "every layer keeps its share" in " ".join(c.value for c in at.caption)
    at.toggle(key="inspect-normalise").set_value(False).run()
    slider.set_value(slider.max).run()
    assert not at.exception and "All edges are drawn" in " ".join(c.value for c in at.caption)
    at = _upload(_app(), "tiny.pt", _bytes(nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).state_dict()))
    assert not [s for s in at.slider if s.key == "inspect-edges"]  # 56 edges: all drawn, no budget to choose
    assert "All edges are drawn" in " ".join(c.value for c in at.caption)


def test_layers_table_has_no_none_and_spectra_name_their_layers() -> None:
    import json

    at = _upload(_app(), "seq.pt", _bytes(nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).state_dict()))
    at.selectbox(key="inspect-activation").set_value("relu").run()
    assert not at.dataframe  # only the open tab (the graph) is computed
    at.session_state["inspect-tab"] = "Layers"  # what clicking the tab does (it reruns the page)
    at.run()
    layers = next(d.value for d in at.dataframe if "weight std" in d.value)
    assert "None" not in layers.astype(str).to_numpy() and "nan" not in layers.astype(str).to_numpy()
    assert layers["layer"].tolist() == ["linear 0", "activation relu", "linear 2"]
    at.session_state["inspect-tab"] = "Spectra"
    at.run()
    spectra = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    names = [t.get("name") for fig in spectra for t in fig["data"] if t.get("mode") == "lines+markers"]
    assert names == ["linear 0 (7×5)", "linear 2 (3×7)"]


def test_a_cnn_state_dict_gets_an_input_size_control() -> None:
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    at = _upload(_app(), "cnn.pt", _bytes(cnn.state_dict()))
    at.selectbox(key="inspect-activation").set_value("relu").run()
    size = at.number_input(key="inspect-input-size")
    assert size.value == 32
    size.set_value(28).run()
    assert not at.exception and not at.warning
    assert any("(1, 28, 28)" in i.value for i in at.info)  # the loader's note states the size in use
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, 3))
    at = _upload(_app(), "flat.pt", _bytes(lenet.state_dict()))
    at.number_input(key="inspect-input-size").set_value(28).run()
    assert at.warning and "does not fit" in at.warning[0].value and not at.exception
    assert {m.label: m.value for m in at.metric}["Graph nodes"] == str(1 + 6 + 3)
    plain = _upload(_app(), "mlp.pt", _bytes(nn.Sequential(nn.Linear(3, 2)).state_dict()))
    assert not plain.number_input


def test_zoom_into_layers_from_the_page() -> None:
    at = _app()
    at.selectbox(key="inspect-example").set_value("mlp-784-128-64-10.pt").run()
    at.slider(key="inspect-layers").set_value((2, 3)).run()
    assert not at.exception
    assert "640 of 640 edges drawn" in str(at.get("plotly_chart")[0].proto.spec)


def test_the_summary_is_computed_once_per_network_across_reruns(monkeypatch) -> None:
    """Moving a graph control reruns the page; the summary (statistics and a power-law fit per layer) is cached."""
    import core.summary

    calls = []
    real = core.summary.summarize

    def counting(network, *args, **kwargs):
        calls.append(network.architecture.num_parameters)
        return real(network, *args, **kwargs)

    monkeypatch.setattr(core.summary, "summarize", counting)
    at = _app()
    torch.manual_seed(0)
    state = nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 3)).state_dict()
    at = _upload(at, "cached.pt", _bytes(state))
    parameters = 30 * 20 + 20 + 20 * 3 + 3
    assert calls.count(parameters) == 1
    at.slider(key="inspect-edges").set_value(200).run()
    at.toggle(key="inspect-normalise").set_value(False).run()
    assert not at.exception and calls.count(parameters) == 1
    assert f"{parameters:,}" in [m.value for m in at.metric]
