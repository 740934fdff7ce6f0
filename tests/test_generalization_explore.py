"""The Zoo explorer's predicted accuracy: core.explore.predicted_accuracy and the page's colouring by it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.explore import predicted_accuracy
from core.runs import load_run
from core.zoo import Zoo

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "assets" / "models" / "generalization-ng-gnn"
CNN_ZOO = ROOT / "assets" / "zoos" / "cnn-mnist"  # the zoo the bundled run was trained on


def test_predicted_accuracy_matches_the_run_and_leaves_unreadable_architectures_nan() -> None:
    run, zoo = load_run(RUN), Zoo.open(CNN_ZOO)
    rows = np.array([5, 0, 17])
    got = predicted_accuracy(zoo, rows, run)
    direct = run.predict([zoo.network(int(r)) for r in rows], "cpu").numpy()  # the path `predict` takes
    assert np.allclose(got, direct, atol=1e-5)
    wild = Zoo.open(ROOT / "assets" / "zoos" / "cnn-wild")  # kernels up to 7×7: this run reads 3×3 only
    from core.explore import unreadable_reason

    unreadable = {g for g, a in wild.architectures.items() if unreadable_reason(a, run)}
    values = predicted_accuracy(wild, np.arange(len(wild)), run)
    assert unreadable and np.array_equal(np.isnan(values), wild.table["group"].isin(unreadable).to_numpy())


def test_zoo_explorer_colours_by_predicted_accuracy_and_error() -> None:
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300)
    at.run()
    at.switch_page("views/zoo_explorer.py").run()
    at.selectbox(key="explorer-embedder").set_value("weight statistics (no model)").run()
    at.multiselect(key="explorer-zoos").set_value(["cnn-mnist"]).run()
    at.selectbox(key="explorer-predictor").set_value("generalization-ng-gnn").run()
    assert not at.exception and not at.error
    assert "mean absolute error" in " ".join(c.value for c in at.caption)
    for colour in ("predicted_accuracy", "prediction_error"):
        at.selectbox(key="explorer-colour").set_value(colour).run()
        assert not at.exception and not at.error


def test_predicted_accuracy_leaves_networks_that_diverged_nan(tmp_path: Path) -> None:
    """A zoo holding diverged networks (weights 1e13, NaN) still gets predictions for every other network."""
    import torch

    from core.zoo.store import write_zoo

    run, zoo = load_run(RUN), Zoo.open(CNN_ZOO)
    group = sorted(zoo.architectures)[0]
    members = np.flatnonzero(zoo.table["group"].to_numpy() == group)[:12]
    arch, flat = zoo.flat(members)
    flat = flat.clone()
    flat[3] *= 1e13
    flat[5, 0] = float("nan")
    rows = [{"index": i, "group": group, "test_accuracy": 0.5} for i in range(12)]
    write_zoo(tmp_path / "zoo", generator="test-diverged", options={}, architectures={group: arch},
              groups={group: (list(range(12)), flat)}, rows=rows, splits_by_index=dict.fromkeys(range(12), "test"))
    values = predicted_accuracy(Zoo.open(tmp_path / "zoo"), np.arange(12), run)
    assert np.array_equal(np.flatnonzero(np.isnan(values)), [3, 5])
    healthy = [i for i in range(12) if i not in (3, 5)]
    assert np.allclose(values[healthy], predicted_accuracy(zoo, members[healthy], run), atol=1e-5)
    assert torch.isfinite(torch.as_tensor(values[healthy])).all()


def test_predicted_accuracy_reads_only_the_rows_asked_for(monkeypatch) -> None:
    """The graph set is built from the asked rows: the zoo's parameters of no other network are read."""
    run, zoo = load_run(RUN), Zoo.open(CNN_ZOO)
    rows = np.array([5, 0, 17])
    read: list[int] = []
    real_flat = zoo.flat
    monkeypatch.setattr(zoo, "flat", lambda r: (read.extend(np.asarray(r).tolist()), real_flat(r))[1])
    values = predicted_accuracy(zoo, rows, run)
    assert set(read) == set(rows.tolist()) and np.isfinite(values).all()  # (the usability check reads them too)


def test_graph_set_from_zoo_keeps_the_asked_rows_of_its_split() -> None:
    from core.runs import graph_set_from_zoo

    run, zoo = load_run(RUN), Zoo.open(CNN_ZOO)
    test_rows = zoo.split_indices("test")
    asked = np.concatenate([test_rows[:4], zoo.split_indices("train")[:3]])[::-1]
    data = graph_set_from_zoo(zoo, "test", run.task, rows=asked)
    got = np.sort(np.concatenate([g.index.numpy() for g in data.groups]))
    assert np.array_equal(got, np.sort(test_rows[:4]))
