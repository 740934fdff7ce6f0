"""Bad-input corpus: every malformed, truncated, oversized, unsafe or unsupported file gives one typed
error with a one-line reason, and nothing in a file is ever executed."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from core.errors import (
    ArchitectureError,
    CheckpointError,
    UnsafeCheckpointError,
    UnsupportedLayerError,
    WeightSpaceError,
)
from core.io import Limits, load_network


def _mlp_state() -> dict[str, torch.Tensor]:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).state_dict()


class _CreatesFile:
    """Unpickling this would call open(path, 'w'), creating a file: the canary for code execution."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _assert_one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text


def test_malicious_legacy_pickle_is_refused_and_not_executed(tmp_path: Path) -> None:
    canary = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": _CreatesFile(canary)}, fh, protocol=2)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_network(path)
    assert not canary.exists()
    _assert_one_line(info.value)
    assert "open" in str(info.value)


def test_malicious_zip_pickle_is_refused_and_not_executed(tmp_path: Path) -> None:
    canary = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": _CreatesFile(canary)}, path)
    assert not canary.exists()  # saving does not run __reduce__'s callable
    with pytest.raises(UnsafeCheckpointError, match="open"):
        load_network(path)
    assert not canary.exists()


def test_full_module_pickle_names_the_class_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "full.pt"
    torch.save(nn.Sequential(nn.Linear(3, 4)), path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_network(path)
    assert "torch.nn.modules" in str(info.value) and "state_dict" in str(info.value)
    _assert_one_line(info.value)


def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.trace(nn.Linear(3, 2), torch.randn(1, 3)).save(str(path))
    with pytest.raises(UnsafeCheckpointError, match="TorchScript"):
        load_network(path)


@pytest.mark.parametrize("content", [b"", b"hello world\n", bytes(range(256)) * 8, b"\x80\x04garbage"])
def test_garbage_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_network(path)
    _assert_one_line(info.value)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_torch_file(tmp_path: Path, fraction: float) -> None:
    path = tmp_path / "full.pt"
    torch.save(_mlp_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError) as info:
        load_network(path, "relu")
    _assert_one_line(info.value)


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "net.safetensors"
    save_file({k: v.contiguous() for k, v in _mlp_state().items()}, str(path))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CheckpointError):
        load_network(path, "relu")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values(tmp_path: Path, bad: float) -> None:
    state = _mlp_state()
    state["2.weight"][0, 1] = bad
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="2.weight contains (NaN|Inf)"):
        load_network(path, "relu")


def test_shapes_that_do_not_chain(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    torch.save({"0.weight": torch.randn(4, 3), "0.bias": torch.randn(4), "1.weight": torch.randn(2, 5)}, path)
    with pytest.raises(ArchitectureError, match="do not chain"):
        load_network(path, "relu")


def test_file_without_tensors(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    torch.save({"epoch": 3, "config": {"lr": 0.1}}, path)
    with pytest.raises(CheckpointError, match="no tensors"):
        load_network(path)


def test_tensor_that_is_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pt"
    torch.save(torch.randn(3), path)
    with pytest.raises(CheckpointError, match="not a dict"):
        load_network(path)


def test_unsupported_layer_in_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "conv3d.pt"
    torch.save(nn.Conv3d(1, 2, 3).state_dict(), path)
    with pytest.raises(UnsupportedLayerError, match="3-d"):
        load_network(path, "relu")
    path2 = tmp_path / "embedding.pt"
    torch.save({"emb.weight": torch.randn(10, 4), "emb.extra_param": torch.randn(3)}, path2)
    with pytest.raises(UnsupportedLayerError, match="extra_param"):
        load_network(path2, "relu")


def test_limits(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    torch.save(_mlp_state(), path)
    with pytest.raises(CheckpointError, match="exceeds"):
        load_network(path, "relu", limits=Limits(max_file_bytes=100))
    with pytest.raises(CheckpointError, match="tensors exceed"):
        load_network(path, "relu", limits=Limits(max_tensors=2))
    with pytest.raises(CheckpointError, match="over the limit"):
        load_network(path, "relu", limits=Limits(max_tensor_elements=10))


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        load_network(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="directory"):
        load_network(tmp_path)


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UnsafeCheckpointError):
        load_network(path)


def test_corrupt_export_metadata(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    metadata = {"format": "weight-space-explorer.network", "version": "1", "architecture": "{not json"}
    save_file({"l.weight": torch.randn(2, 3)}, str(path), metadata=metadata)
    with pytest.raises(ArchitectureError, match="JSON"):
        load_network(path)


def test_unknown_activation_name_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    torch.save(_mlp_state(), path)
    with pytest.raises(WeightSpaceError, match="unknown activation"):
        load_network(path, "swishy")


def test_zip_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError):
        load_network(path)


def test_upload_errors_name_the_uploaded_file_not_a_temporary_one():
    from core.io import load_network_bytes

    lenet = (Path(__file__).resolve().parents[1] / "assets" / "examples" / "lenet5-mnist.pt").read_bytes()
    cases = ((b"not a checkpoint" * 8, "my-model.pt", "my-model.pt"),
             (lenet[:3000], "lenet5 (cut).pt", "lenet5__cut_.pt"))
    for data, name, shown in cases:
        with pytest.raises(CheckpointError) as info:
            load_network_bytes(data, name)
        assert "upload" not in str(info.value) and str(info.value).startswith(f"{shown}: ")
