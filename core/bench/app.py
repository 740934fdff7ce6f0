"""Server-side latency of what the app's pages compute (inspect, live edit, zoo projection)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from core.paths import BUNDLED_MODELS, BUNDLED_ZOOS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--zoo-embedding", action="store_true",
                        help="also time the Zoo explorer's MNIST-5k map: embedding the 5,000 INRs with the bundled "
                             "embedder afresh (once) against reading them from the on-disk cache as a new server does")


def _median_s(fn, repeats: int) -> float:
    fn()  # warm caches (layouts, imports) as a running server has them
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _inspect_first_view(net) -> None:
    """What the Inspect page computes when a checkpoint arrives: the summary (with α per layer) and the graph tab
    (the other tabs are computed when opened; reruns reuse the cached summary)."""
    from core.summary import summarize
    from core.viz import graph_figure

    summarize(net)
    graph_figure(net, max_edges=3000)


def _inspect_all_tabs(net) -> None:
    """The first view plus the Layers, Spectra and ESD content (every tab opened once)."""
    from core.spectral import layer_spectra
    from core.viz import esd_histograms, spectra_figure, weight_histograms

    _inspect_first_view(net)
    weight_histograms(net)
    spectra_figure(net)
    esd_histograms(layer_spectra(net))


def _zoo_embedding(repeats: int) -> dict[str, float]:
    """Seconds to embed the bundled MNIST-5k zoo with its embedder, once afresh and (median) from the cache, the
    file digests recomputed each time as in a newly started server."""
    import tempfile

    from core import embedding_cache
    from core.runs import load_run
    from core.zoo import Zoo

    zoo, run_ = Zoo.open(BUNDLED_ZOOS / "mnist5k-inr"), load_run(BUNDLED_MODELS / "embed-mnist5k-ng-gnn")
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        _, source = embedding_cache.cached_embed_zoo(zoo, run_, cache_dirs=[Path(cache)])
        computed = time.perf_counter() - t0
        assert source == "computed"

        def read() -> None:
            embedding_cache._digests.clear()
            assert embedding_cache.cached_embed_zoo(zoo, run_, cache_dirs=[Path(cache)])[1] == "cache"

        return {"zoo_embed_mnist5k_computed_s": computed, "zoo_embed_mnist5k_cached_s": _median_s(read, repeats)}


def run(args: argparse.Namespace) -> int:
    from torch import nn

    from core.bench.machine import machine_info
    from core.explore import project
    from core.io import network_from_module
    from core.network import Network, siren_architecture

    torch.manual_seed(0)
    results: dict[str, float | str] = {}
    siren = Network.from_flat(siren_architecture(), torch.randn(siren_architecture().num_parameters) * 0.1)
    results["inspect_inr_2_32_32_1_first_view_s"] = _median_s(lambda: _inspect_first_view(siren), args.repeats)
    results["inspect_inr_2_32_32_1_all_tabs_s"] = _median_s(lambda: _inspect_all_tabs(siren), args.repeats)
    mlp = network_from_module(nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                                            nn.Linear(64, 10)))
    results["inspect_mlp_784_128_64_10_first_view_s"] = _median_s(lambda: _inspect_first_view(mlp), args.repeats)
    results["inspect_mlp_784_128_64_10_all_tabs_s"] = _median_s(lambda: _inspect_all_tabs(mlp), args.repeats)
    editors = sorted(BUNDLED_MODELS.glob("inr-edit-*")) if BUNDLED_MODELS.is_dir() else []
    if editors:
        from core.runs import load_run

        run_ = load_run(editors[0])
        results["live_edit_s"] = _median_s(lambda: run_.edit([siren], resolution=28), args.repeats)
        results["live_edit_model"] = editors[0].name
    emb = np.random.default_rng(0).normal(size=(5000, 32)).astype(np.float32)
    results["zoo_pca_5000_s"] = _median_s(lambda: project(emb, "PCA"), args.repeats)
    if args.zoo_embedding:
        results.update(_zoo_embedding(args.repeats))
    results["machine"] = machine_info()["summary"]
    if args.json:
        print(json.dumps(results))
    else:
        print(f"App server time, median of {args.repeats} ({results['machine']}):")
        for k, v in results.items():
            if isinstance(v, float):
                print(f"  {k:<40} {v * 1000:8.1f} ms")
        if "live_edit_model" in results:
            print(f"  (live edit with {results['live_edit_model']})")
    return 0
