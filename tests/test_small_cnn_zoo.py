"""The Small CNN Zoo reader on a synthetic zoo written in the published TF layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.errors import CheckpointError
from core.graph import to_graph
from core.io import read_small_cnn_zoo

SHAPES = [("sequential/conv2d/kernel:0", (3, 3, 1, 16)), ("sequential/conv2d/bias:0", (16,)),
          ("sequential/conv2d_1/kernel:0", (3, 3, 16, 16)), ("sequential/conv2d_1/bias:0", (16,)),
          ("sequential/conv2d_2/kernel:0", (3, 3, 16, 16)), ("sequential/conv2d_2/bias:0", (16,)),
          ("sequential/dense/kernel:0", (16, 10)), ("sequential/dense/bias:0", (10,))]


def write_zoo(directory: Path, n: int = 6) -> list[dict[str, np.ndarray]]:
    """Write n random nets (two steps each, like the real zoo's checkpoints) and return the final ones."""
    rng = np.random.default_rng(0)
    rows, metrics, layout, start = [], [], [], 0
    for name, shape in SHAPES:
        size = int(np.prod(shape))
        layout.append({"varname": name, "start_idx": start, "end_idx": start + size, "size": size, "shape": str(shape)})
        start += size
    finals = []
    for i in range(n):
        for step in (0, 86):
            tensors = {name: rng.normal(size=shape).astype(np.float32) for name, shape in SHAPES}
            rows.append(np.concatenate([t.reshape(-1) for t in tensors.values()]))
            metrics.append({"step": step, "test_accuracy": rng.uniform(),
                            "config.activation": "relu" if i % 2 else "tanh"})
            if step == 86:
                finals.append(tensors)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "weights.npy", np.stack(rows))
    pd.DataFrame(layout).to_csv(directory / "layout.csv", index=False)
    pd.DataFrame(metrics).to_csv(directory / "metrics.csv.gz", index=False)
    return finals


def test_reads_final_step_in_torch_layout(tmp_path: Path) -> None:
    finals = write_zoo(tmp_path / "zoo")
    zoo = read_small_cnn_zoo(tmp_path / "zoo")
    assert len(zoo) == 6 and zoo.flat.shape == (6, 4970)
    assert (zoo.table["step"] == 86).all()
    net = zoo.network(1)
    tf_kernel = finals[1]["sequential/conv2d_1/kernel:0"]  # HWIO
    assert torch.equal(net.params["conv2d_1.weight"], torch.from_numpy(tf_kernel).permute(3, 2, 0, 1))
    assert torch.equal(net.params["dense.weight"], torch.from_numpy(finals[1]["sequential/dense/kernel:0"]).T)
    assert [a.fn for a in net.architecture.activations()] == ["relu"] * 3
    assert [a.fn for a in zoo.network(0).architecture.activations()] == ["tanh"] * 3
    assert to_graph(net).num_nodes == 1 + 16 * 3 + 10


def test_not_a_zoo(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing weights.npy"):
        read_small_cnn_zoo(tmp_path)
