"""core.explore: depth-free weight statistics for mixed zoos, and no network left out without a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.explore import depth_free_statistics, embed_networks, embed_zoo
from core.network.spec import mlp_architecture, siren_architecture

ROOT = Path(__file__).resolve().parents[1]
ZOOS = ROOT / "assets" / "zoos"


def test_depth_free_statistics_have_one_length_for_any_depth_and_width() -> None:
    torch.manual_seed(0)
    shapes = set()
    for arch in (siren_architecture((16, 16)), siren_architecture((32, 32, 32)), mlp_architecture([4, 3, 2])):
        feats = depth_free_statistics(arch, torch.randn(5, arch.num_parameters))
        assert np.isfinite(feats).all()
        shapes.add(feats.shape)
    assert shapes == {(5, 44)}


def test_depth_free_statistics_are_the_statistics_of_the_first_layer() -> None:
    arch = siren_architecture((16, 16))
    flat = torch.randn(3, arch.num_parameters, dtype=torch.float64)
    feats = depth_free_statistics(arch, flat)
    first_weight = flat[:, : 2 * 16]  # seq.0.weight [16, 2] comes first in the flat order
    assert np.allclose(feats[:, 0], first_weight.mean(1).numpy(), atol=1e-6)
    assert np.allclose(feats[:, 6], first_weight.max(1).values.numpy(), atol=1e-6)
    assert np.allclose(feats[:, -2], 3)  # three weight layers


@pytest.mark.parametrize("zoo_name", ["cnn-wild", "digits-inr"])
def test_statistics_embed_every_network(zoo_name: str) -> None:
    from core.zoo import Zoo

    zoo = Zoo.open(ZOOS / zoo_name)
    emb = embed_zoo(zoo)
    assert emb.left_out == [] and len(emb.rows) == len(zoo) and emb.vectors.shape == (len(zoo), 44)


def test_a_run_that_cannot_read_some_architectures_names_them_and_counts_every_network() -> None:
    from core.runs import load_run
    from core.zoo import Zoo

    run = load_run(ROOT / "assets" / "models" / "embed-cnn-ng-gnn")
    zoo = Zoo.open(ZOOS / "cnn-wild")
    emb = embed_zoo(zoo, run)
    left = sum(int(line.split(" networks")[0].replace(",", "")) for line in emb.left_out)
    assert emb.left_out and all("reads up to 3×3" in line for line in emb.left_out)
    assert len(emb.rows) + left == len(zoo)  # nothing dropped without a line saying so
    assert emb.vectors.shape == (len(emb.rows), 32) and (np.diff(emb.rows) > 0).all()


def test_an_uploaded_network_of_another_architecture_is_placed_with_statistics() -> None:
    from core.zoo import Zoo

    zoo = Zoo.open(ZOOS / "digits-inr")
    net = Zoo.open(ZOOS / "cnn-digits").network(0)
    assert embed_networks([net]).shape[1] == embed_zoo(zoo).vectors.shape[1]


def test_search_rows_by_column_value_and_free_text() -> None:
    import pandas as pd

    from core.errors import WeightSpaceError
    from core.explore import search_rows

    table = pd.DataFrame({"label": [3.0, 5.0, np.nan, 3.0], "zoo": ["digits-inr", "digits-inr", "cnn-wild", "x"]})
    assert search_rows(table, "label=3").tolist() == [True, False, False, True]
    assert search_rows(table, "label=3, zoo=x").tolist() == [False, False, False, True]
    assert search_rows(table, "WILD").tolist() == [False, False, True, False]
    assert not search_rows(table, "  ").any()
    with pytest.raises(WeightSpaceError, match="no column 'colour'"):
        search_rows(table, "colour=red")


def test_embedding_export_keeps_metadata_coordinates_and_vectors() -> None:
    import pandas as pd

    from core.explore import embedding_export

    table = pd.DataFrame({"label": [1, 2, 3]})
    out = embedding_export(table, np.arange(6.0).reshape(3, 2), np.ones((3, 4)))
    assert list(out.columns) == ["label", "x", "y", "emb_0", "emb_1", "emb_2", "emb_3"]
    assert out["y"].tolist() == [1.0, 3.0, 5.0]


def test_tsne_reports_its_progress_in_order_and_projects_as_without_it(capsys: pytest.CaptureFixture) -> None:
    from threadpoolctl import threadpool_limits

    from core.explore import project

    x = np.random.default_rng(0).normal(size=(40, 5))
    seen: list[tuple[float, str]] = []
    # one OpenMP thread: on busy shared cores t-SNE's threads spin against each other (0.2 s here, else up to 80 s)
    with threadpool_limits(1):
        with_progress = project(x, "t-SNE", seed=0, progress=lambda f, stage: seen.append((f, stage)))
        without = project(x, "t-SNE", seed=0)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any(stage.startswith("iteration 500 of") for _, stage in seen)  # one report per 50 iterations
    assert "[t-SNE]" not in capsys.readouterr().out  # scikit-learn's log became progress, not server output
    np.testing.assert_allclose(with_progress, without)


def test_a_tqdm_counter_written_to_the_progress_stream_becomes_fractions() -> None:
    """UMAP's epoch bar is a tqdm written to this stream with bar_format '{n}/{total}' (UMAP itself: numba compile)."""
    from tqdm import tqdm

    from core.explore import ProgressStream

    seen: list[float] = []
    epochs = [(r"(\d+)/(\d+)", lambda m: (int(m[1]) / int(m[2]), "epoch"))]
    stream = ProgressStream(epochs, lambda fraction, stage: seen.append(fraction))
    for _ in tqdm(range(8), file=stream, bar_format="{n}/{total}", mininterval=0, miniters=1):
        pass
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) >= 8
