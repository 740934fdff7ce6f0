"""INR editor and zoo explorer pages through AppTest, on the bundled zoos and models."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from app.resources import training_resolution

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "main.py")


def _page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def test_zoo_explorer_default_embeds_the_digits_inr_zoo_with_the_bundled_embedder() -> None:
    at = _page("views/zoo_explorer.py")
    assert not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "1,797 networks embedded with embed-ng-gnn" in captions
    assert "Embeddings read from the bundled cache (digits-inr)." in captions  # instant on a fresh server


def test_zoo_explorer_embedder_follows_the_chosen_zoo() -> None:
    at = _page("views/zoo_explorer.py")
    assert at.selectbox(key="explorer-embedder").value == "embed-ng-gnn (embed)"
    at.multiselect(key="explorer-zoos").set_value(["cnn-digits"]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="explorer-embedder").value == "embed-cnn-ng-gnn (embed)"
    assert "256 networks embedded with embed-cnn-ng-gnn" in " ".join(c.value for c in at.caption)
    at.multiselect(key="explorer-zoos").set_value(["digits-inr"]).run()
    assert at.selectbox(key="explorer-embedder").value == "embed-ng-gnn (embed)"
    # an embedder the user chose stays when the zoos change
    at.selectbox(key="explorer-embedder").set_value("weight statistics (no model)").run()
    at.multiselect(key="explorer-zoos").set_value(["cnn-digits"]).run()
    assert at.selectbox(key="explorer-embedder").value == "weight statistics (no model)"


def test_zoo_explorer_statistics_embedding_and_colouring() -> None:
    at = _page("views/zoo_explorer.py")
    at.selectbox(key="explorer-embedder").set_value("weight statistics (no model)").run()
    at.multiselect(key="explorer-zoos").set_value(["cnn-digits"]).run()
    at.selectbox(key="explorer-colour").set_value("test_accuracy").run()
    assert not at.exception and not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "256 networks embedded" in captions
    at.selectbox(key="explorer-projection").set_value("t-SNE").run()
    assert not at.exception and "projected with t-SNE" in " ".join(c.value for c in at.caption)


def _plotted(at: AppTest) -> dict[str, int]:
    """Points per trace name of the page's scatter plot."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {str(t.get("name")): _length(t.get("x")) for t in spec["data"]}


def _length(values) -> int:
    """Length of a plotly data array, plain or base64-typed ({"dtype", "bdata"})."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values or [])


def test_zoo_explorer_mixes_zoos_of_any_architecture_with_weight_statistics() -> None:
    at = _page("views/zoo_explorer.py")
    at.selectbox(key="explorer-embedder").set_value("weight statistics (no model)").run()
    at.multiselect(key="explorer-zoos").set_value(["digits-inr", "cnn-digits", "cnn-wild"]).run()
    assert not at.exception and not at.error and not at.warning, [e.value for e in at.error]
    assert "2,113 networks embedded" in " ".join(c.value for c in at.caption)
    at.selectbox(key="explorer-colour").set_value("label").run()
    assert not at.exception
    points = _plotted(at)
    assert sum(points.values()) == 2113 and points["none"] == 316  # the CNNs have no label: shown, not dropped
    assert "316 networks have no label (256 of cnn-digits, 60 of cnn-wild)" in " ".join(c.value for c in at.caption)
    at.selectbox(key="explorer-colour").set_value("test_accuracy").run()
    points = _plotted(at)
    assert sum(points.values()) == 2113 and points["no test_accuracy"] == 1797


def test_zoo_explorer_names_the_networks_an_embedder_cannot_read() -> None:
    at = _page("views/zoo_explorer.py")
    at.multiselect(key="explorer-zoos").set_value(["cnn-wild"]).run()
    at.selectbox(key="explorer-embedder").set_value("embed-cnn-ng-gnn (embed)").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.warning and "cnn-wild" in at.warning[0].value and "reads up to 3×3" in at.warning[0].value
    assert "4 networks embedded" in " ".join(c.value for c in at.caption)
    at.selectbox(key="explorer-embedder").set_value("embed-ng-gnn (embed)").run()
    assert at.error and "cannot read any network" in at.error[0].value and not at.exception


def test_zoo_explorer_rejects_a_missing_directory(tmp_path: Path) -> None:
    at = _page("views/zoo_explorer.py")
    at.text_input(key="explorer-path").set_value(str(tmp_path)).run()
    assert at.error and "not a zoo directory" in at.error[0].value


def test_inr_editor_edits_a_zoo_inr() -> None:
    at = _page("views/inr_editor.py")
    assert not at.error and not at.warning, [w.value for w in at.warning]
    values = {m.label: m.value for m in at.metric}
    assert float(values["MSE edited vs target"]) < float(values["MSE unedited vs target"])
    assert float(values["Intensity-only MSE"]) < float(values["MSE unedited vs target"])
    assert re.fullmatch(r"\d+ ms \((cold|warm)\)", values["Edit latency"])
    assert "difference |edited − original|" in str(at.get("image")[0].proto)
    editor = at.selectbox(key="editor-run").value
    slider = at.slider(key=f"editor-resolution-{editor}")
    assert slider.value == training_resolution(ROOT / "assets" / "models" / editor)  # renders as it was trained
    at.selectbox(key="editor-label").set_value(3).run()
    slider.set_value(32).run()
    assert not at.exception and len(at.metric) == 4
    assert {m.label: m.value for m in at.metric}["Edit latency"].endswith("(warm)")  # the same architecture again


def test_editors_trained_at_the_highest_resolution_come_first(tmp_path: Path) -> None:
    from app.resources import editors_by_resolution

    runs = {}
    for name, resolution in (("inr-edit-dilate-ng-gnn", 8), ("inr-edit-dilate-mnist5k-ng-gnn", 28),
                             ("inr-edit-erode-ng-gnn", 8), ("inr-edit-erode-mnist5k-ng-gnn", 28)):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "config.json").write_text(json.dumps({"task": "inr-edit",
                                                            "task_options": {"resolution": resolution}}))
    assert list(editors_by_resolution(runs)) == ["inr-edit-dilate-mnist5k-ng-gnn", "inr-edit-erode-mnist5k-ng-gnn",
                                                 "inr-edit-dilate-ng-gnn", "inr-edit-erode-ng-gnn"]


def test_zoo_explorer_places_an_uploaded_inr_among_its_neighbours() -> None:
    at = _page("views/zoo_explorer.py")
    at.toggle(key="explorer-place").set_value(True).run()
    at.selectbox(key="explorer-example").set_value("siren-mnist-3.pth").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    tables = [d.value for d in at.dataframe if "similarity" in d.value]
    assert len(tables) == 1 and len(tables[0]) == 5
    assert _plotted(at)["your network"] == 1  # marked on the map
    at.selectbox(key="explorer-example").set_value("cnn-digits-residual.safetensors").run()
    assert at.error and "embedder" in at.error[0].value


def test_preferred_embedder_is_the_one_trained_on_the_zoo() -> None:
    from app.resources import preferred_embedder, runs_for

    embedders = {"weight statistics (no model)": None, **{f"{n} (embed)": str(p) for n, p in runs_for("embed").items()}}
    names = list(embedders)
    assert names[preferred_embedder(embedders, "assets/zoos/cnn-digits")] == "embed-cnn-ng-gnn (embed)"
    assert names[preferred_embedder(embedders, "assets/zoos/digits-inr")] == "embed-ng-gnn (embed)"
    assert names[preferred_embedder(embedders, "assets/zoos/mnist5k-inr")] == "embed-mnist5k-ng-gnn (embed)"
    assert preferred_embedder({"weight statistics (no model)": None}, "assets/zoos/digits-inr") == 0


def test_inr_editor_edits_an_uploaded_inr_and_warns_about_its_architecture() -> None:
    at = _page("views/inr_editor.py")
    at.selectbox(key="editor-run").set_value("inr-edit-dilate-ng-gnn").run()  # a digits editor, whatever the default
    at.radio(key="editor-inr-source").set_value("Upload").run()
    assert not at.exception, at.exception
    assert at.radio(key="editor-source").value == "Upload"
    data = (ROOT / "assets" / "examples" / "siren-mnist-3.pth").read_bytes()
    at.file_uploader(key="editor-upload").set_value(("siren-mnist-3.pth", data, "application/octet-stream")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # a 2–32–32–1 MNIST SIREN given to an editor trained on the 2–16–16–1 digits zoo: one warning line says so
    assert len(at.warning) == 1 and "2–32–32–1" in at.warning[0].value and "2–16–16–1" in at.warning[0].value
    assert {m.label for m in at.metric} == {"MSE edited vs target", "MSE unedited vs target", "Intensity-only MSE",
                                             "Edit latency"}


def test_editor_mismatch_names_the_resolution_of_a_zoo_inr() -> None:
    from app.resources import editor_mismatch
    from core.network.spec import siren_architecture

    small = siren_architecture((16, 16))
    assert editor_mismatch([small], 8, small, 8, 8) is None
    line = editor_mismatch([small], 8, small, 8, 28)
    assert line and "28×28" in line and "8×8" in line and "architecture" not in line
    assert "render resolution 32" in editor_mismatch([small], 8, small, 32, 8)


def test_the_toolbar_has_no_deploy_button() -> None:
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "minimal"


def test_zoo_explorer_search_rings_matches_and_offers_a_download() -> None:
    import pandas as pd

    at = _page("views/zoo_explorer.py")
    at.text_input(key="explorer-search").set_value("label=3").run()
    assert not at.exception and not at.error
    expected = int((pd.read_csv(ROOT / "assets" / "zoos" / "digits-inr" / "table.csv")["label"] == 3).sum())
    assert _plotted(at)["search: label=3"] == expected > 0
    assert f"Search matches {expected:,} networks" in " ".join(c.value for c in at.caption)
    assert any(len(d.value) == expected and (d.value["label"] == 3).all() for d in at.dataframe)
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("CSV" in label for label in labels) and any("Parquet" in label for label in labels)
    at.text_input(key="explorer-search").set_value("nosuchcolumn=1").run()
    assert at.error and "no column 'nosuchcolumn'" in at.error[0].value and not at.exception


def test_difference_image_is_white_where_the_edit_changed_most() -> None:
    import torch

    from core.viz.images import difference_image

    before = torch.zeros(4, 4)
    after = before.clone()
    after[1, 2], after[0, 0] = 0.5, -0.25
    diff, peak = difference_image(before, after)
    assert peak == 0.5 and diff[1, 2] == 1.0 and diff[0, 0] == 0.5 and diff.sum() == 1.5


def test_zoo_explorer_keeps_a_projection_for_the_return(monkeypatch) -> None:
    """t-SNE runs once per embedding, method and seed: switching to PCA and back, or leaving the page and coming
    back, shows the kept map instead of running it again."""
    import core.explore

    runs = []
    real = core.explore.project

    def counting(x, method="PCA", seed=0, progress=None):
        runs.append((method, seed, progress is not None))
        return real(x, method, seed, progress)

    monkeypatch.setattr(core.explore, "project", counting)
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    # the explorer opens on the small cnn-wild zoo (60 networks), weight statistics, t-SNE with seed 7
    for key, value in (("explorer-zoos", ["cnn-wild"]), ("explorer-embedder", "weight statistics (no model)"),
                       ("explorer-seed", 7), ("explorer-projection", "t-SNE")):
        at.session_state[key] = value
    at.switch_page("views/zoo_explorer.py").run()
    assert not at.exception and ("t-SNE", 7, True) in runs  # with a progress callback (the page's progress bar)
    before = _plotted(at)
    at.selectbox(key="explorer-projection").set_value("PCA").run()
    at.switch_page("views/inspect.py").run()
    at.switch_page("views/zoo_explorer.py").run()
    at.selectbox(key="explorer-projection").set_value("t-SNE").run()
    assert not at.exception and runs.count(("t-SNE", 7, True)) == 1 and _plotted(at) == before


def test_no_pages_folder_beside_the_entry_point() -> None:
    """Streamlit shows a `pages/` folder next to the entry point in the sidebar until the first run reaches
    st.navigation, and a click there runs that page without app/main.py (layout, caption, error boundary)."""
    assert not (ROOT / "app" / "pages").exists()
    listed = re.findall(r'st\.Page\("([^"]+)"', (ROOT / "app" / "main.py").read_text())
    assert sorted(listed) == sorted(f"views/{p.name}" for p in (ROOT / "app" / "views").glob("[!_]*.py"))
