"""Sharded zoo builds: `--shard I/N` builds disjoint chunks, `zoo merge` (or rank 0 under torchrun) finishes them
into a zoo byte-identical to the one-process build with the same options; incomplete or mixed shards are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.zoo import Zoo, ZooError, build_inr_zoo
from core.zoo.store import merge_shards, parse_shard
from tests.cli_runner import run_cli_ok

ROOT = Path(__file__).resolve().parents[1]
TINY = {"images": "digits", "count": 8, "steps": 20, "hidden": (8, 8), "chunk_size": 2, "workers": 1,
        "target_psnr": None, "progress": False}
CLI_TINY = ["--images", "digits", "--count", "8", "--steps", "20", "--hidden", "8,8", "--chunk-size", "2",
            "--workers", "1", "--target-psnr", "1000"]
ZOO_FILES = ("manifest.json", "table.csv", "params-siren.safetensors")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "zoo"
    build_inr_zoo(out, **{**TINY, "target_psnr": 1000.0})
    return out


def _same_zoo(a: Path, b: Path) -> None:
    assert sorted(p.name for p in b.iterdir()) == sorted(ZOO_FILES), "chunks and shard records removed"
    for name in ZOO_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_shards_in_their_own_directories_merge_to_the_one_process_zoo(one_process: Path, tmp_path: Path) -> None:
    for i in range(2):
        assert build_inr_zoo(tmp_path / f"s{i}", shard=(i, 2), **{**TINY, "target_psnr": 1000.0}) is None
    # round-robin: shard 0 holds chunks 0 and 2, shard 1 chunks 1 and 3 — disjoint
    assert sorted(p.name for p in (tmp_path / "s0" / "chunks").iterdir()) == ["chunk-00000.safetensors",
                                                                            "chunk-00002.safetensors"]
    assert sorted(p.name for p in (tmp_path / "s1" / "chunks").iterdir()) == ["chunk-00001.safetensors",
                                                                            "chunk-00003.safetensors"]
    out = run_cli_ok("zoo", "merge", str(tmp_path / "merged"), str(tmp_path / "s0"), str(tmp_path / "s1"))
    assert "8 networks" in out.stdout
    _same_zoo(one_process, tmp_path / "merged")


def test_torchrun_processes_build_and_merge_one_directory(one_process: Path, tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "core", "zoo", "build", "inr", *CLI_TINY, "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(f"zoo {out}: 8 networks") == 1, "rank 0 alone merges and prints"
    _same_zoo(one_process, out)


def test_incomplete_or_mixed_shards_are_refused(tmp_path: Path) -> None:
    small = {**TINY, "count": 2, "steps": 2, "chunk_size": 1}
    build_inr_zoo(tmp_path / "shared", shard=(0, 2), **small)
    with pytest.raises(ZooError, match="shards 1/2 are missing"):
        merge_shards(tmp_path / "shared")
    build_inr_zoo(tmp_path / "other", shard=(1, 2), **{**small, "seed": 1})
    with pytest.raises(ZooError, match="another build"):
        merge_shards(tmp_path / "merged", [tmp_path / "shared", tmp_path / "other"])
    with pytest.raises(ZooError, match="unfinished build with other options"):
        build_inr_zoo(tmp_path / "shared", shard=(1, 2), **{**small, "seed": 1})
    with pytest.raises(ZooError, match="delete the other shards"):
        build_inr_zoo(tmp_path / "shared", shard=(1, 2), overwrite=True, **small)
    build_inr_zoo(tmp_path / "shared", shard=(1, 2), **small)
    zoo = merge_shards(tmp_path / "shared")
    assert (zoo / "manifest.json").exists() and not (zoo / "chunks").exists()
    with pytest.raises(ZooError, match="no finished shard"):
        merge_shards(tmp_path / "shared")


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/3"])
def test_bad_shard_specs(text: str) -> None:
    with pytest.raises(ZooError, match="shard"):
        parse_shard(text)
    assert parse_shard("1/3") == (1, 3)


def test_streamed_graph_sets_read_the_memory_map_and_match_the_copies(one_process: Path) -> None:
    """Training streams a split from the zoo's memory-mapped parameter file: same batches and extras as a copy."""
    import numpy as np
    import torch

    from core.runs import _extras_in_chunks, graph_set_from_zoo
    from core.tasks import build_task
    from core.zoo import Zoo

    zoo = Zoo.open(one_process)
    task = build_task("inr-edit", edit="erode", resolution=8)
    copied, streamed = (graph_set_from_zoo(zoo, "train", task, stream=s) for s in (False, True))
    shard = zoo.group_params("siren")
    assert streamed.groups[0].flat.data_ptr() == shard.data_ptr(), "the group reads the map, not a copy"
    assert len(streamed) == len(copied) == len(zoo.split_indices("train"))
    for a, b in zip(copied.batches(3, shuffle=True, generator=torch.Generator().manual_seed(1)),
                    streamed.batches(3, shuffle=True, generator=torch.Generator().manual_seed(1))):
        assert torch.equal(a.flat, b.flat) and torch.equal(a.index, b.index) and a.targets is b.targets is None
        assert all(torch.equal(a.extras[k], b.extras[k]) for k in a.extras)
    rows = zoo.split_indices("train")
    in_shard = torch.as_tensor(zoo.table["group_row"].to_numpy()[rows])
    chunked = _extras_in_chunks(task, zoo.architectures["siren"], lambda part: shard[in_shard[part]], zoo.table,
                                np.asarray(rows), chunk=2)  # several chunks, the last one short
    whole = task.extras(zoo.architectures["siren"], shard[in_shard], zoo.table, rows)
    assert chunked.keys() == whole.keys() and all(torch.allclose(chunked[k], whole[k]) for k in whole)


def test_shards_fitted_at_different_batch_sizes_merge(one_process: Path, tmp_path: Path) -> None:
    for i, batch in enumerate((1, 3)):  # e.g. two machines, each with the batch size that suits it
        build_inr_zoo(tmp_path / f"s{i}", shard=(i, 2), batch_size=batch, **{**TINY, "target_psnr": 1000.0})
    merged = merge_shards(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"])
    assert json.loads((merged / "manifest.json").read_text())["generator"]["options"]["batch_size"] is None
    assert torch.allclose(Zoo.open(merged).flat()[1], Zoo.open(one_process).flat()[1], atol=1e-6)
