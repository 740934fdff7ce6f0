"""INR editor and zoo explorer pages through AppTest, on the bundled zoos and models."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "main.py")


def _page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def test_zoo_explorer_default_embeds_the_digits_inr_zoo_with_the_bundled_embedder() -> None:
    at = _page("pages/zoo_explorer.py")
    assert not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "1,797 networks embedded with embed-ng-gnn" in captions


def test_zoo_explorer_statistics_embedding_and_colouring() -> None:
    at = _page("pages/zoo_explorer.py")
    at.selectbox(key="explorer-embedder").set_value("weight statistics (no model)").run()
    at.multiselect(key="explorer-zoos").set_value(["cnn-digits"]).run()
    at.selectbox(key="explorer-colour").set_value("test_accuracy").run()
    assert not at.exception and not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "256 networks embedded" in captions
    at.selectbox(key="explorer-projection").set_value("t-SNE").run()
    assert not at.exception and "projected with t-SNE" in " ".join(c.value for c in at.caption)


def test_zoo_explorer_mixed_architectures_need_a_model() -> None:
    at = _page("pages/zoo_explorer.py")
    at.selectbox(key="explorer-embedder").set_value("weight statistics (no model)").run()
    at.multiselect(key="explorer-zoos").set_value(["cnn-digits", "cnn-wild"]).run()
    assert at.error and "trained embedder" in at.error[0].value
    assert not at.exception


def test_zoo_explorer_rejects_a_missing_directory(tmp_path: Path) -> None:
    at = _page("pages/zoo_explorer.py")
    at.text_input(key="explorer-path").set_value(str(tmp_path)).run()
    assert at.error and "not a zoo directory" in at.error[0].value


def test_inr_editor_edits_a_zoo_inr() -> None:
    at = _page("pages/inr_editor.py")
    assert not at.error and not at.warning, [w.value for w in at.warning]
    values = {m.label: m.value for m in at.metric}
    assert float(values["MSE edited vs target"]) < float(values["MSE unedited vs target"])
    assert values["Server latency"].endswith("ms")
    at.selectbox(key="editor-label").set_value(3).run()
    at.slider(key="editor-resolution").set_value(32).run()
    assert not at.exception and len(at.metric) == 3


def test_zoo_explorer_places_an_uploaded_inr_among_its_neighbours() -> None:
    at = _page("pages/zoo_explorer.py")
    at.toggle(key="explorer-place").set_value(True).run()
    at.selectbox(key="explorer-example").set_value("siren-mnist-3.pth").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert len(table) == 5 and "similarity" in table
    at.selectbox(key="explorer-example").set_value("cnn-digits-residual.safetensors").run()
    assert at.error and "embedder" in at.error[0].value


def test_preferred_embedder_is_the_one_trained_on_the_zoo() -> None:
    from app.resources import preferred_embedder, runs_for

    embedders = {"weight statistics (no model)": None, **{f"{n} (embed)": str(p) for n, p in runs_for("embed").items()}}
    names = list(embedders)
    assert names[preferred_embedder(embedders, "assets/zoos/cnn-digits")] == "embed-cnn-ng-gnn (embed)"
    assert names[preferred_embedder(embedders, "assets/zoos/digits-inr")] == "embed-ng-gnn (embed)"
    assert preferred_embedder({"weight statistics (no model)": None}, "assets/zoos/digits-inr") == 0


def test_inr_editor_edits_an_uploaded_inr_and_warns_about_its_architecture() -> None:
    at = _page("pages/inr_editor.py")
    at.radio(key="editor-inr-source").set_value("Upload").run()
    assert not at.exception, at.exception
    assert at.radio(key="editor-source").value == "Upload"
    data = (ROOT / "assets" / "examples" / "siren-mnist-3.pth").read_bytes()
    at.file_uploader(key="editor-upload").set_value(("siren-mnist-3.pth", data, "application/octet-stream")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # a 2–32–32–1 MNIST SIREN given to an editor trained on the 2–16–16–1 digits zoo: one warning line says so
    assert len(at.warning) == 1 and "2–32–32–1" in at.warning[0].value and "2–16–16–1" in at.warning[0].value
    assert {m.label for m in at.metric} == {"MSE edited vs target", "MSE unedited vs target", "Server latency"}


def test_editor_mismatch_names_the_resolution_of_a_zoo_inr() -> None:
    from app.resources import editor_mismatch
    from core.network.spec import siren_architecture

    small = siren_architecture((16, 16))
    assert editor_mismatch([small], 8, small, 8, 8) is None
    line = editor_mismatch([small], 8, small, 8, 28)
    assert line and "28×28" in line and "8×8" in line and "architecture" not in line
    assert "render resolution 32" in editor_mismatch([small], 8, small, 32, 8)
