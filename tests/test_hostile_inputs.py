"""Hostile inputs, built at test time (no binary fixtures): decompression bombs, huge tensor counts, deep
nesting, absurd declared shapes, refused dtypes, ambiguous keys. Each is refused with one typed, one-line
error before anything large is inflated or allocated; the memory test measures peak resident memory in a
subprocess."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from core.bench.hostile import (
    CHUNK,
    deep_dict_pt,
    deep_list_pt,
    export_with_metadata,
    huge_input_export,
    npz_bomb,
    pt_bomb,
    small_state,
    stored_member,
    write_zip,
)
from core.cli import main as cli_main
from core.errors import CheckpointError, UnsafeCheckpointError, WeightSpaceError
from core.io import load_network, network_from_state_dict, read_tensor_file

ROOT = Path(__file__).resolve().parents[1]


def _state() -> dict[str, torch.Tensor]:
    return small_state()


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    return text


# ---------------------------------------------------------------------------------------------- bounded reads
def test_pt_decompression_bomb_is_refused_from_the_index(tmp_path: Path) -> None:
    path = pt_bomb(tmp_path / "bomb.pt")
    assert path.stat().st_size < 2 << 20  # ~1 MiB on disk, 1 GiB inflated
    with pytest.raises(CheckpointError, match="decompression bomb") as info:
        load_network(path, "relu")
    assert "ratio" in _one_line(info.value)


def test_npz_decompression_bomb_is_refused_from_the_index(tmp_path: Path) -> None:
    path = npz_bomb(tmp_path / "bomb.npz")
    with pytest.raises(CheckpointError, match="decompression bomb") as info:
        load_network(path, "relu")
    _one_line(info.value)


def test_bombs_are_well_formed(tmp_path: Path) -> None:
    """The bombs are real archives: with the ratio limit lifted, a 64 MiB one inflates to the declared zeros."""
    from core.io import Limits

    npz = npz_bomb(tmp_path / "small.npz", inflated=CHUNK)
    with np.load(npz) as data:
        assert data["w"].shape == ((CHUNK - 128) // 4,) and not data["w"].any()
    pt = pt_bomb(tmp_path / "small.pt", inflated=CHUNK)
    with zipfile.ZipFile(pt) as zf:
        assert zf.testzip() is None  # every CRC matches
    tf = read_tensor_file(npz, Limits(max_compression_ratio=1e9))
    assert tf.tensors["w"].numel() == (CHUNK - 128) // 4


def test_too_many_tensors_are_refused_before_loading(tmp_path: Path) -> None:
    st = tmp_path / "many.safetensors"
    save_file({f"t{i}": torch.zeros(1) for i in range(10_050)}, str(st))
    with pytest.raises(CheckpointError, match="10,050 tensors exceed the limit of 10,000"):
        read_tensor_file(st)
    pt = tmp_path / "many.pt"
    torch.save({f"t{i}": torch.zeros(1) for i in range(10_050)}, pt)
    with pytest.raises(CheckpointError, match="10,050 tensors exceed the limit of 10,000"):
        read_tensor_file(pt)


def test_oversized_safetensors_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "header.safetensors"
    path.write_bytes((50_000_000).to_bytes(8, "little") + b'{"a": 1}')
    with pytest.raises(CheckpointError, match="header of 50,000,000 bytes exceeds the limit"):
        read_tensor_file(path)


def test_safetensors_declaring_data_past_its_end_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    save_file({"w": torch.ones(100, 100)}, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated safetensors file"):
        read_tensor_file(path)


def test_npz_declaring_more_than_its_member_holds_is_refused(tmp_path: Path) -> None:
    from numpy.lib import format as npy

    head = io.BytesIO()
    npy.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (50_000_000,)})
    data = head.getvalue() + bytes(64)
    path = tmp_path / "short.npz"
    write_zip(path, [stored_member("w.npy", data)])
    with pytest.raises(CheckpointError, match="truncated"):
        read_tensor_file(path)


# ---------------------------------------------------------------------------------------------- nesting
def test_deeply_nested_dicts_in_a_checkpoint_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nested more than 64 levels") as info:
        read_tensor_file(deep_dict_pt(tmp_path / "deep.pt"))
    _one_line(info.value)


def test_deeply_nested_lists_in_a_checkpoint_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nested more than 64 levels"):
        read_tensor_file(deep_list_pt(tmp_path / "deep.pt"))


def test_shared_references_cannot_multiply_a_pickle(tmp_path: Path) -> None:
    """A 'billion laughs' pickle: ten references to ten references … (small on disk, 10⁹ objects when walked)."""
    laughs: list = [0] * 10
    for _ in range(9):
        laughs = [laughs] * 10
    path = tmp_path / "laughs.pt"
    torch.save({**_state(), "junk": laughs}, path)
    assert path.stat().st_size < 50_000
    with pytest.raises(CheckpointError, match="more than 1,000,000 objects"):
        read_tensor_file(path)


def test_moderate_nesting_still_loads(tmp_path: Path) -> None:
    path = deep_dict_pt(tmp_path / "ok.pt", depth=40)
    assert len(read_tensor_file(path).tensors) == 4


@pytest.mark.parametrize("entry", ["architecture", "meta"])
def test_deep_json_metadata_in_the_export_format_is_refused(tmp_path: Path, entry: str) -> None:
    path = export_with_metadata(tmp_path / "deep.safetensors", **{entry: "[" * 100_000 + "]" * 100_000})
    with pytest.raises(WeightSpaceError, match="nested 100000 levels deep") as info:
        load_network(path)
    _one_line(info.value)


def test_export_metadata_of_the_wrong_json_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_network(export_with_metadata(tmp_path / "list.safetensors", meta="[1, 2]"))
    with pytest.raises(WeightSpaceError, match="malformed JSON"):  # Python refuses to convert 5,000 digits
        load_network(export_with_metadata(tmp_path / "digits.safetensors", meta='{"a": ' + "9" * 5000 + "}"))


# ---------------------------------------------------------------------------------------------- declared shapes
def test_absurd_declared_input_shape_is_refused_before_allocation(tmp_path: Path) -> None:
    path = huge_input_export(tmp_path / "huge.safetensors")
    assert path.stat().st_size < 2048
    with pytest.raises(CheckpointError, match=r"declared input has shape \(1, 20000, 20000\)"):
        load_network(path)


def test_check_refuses_absurd_declared_input_shape(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`check` would allocate 32 float64 probes of [1, 20000, 20000] (102 GB) if it trusted the file."""
    rc = cli_main(["check", str(huge_input_export(tmp_path / "huge.safetensors"))])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and "declared input" in err


def test_cli_input_size_is_bounded_too(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "cnn.pt"
    torch.save(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3)).state_dict(), path)
    rc = cli_main(["inspect", str(path), "--activation", "relu", "--input-size", "100000"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "declared input has shape (1, 100000, 100000)" in err


# ---------------------------------------------------------------------------------------------- dtype policy
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2])
def test_narrow_floats_are_converted_with_a_note(tmp_path: Path, dtype: torch.dtype) -> None:
    path = tmp_path / "narrow.safetensors"
    state = {k: v.to(dtype) for k, v in _state().items()}
    save_file(state, str(path))
    net = load_network(path, "relu")
    assert all(t.dtype == torch.float32 for t in net.params.values())
    assert torch.equal(net.params["0.weight"], state["0.weight"].to(torch.float32))
    name = str(dtype).removeprefix("torch.")
    assert any(f"{name} tensors converted to float32" in a for a in net.meta["assumptions"])


@pytest.mark.parametrize("dtype, words", [
    (torch.complex64, "is complex"), (torch.int32, "integer values"), (torch.int64, "integer values"),
    (torch.bool, "bool values"), (torch.uint8, "integer values"),
])
@pytest.mark.parametrize("container", ["pt", "safetensors", "npz"])
def test_non_real_weights_are_refused(tmp_path: Path, dtype: torch.dtype, words: str, container: str) -> None:
    state = _state()
    state["0.weight"] = (state["0.weight"] * 10).to(dtype)
    path = tmp_path / f"w.{container}"
    if container == "pt":
        torch.save(state, path)
    elif container == "safetensors":
        save_file(state, str(path))
    else:
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    with pytest.raises(CheckpointError, match=words) as info:
        load_network(path, "relu")
    assert "0.weight" in _one_line(info.value)


def test_num_batches_tracked_stays_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bn.pt"
    torch.save(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).state_dict(), path)
    assert load_network(path, "relu").num_parameters > 0


def test_sparse_tensors_are_refused(tmp_path: Path) -> None:
    state = _state()
    state["0.weight"] = state["0.weight"].to_sparse()
    path = tmp_path / "sparse.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="sparse_coo tensor"):
        load_network(path, "relu")


def test_zero_width_layer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "zero.pt"
    torch.save(nn.Sequential(nn.Linear(3, 0), nn.ReLU(), nn.Linear(0, 2)).state_dict(), path)
    with pytest.raises(CheckpointError, match="zero-width layer"):
        load_network(path, "relu")


@pytest.mark.parametrize("array, words", [
    (np.array(["a", "b"]), "not numbers"),
    (np.zeros(3, dtype=np.longdouble), "not numbers"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), "not numbers"),
    (np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), "not numbers"),
    (np.zeros(3, dtype=np.complex128), "is complex"),
])
def test_odd_npz_dtypes_are_refused(tmp_path: Path, array: np.ndarray, words: str) -> None:
    if array.dtype == np.longdouble and np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("longdouble is float64 on this platform")
    path = tmp_path / "odd.npz"
    np.savez(path, **{k: v.numpy() for k, v in _state().items()}, odd=array)
    with pytest.raises(CheckpointError, match=words) as info:
        load_network(path, "relu")
    assert "odd" in _one_line(info.value)


def test_key_both_flat_and_nested_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ambiguous.pt"
    torch.save({"0.weight": torch.ones(4, 3), "0": {"weight": torch.zeros(4, 3)}, "0.bias": torch.ones(4)}, path)
    with pytest.raises(CheckpointError, match="ambiguous"):
        read_tensor_file(path)


def test_pickles_that_run_code_stay_refused_inside_nesting(tmp_path: Path) -> None:
    """A code-executing reduce hidden at depth 3 of a training checkpoint."""
    canary = tmp_path / "pwned.txt"

    class Evil:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"model": {"state_dict": _state(), "extra": {"x": [Evil()]}}}, path)
    with pytest.raises(UnsafeCheckpointError):
        load_network(path, "relu")
    assert not canary.exists()


# ---------------------------------------------------------------------------------------------- CLI
CLI_CASES = {
    "bomb.pt": lambda d: pt_bomb(d / "bomb.pt"),
    "bomb.npz": lambda d: npz_bomb(d / "bomb.npz"),
    "deep.pt": lambda d: deep_dict_pt(d / "deep.pt"),
    "deep-meta.safetensors": lambda d: export_with_metadata(d / "deep-meta.safetensors",
                                                            meta="[" * 100_000 + "]" * 100_000),
    "huge.safetensors": lambda d: huge_input_export(d / "huge.safetensors"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
@pytest.mark.parametrize("command", ["inspect", "check"])
def test_cli_refuses_hostile_files_with_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture, case: str,
                                                       command: str) -> None:
    path = CLI_CASES[case](tmp_path)
    rc = cli_main([command, str(path), "--activation", "relu"])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err + captured.out


# ---------------------------------------------------------------------------------------------- memory
MEMORY_LIMIT_MB = 600


def test_refusing_hostile_files_keeps_resident_memory_bounded(tmp_path: Path) -> None:
    """Peak RSS of a fresh interpreter (torch and core imported) that is handed each hostile file in turn."""
    files = [pt_bomb(tmp_path / "bomb.pt"), npz_bomb(tmp_path / "bomb.npz"), deep_dict_pt(tmp_path / "deep.pt"),
             huge_input_export(tmp_path / "huge.safetensors")]
    many = tmp_path / "many.safetensors"
    save_file({f"t{i}": torch.zeros(1) for i in range(10_050)}, str(many))
    files.append(many)
    script = textwrap.dedent("""
        import json, sys, time
        from core.errors import WeightSpaceError
        from core.io import load_network
        refused, slowest = [], 0.0
        for path in sys.argv[1:]:
            started = time.perf_counter()
            try:
                load_network(path, "relu")
            except WeightSpaceError as exc:
                refused.append(str(exc))
            slowest = max(slowest, time.perf_counter() - started)
        # VmHWM: this process's own peak (ru_maxrss would include the forking pytest process's peak)
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        print(json.dumps({"refused": refused, "peak_mb": int(status["VmHWM"].split()[0]) / 1024, "slowest_s": slowest}))
    """)
    out = subprocess.run([sys.executable, "-c", script, *map(str, files)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["refused"]) == len(files), result
    assert result["peak_mb"] < MEMORY_LIMIT_MB, result
    assert result["slowest_s"] < 20, result  # each refusal reads headers only (well under a second here)


def test_errors_are_weight_space_errors() -> None:
    assert issubclass(CheckpointError, WeightSpaceError)


# ---------------------------------------------------------------------------------------------- zoo directories
def _tiny_zoo(root: Path, n: int = 6) -> Path:
    from core.network.spec import siren_architecture
    from core.zoo.store import write_zoo

    arch = siren_architecture((4,), 30.0, 0.5)
    flat = torch.randn(n, arch.num_parameters)
    rows = [{"index": i, "group": "siren", "label": i % 3} for i in range(n)]
    return write_zoo(root / "zoo", generator="test", options={}, architectures={"siren": arch},
                     groups={"siren": (list(range(n)), flat)}, rows=rows,
                     splits_by_index={i: ("train" if i < 4 else "test") for i in range(n)})


def _edit_manifest(zoo: Path, **changes) -> None:
    manifest = json.loads((zoo / "manifest.json").read_text())
    manifest.update(changes)
    (zoo / "manifest.json").write_text(json.dumps(manifest))


def _zoo_error(zoo: Path, capsys: pytest.CaptureFixture, use=lambda z: z.network(0)) -> str:
    """The library raises ZooError (one line) and `zoo info` exits 2 with one `error:` line."""
    from core.zoo import Zoo
    from core.zoo.images import ZooError

    with pytest.raises(ZooError) as info:
        use(Zoo.open(zoo))
    rc = cli_main(["zoo", "info", str(zoo)]) if use is _OPEN else 2
    err = capsys.readouterr().err
    assert rc == 2 and (use is not _OPEN or (err.startswith("error: ") and err.count("\n") == 1)), err
    return _one_line(info.value)


def _OPEN(zoo):  # noqa: N802 (a marker: the failure is in Zoo.open itself)
    return zoo


@pytest.mark.parametrize("changes, words", [
    ({"version": "one"}, "malformed at version"),
    ({"architectures": []}, "malformed at architectures"),
    ({"splits": {"train": ["a"]}}, "malformed at splits/train/0"),
    ({"architectures": {"siren": {"input_shape": [2], "ops": "x"}}}, "malformed at architectures/siren/ops"),
    ({"count": 99}, "says 99 networks"),
    ({"splits": {"train": [0, 99]}}, "names network 99"),
    ({"architectures": {"siren": {"input_shape": [2, 100000, 100000], "ops": []}}}, "declared input has shape"),
])
def test_malformed_manifest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, changes: dict,
                                       words: str) -> None:
    zoo = _tiny_zoo(tmp_path)
    _edit_manifest(zoo, **changes)
    assert words in _zoo_error(zoo, capsys, _OPEN)


@pytest.mark.parametrize("text", ["[1, 2]", "[" * 100_000 + "]" * 100_000, "{not json"], ids=["list", "deep", "bad"])
def test_manifest_that_is_not_an_object_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, text: str) -> None:
    zoo = _tiny_zoo(tmp_path)
    (zoo / "manifest.json").write_text(text)
    assert "manifest.json" in _zoo_error(zoo, capsys, _OPEN)


def test_table_problems_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    zoo = _tiny_zoo(tmp_path)
    original = (zoo / "table.csv").read_text()
    cut = "\n".join(",".join(c for j, c in enumerate(line.split(",")) if j != 2) for line in original.splitlines())
    (zoo / "table.csv").write_text(cut)
    assert "lacks the column(s) group_row" in _zoo_error(zoo, capsys, _OPEN)
    (zoo / "table.csv").write_bytes(b"\xff\xfe\x00\x81binary\x00\x9f" * 20)
    assert "table.csv" in _zoo_error(zoo, capsys, _OPEN)
    (zoo / "table.csv").write_text(original.replace("\n5,siren,5,", "\n5,siren,50,"))
    assert "group_row of group siren out of range" in _zoo_error(zoo, capsys, _OPEN)
    (zoo / "table.csv").write_text(original.splitlines()[0] + "\n")
    assert "lists no networks" in _zoo_error(zoo, capsys, _OPEN)


def test_non_numeric_labels_are_refused(tmp_path: Path) -> None:
    from core.zoo.images import ZooError
    from core.zoo.store import ZooGraphDataset

    zoo = _tiny_zoo(tmp_path)
    table = (zoo / "table.csv").read_text().splitlines()
    header = table[0].split(",")
    at = header.index("label")
    rows = [",".join("cat" if j == at else c for j, c in enumerate(line.split(","))) for line in table[1:]]
    (zoo / "table.csv").write_text("\n".join([table[0], *rows]) + "\n")
    with pytest.raises(ZooError, match="column label must hold finite numbers"):
        ZooGraphDataset(zoo, "train")


def test_truncated_parameter_shard_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    zoo = _tiny_zoo(tmp_path)
    shard = zoo / "params-siren.safetensors"
    shard.write_bytes(shard.read_bytes()[:-40])
    assert "truncated" in _zoo_error(zoo, capsys)


def test_parameter_shard_of_the_wrong_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    zoo = _tiny_zoo(tmp_path)
    _tiny_zoo(tmp_path / "other", n=3)
    other = tmp_path / "other" / "zoo" / "params-siren.safetensors"
    (zoo / "params-siren.safetensors").write_bytes(other.read_bytes())
    assert "params has shape [3," in _zoo_error(zoo, capsys)


# ------------------------------------------------------------------------------------------- Small CNN Zoo, Wild Park
def _small_cnn_zoo(root: Path, layout_changes: dict | None = None) -> Path:
    import pandas as pd

    from tests.test_small_cnn_zoo import write_zoo

    write_zoo(root, n=2)
    layout = pd.read_csv(root / "layout.csv")
    for (row, column), value in (layout_changes or {}).items():
        layout[column] = layout[column].astype(object)
        layout.loc[row, column] = value
    layout.to_csv(root / "layout.csv", index=False)
    return root


@pytest.mark.parametrize("changes, words", [
    ({(0, "shape"): "__import__('os').system('true')"}, "not one to four positive integers"),
    ({(0, "shape"): "[" * 50_000 + "1" + "]" * 50_000}, "not one to four positive integers"),
    ({(0, "shape"): "(99999, 99999, 99999, 99999)"}, "holds 99996000059999600001 values, columns 0…144"),
    ({(0, "shape"): "(3, 3, 0, 16)"}, "empty dimension"),
    ({(0, "start_idx"): "abc"}, "not a whole number"),
    ({(7, "end_idx"): 10**12}, "outside weights.npy"),
], ids=["code", "deep", "absurd", "zero", "start", "end"])
def test_small_cnn_zoo_layouts_are_validated(tmp_path: Path, changes: dict, words: str) -> None:
    from core.io import read_small_cnn_zoo

    with pytest.raises(CheckpointError, match=words.replace("(", r"\(")) as info:
        read_small_cnn_zoo(_small_cnn_zoo(tmp_path / "zoo", changes))
    _one_line(info.value)


def test_small_cnn_zoo_input_size_is_bounded(tmp_path: Path) -> None:
    from core.io import read_small_cnn_zoo

    with pytest.raises(CheckpointError, match="declared input has shape"):
        read_small_cnn_zoo(_small_cnn_zoo(tmp_path / "zoo"), input_size=50_000)


@pytest.mark.parametrize("config, words", [
    ({"input_size": "big"}, "input_size 'big' is not a whole number"),
    ({"input_size": 10**9}, "input_size '1000000000' is not a whole number from 1 to 4096"),
    ({"input_size": [32]}, "input_size '\\[32\\]'"),
    ({"activation": "bogus"}, "activation 'bogus' is not one of"),
])
def test_cnn_wild_park_configs_are_validated(tmp_path: Path, capsys: pytest.CaptureFixture, config: dict,
                                             words: str) -> None:
    src = tmp_path / "wild"
    src.mkdir()
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 10))
    torch.save({"model": model.state_dict(), "config": {"activation": "relu", **config}}, src / "m.pt")
    rc = cli_main(["zoo", "import", "cnn-wild-park", str(src), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(words, err), err


# ---------------------------------------------------------------------------------------------- CLI paths and options
ZOO = str(ROOT / "assets" / "zoos" / "digits-inr")
TRAIN = ["train", "inr-classify", "--model", "mlp", "--zoo", ZOO, "--epochs", "1", "--quiet"]


def _cli_error(capsys: pytest.CaptureFixture, *argv: str) -> str:
    rc = cli_main(list(argv))
    captured = capsys.readouterr()
    assert rc == 2, (rc, captured.err[-500:])
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return captured.err


def test_train_refuses_to_replace_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    files = {"config.json": "{}", "weights.safetensors": "w", "metrics.json": "{}", "log.csv": "epoch\n"}
    for name, text in files.items():
        (run / name).write_text(text)
    err = _cli_error(capsys, *TRAIN, "--out", str(run))
    assert "already holds a finished run" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.read_text() for p in run.iterdir()} == files


def test_train_out_that_is_a_file_or_cannot_be_created(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert "is a file, not a run directory" in _cli_error(capsys, *TRAIN, "--out", str(afile))
    assert afile.read_text() == "keep"
    assert "Not a directory" in _cli_error(capsys, *TRAIN, "--out", str(afile / "run"))


def test_zoo_import_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep")
    _cli_error(capsys, "zoo", "import", "small-cnn-zoo", str(_small_cnn_zoo(tmp_path / "scz")), "--out", str(afile))
    assert afile.read_text() == "keep"


@pytest.mark.parametrize("option", ["--batch-size"])
def test_zero_batch_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, option: str) -> None:
    err = _cli_error(capsys, *TRAIN, "--out", str(tmp_path / "run"), option, "0")
    assert "--batch-size must be at least 1" in err and not (tmp_path / "run").exists()


def test_internal_failure_is_one_line_and_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import core.summary

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(core.summary, "summarize", broken)
    path = tmp_path / "net.pt"
    torch.save(_state(), path)
    monkeypatch.delenv("WSE_DEBUG", raising=False)
    rc = cli_main(["inspect", str(path), "--activation", "relu"])
    err = capsys.readouterr().err
    assert rc == 3 and err.count("\n") == 1
    assert err.startswith("internal error: RuntimeError: something inside broke") and "WSE_DEBUG=1" in err
    monkeypatch.setenv("WSE_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli_main(["inspect", str(path), "--activation", "relu"])


# ---------------------------------------------------------------------------------------------- the app
def _complex_state(path: Path) -> Path:
    torch.save({k: v.to(torch.complex64) for k, v in _state().items()}, path)
    return path


APP_CASES = {**CLI_CASES, "complex.pt": lambda d: _complex_state(d / "complex.pt")}


@pytest.mark.parametrize("page, key", [("views/inspect.py", "inspect"), ("views/symmetry_lab.py", "symmetry")])
def test_app_shows_one_line_for_hostile_uploads(tmp_path: Path, page: str, key: str) -> None:
    """Every hostile file, uploaded in turn to one session: one st.error line each, no exception, no paths."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.run()
    if page != "views/inspect.py":
        at.switch_page(page).run()
    at.radio(key=f"{key}-source").set_value("Upload").run()
    at.selectbox(key=f"{key}-activation").set_value("relu").run()
    for name, build in APP_CASES.items():
        data = build(tmp_path).read_bytes()
        at.file_uploader(key=f"{key}-upload").upload(name, data).run()
        assert not at.exception, (name, at.exception)
        assert len(at.error) == 1, (name, [e.value for e in at.error])
        shown = at.error[0].value
        assert shown.startswith(f"Cannot read **{name}**: ") and "\n" not in shown, shown
        assert "Traceback" not in shown and str(tmp_path) not in shown and "/tmp" not in shown, shown
    good = io.BytesIO()
    torch.save(_state(), good)
    at.file_uploader(key=f"{key}-upload").upload("ok.pt", good.getvalue()).run()
    assert not at.exception and not at.error  # the session keeps serving


def test_app_page_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside a page (here: the summary of the bundled example) is one st.error line, not a stack trace.

    On a first run the entry point executes the page (as the server does on every run once st.navigation has been
    seen); AppTest reruns a page directly, where `client.showErrorDetails = "none"` redacts what Streamlit shows."""
    from streamlit.testing.v1 import AppTest

    import core.summary

    def broken(*args, **kwargs):
        raise RuntimeError("boom in /srv/secret/path")

    monkeypatch.setattr(core.summary, "summarize", broken)
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "an internal error (RuntimeError) stopped this page; the details are in the server log"]


def test_streamlit_redacts_uncaught_errors() -> None:
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"


# ------------------------------------------------------------------------------------- check's declared activation
def test_check_notes_an_activation_that_only_the_flag_gives(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bare.pt"
    torch.save(_state(), path)
    assert cli_main(["check", str(path), "--activation", "tanh"]) == 0
    assert "note: activation tanh taken from --activation alone" in capsys.readouterr().out


def test_check_catches_a_declaration_the_file_contradicts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from core.io import save_network

    torch.manual_seed(0)
    state = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)).state_dict()
    path = tmp_path / "relu.safetensors"
    save_network(network_from_state_dict(state, "relu"), path)
    assert cli_main(["check", str(path), "--activation", "tanh"]) == 1
    assert "differs from the recorded relu" in capsys.readouterr().out


def test_json_depth_skips_strings_in_one_linear_pass() -> None:
    import time

    from core.io.read import json_depth

    assert json_depth('{"a": "[[[\\"[[", "b": [[1]]}') == 3
    assert json_depth('["]", ["\\\\", [2]]]') == 3
    started = time.perf_counter()
    for text in ['"\\' * 1_000_000, '"' * 2_000_001, '"' + "x" * 2_000_000]:  # unterminated strings
        assert json_depth(text) == 0
    assert time.perf_counter() - started < 5  # a quadratic scan takes minutes here


def test_zip_with_too_many_members_is_refused_from_its_end_record(tmp_path: Path) -> None:
    path = tmp_path / "members.npz"
    write_zip(path, [stored_member(f"a{i}.npy", b"") for i in range(10_001)])
    with pytest.raises(CheckpointError, match="the archive lists 10,001 members, over the limit of 10,000"):
        read_tensor_file(path)


def test_small_cnn_zoo_weights_must_be_a_float_matrix(tmp_path: Path) -> None:
    from core.io import read_small_cnn_zoo

    zoo = _small_cnn_zoo(tmp_path / "zoo")
    np.save(zoo / "weights.npy", np.array(["a", "b"]))
    with pytest.raises(CheckpointError, match="weights.npy must be a 2-d float array") as info:
        read_small_cnn_zoo(zoo)
    assert "unreadable" not in _one_line(info.value)


def test_code_executing_pickle_is_named_as_such(tmp_path: Path) -> None:
    """A payload that calls os.system is called an attack, a pickled nn.Module a full model; neither runs."""
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    evil, model = tmp_path / "evil.pt", tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(2, 2), "x": Payload()}, evil)
    torch.save(nn.Linear(2, 2), model)
    with pytest.raises(UnsafeCheckpointError, match="evil.pt is a code-executing pickle .*system"):
        read_tensor_file(evil)
    with pytest.raises(UnsafeCheckpointError, match="probably a pickled full model") as info:
        read_tensor_file(model)
    assert "code-executing" not in str(info.value)
    assert not (tmp_path / "ran").exists()
