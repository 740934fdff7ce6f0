"""The on-disk cache of zoo embeddings: hits equal fresh embeddings, stale or bad entries are recomputed."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from core import embedding_cache
from core.embedding_cache import BUNDLED, cached_embed_zoo, entry_key, user_cache_dir
from core.explore import embed_zoo
from core.runs import load_run
from core.zoo import Zoo
from tests.zoo_helpers import tiny_digits_inr_zoo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory) -> Path:
    return tiny_digits_inr_zoo(tmp_path_factory.mktemp("zoo") / "digits-tiny", 24)


@pytest.fixture(scope="module")
def embedder():
    return load_run(ROOT / "assets" / "models" / "embed-ng-gnn")


def test_a_miss_is_computed_and_written_then_read_back(tiny_zoo: Path, embedder, tmp_path: Path) -> None:
    zoo = Zoo.open(tiny_zoo)
    first, source = cached_embed_zoo(zoo, embedder, cache_dirs=[tmp_path])
    assert source == "computed" and len(list(tmp_path.glob("*.npz"))) == 1
    fresh = embed_zoo(zoo, embedder)
    np.testing.assert_array_equal(first.vectors, fresh.vectors)
    again, source = cached_embed_zoo(Zoo.open(tiny_zoo), embedder, cache_dirs=[tmp_path])
    assert source == "cache"
    np.testing.assert_array_equal(again.vectors, fresh.vectors)
    np.testing.assert_array_equal(again.rows, fresh.rows)


def test_an_entry_the_code_no_longer_reproduces_is_recomputed(tiny_zoo: Path, embedder, tmp_path: Path) -> None:
    zoo = Zoo.open(tiny_zoo)
    cached_embed_zoo(zoo, embedder, cache_dirs=[tmp_path])
    path = next(tmp_path.glob("*.npz"))
    with np.load(path) as npz:
        stale = {k: npz[k] for k in npz.files}
    stale["vectors"] = stale["vectors"] * 1.01  # as if written by older model code
    with open(path, "wb") as fh:
        np.savez(fh, **stale)
    got, source = cached_embed_zoo(zoo, embedder, cache_dirs=[tmp_path])
    assert source == "computed"
    np.testing.assert_array_equal(got.vectors, embed_zoo(zoo, embedder).vectors)
    assert cached_embed_zoo(zoo, embedder, cache_dirs=[tmp_path])[1] == "cache"  # and the entry was rewritten


class _Boom:
    """Unpickling this writes a file: the cache must never unpickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("executed",))


@pytest.mark.parametrize("damage", ["truncated", "pickle", "rows out of range", "nan", "not a zip", "bomb"])
def test_bad_entries_are_ignored_and_never_unpickled(damage: str, tiny_zoo: Path, tmp_path: Path) -> None:
    zoo = Zoo.open(tiny_zoo)
    cache = tmp_path / "cache"
    cached_embed_zoo(zoo, None, cache_dirs=[cache])
    path = next(cache.glob("*.npz"))
    good = path.read_bytes()
    marker = tmp_path / "marker"
    with np.load(path) as npz:
        parts = {k: npz[k] for k in npz.files}
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "pickle":
        parts["left_out"] = np.array([_Boom(str(marker))], dtype=object)
        with open(path, "wb") as fh:
            np.savez(fh, **parts)
    elif damage == "rows out of range":
        parts["rows"] = parts["rows"] + len(zoo.table)
        with open(path, "wb") as fh:
            np.savez(fh, **parts)
    elif damage == "nan":
        parts["vectors"][0, 0] = np.nan
        with open(path, "wb") as fh:
            np.savez(fh, **parts)
    elif damage == "bomb":  # 38 MB of zeros that compress to a few kB: refused before unpacking
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **{**parts, "vectors": np.zeros((len(zoo.table), 400_000), np.float32)})
        assert path.stat().st_size < 200_000
        tracemalloc.start()
        assert embedding_cache._read(path, len(zoo.table)) is None
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 5_000_000, peak
    else:
        path.write_bytes(b"\x00" * 100)
    got, source = cached_embed_zoo(zoo, None, cache_dirs=[cache])
    assert source == "computed" and not marker.exists()
    np.testing.assert_array_equal(got.vectors, embed_zoo(zoo, None).vectors)
    assert path.read_bytes() == good  # rewritten whole


def test_the_key_follows_the_files_not_their_place(tiny_zoo: Path, embedder, tmp_path: Path) -> None:
    zoo = Zoo.open(tiny_zoo)
    moved = tmp_path / "moved"
    shutil.copytree(tiny_zoo, moved)
    assert entry_key(Zoo.open(moved), embedder) == entry_key(zoo, embedder)
    assert entry_key(zoo, None) != entry_key(zoo, embedder)
    other = load_run(ROOT / "assets" / "models" / "embed-mnist5k-ng-gnn")
    assert entry_key(zoo, other) != entry_key(zoo, embedder)
    table = moved / "table.csv"
    table.write_text(table.read_text() + "\n")  # any byte of any file changes the key
    assert entry_key(Zoo.open(moved), embedder) != entry_key(zoo, embedder)


def test_an_unwritable_cache_only_costs_time(tiny_zoo: Path, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    got, source = cached_embed_zoo(Zoo.open(tiny_zoo), None, cache_dirs=[not_a_dir])
    assert source == "computed" and len(got.rows) == 24


def test_only_the_most_recently_used_entries_are_kept(tiny_zoo: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding_cache, "MAX_ENTRIES", 2)
    old, used = tmp_path / "old.npz", tmp_path / "used.npz"
    for i, p in enumerate((old, used)):
        p.write_bytes(b"")
        os.utime(p, (1_000_000 + i, 1_000_000 + i))
    cached_embed_zoo(Zoo.open(tiny_zoo), None, cache_dirs=[tmp_path])
    left = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert len(left) == 2 and "used.npz" in left and "old.npz" not in left


def test_the_cache_directory_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WSE_CACHE_DIR", str(tmp_path))
    assert user_cache_dir() == tmp_path
    monkeypatch.setenv("WSE_CACHE_DIR", "off")
    assert user_cache_dir() is None
    monkeypatch.delenv("WSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / "weight-space-explorer" / "embeddings"


def test_embedding_reports_progress_per_batch(tiny_zoo: Path, embedder) -> None:
    seen: list[float] = []
    embed_zoo(Zoo.open(tiny_zoo), embedder, progress=seen.append, batch_size=5)
    assert len(seen) == 5 and seen == sorted(seen) and seen[-1] == 1.0


def test_progress_stays_within_one_when_a_group_fails_midway(tiny_zoo: Path, embedder,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A group that fails after some batches is counted again as left out: the bar must not pass 1."""
    from core import explore

    def fails_after_one_batch(run, arch, flat, batch_size, advance=None):
        advance(len(flat) // 2)
        raise RuntimeError("this model cannot read it")

    monkeypatch.setattr(explore, "_run_embeddings", fails_after_one_batch)
    seen: list[float] = []
    got = embed_zoo(Zoo.open(tiny_zoo), embedder, progress=seen.append)
    assert seen[-1] == 1.0 and max(seen) <= 1.0
    assert len(got.rows) == 0 and "this model cannot read it" in got.left_out[0]


def _bundled_pairs() -> list[tuple[Path, Path]]:
    pairs = []
    for run in sorted((ROOT / "assets" / "models").glob("embed-*")):
        zoo = ROOT / json.loads((run / "config.json").read_text())["zoo"]
        if (zoo / "manifest.json").is_file():
            pairs.append((zoo, run))
    return pairs


def test_the_bundled_entries_are_current_and_complete() -> None:
    """Every bundled embedder has an entry for the zoo it was trained on, today's code reproduces it, and no
    other file sits in assets/embeddings (rerun the `--cache` lines of assets/models/build.sh after retraining)."""
    keys = set()
    assert _bundled_pairs()
    for zoo_dir, run_dir in _bundled_pairs():
        zoo, run = Zoo.open(zoo_dir), load_run(run_dir)
        keys.add(name := f"{entry_key(zoo, run)}.npz")
        assert (BUNDLED / name).is_file(), f"{run_dir.name} on {zoo_dir.name}: no bundled entry"
        got, source = cached_embed_zoo(zoo, run, cache_dirs=[BUNDLED])
        assert source == "bundled cache", f"{run_dir.name} on {zoo_dir.name}: the bundled entry is stale"
        assert len(got.rows) == len(zoo.table) and not got.left_out
    assert {p.name for p in BUNDLED.iterdir()} == keys
