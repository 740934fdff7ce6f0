"""Peak resident memory and time for refusing hostile files (decompression bombs, deep nesting, huge counts)."""

from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
import tempfile
import textwrap
import zipfile
import zlib
from pathlib import Path

import torch
from torch import nn

from core.paths import REPO_ROOT

CHUNK = 64 << 20  # bytes of zeros per pre-compressed deflate block


def small_state() -> dict[str, torch.Tensor]:
    """A 3→4→2 MLP's state_dict (the valid payload inside the hostile files)."""
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).state_dict()


def _zeros_deflated(inflated: int, head: bytes = b"") -> tuple[bytes, int]:
    """A raw deflate stream of `head` then zeros, `inflated` bytes in all (a multiple of CHUNK), and its CRC-32,
    built in well under a second: each chunk compressed with a full flush (no back-references across chunks),
    the all-zero chunk's block repeated, then an empty final block."""
    first_chunk = head + bytes(CHUNK - len(head))
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(first_chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(CHUNK)) + comp.flush(zlib.Z_FULL_FLUSH)
    crc, zeros = zlib.crc32(first_chunk), bytes(CHUNK)
    for _ in range(inflated // CHUNK - 1):
        crc = zlib.crc32(zeros, crc)
    return first + block * (inflated // CHUNK - 1) + b"\x03\x00", crc  # \x03\x00: empty final fixed-Huffman block


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> None:
    """A zip written by hand: (name, payload, method 0 stored / 8 deflated, inflated size, crc) per member,
    so a member can carry a pre-compressed bomb that the zipfile writer would take seconds to produce."""
    out, central = bytearray(), bytearray()
    for name, payload, method, size, crc in members:
        raw = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(payload), size, len(raw), 0)
        out += raw + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(payload), size,
                               len(raw), 0, 0, 0, 0, 0, offset) + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))


def stored_member(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    """An uncompressed member for `write_zip`."""
    return name, data, 0, len(data), zlib.crc32(data)


def pt_bomb(path: Path, inflated: int = 1 << 30) -> Path:
    """A real torch.save archive whose storage member inflates to `inflated` bytes of zeros."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    members = []
    for info in src.infolist():
        if info.filename.endswith("/data/0"):
            payload, crc = _zeros_deflated(inflated)
            members.append((info.filename, payload, 8, inflated, crc))
        else:
            members.append(stored_member(info.filename, src.read(info)))
    write_zip(path, members)
    return path


def npz_bomb(path: Path, inflated: int = 1 << 30) -> Path:
    """An .npz whose one float32 array (declared in its .npy header) inflates from zeros."""
    from numpy.lib import format as npy

    head = io.BytesIO()
    npy.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": ((inflated - 128) // 4,)})
    header = head.getvalue()
    assert len(header) == 128
    payload, crc = _zeros_deflated(inflated, header)
    write_zip(path, [("w.npy", payload, 8, inflated, crc)])
    return path


def pickle_nested(path: Path, depth: int, opening: bytes, closing: bytes) -> Path:
    """A torch.save archive whose pickle wraps the state_dict in `depth` containers (opcodes spliced in)."""
    buf = io.BytesIO()
    torch.save(small_state(), buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    members = []
    for info in src.infolist():
        data = src.read(info)
        if info.filename.endswith("data.pkl"):
            assert data[:2] == b"\x80\x02" and data[-1:] == b"."
            data = data[:2] + opening * depth + data[2:-1] + closing * depth + b"."
        members.append(stored_member(info.filename, data))
    write_zip(path, members)
    return path


def deep_dict_pt(path: Path, depth: int = 100_000) -> Path:
    """{"a": {"a": … {state_dict}}}: EMPTY_DICT, BINUNICODE 'a' … SETITEM."""
    return pickle_nested(path, depth, b"}X\x01\x00\x00\x00a", b"s")


def deep_list_pt(path: Path, depth: int = 100_000) -> Path:
    """A state_dict whose one extra entry is a list nested `depth` deep (EMPTY_LIST … APPEND spliced in)."""
    buf = io.BytesIO()
    marker = 123_456_789
    torch.save({**small_state(), "junk": marker}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    members = []
    for info in src.infolist():
        data = src.read(info)
        if info.filename.endswith("data.pkl"):
            value = b"J" + struct.pack("<i", marker)  # BININT of the marker
            assert data.count(value) == 1
            data = data.replace(value, b"]" * depth + value + b"a" * depth)
        members.append(stored_member(info.filename, data))
    write_zip(path, members)
    return path


def export_with_metadata(path: Path, **overrides: str) -> Path:
    """A valid export-format file of a small MLP with some metadata entries replaced."""
    from core.io import network_from_state_dict
    from core.io.export import export_metadata

    net = network_from_state_dict(small_state(), "relu")
    meta = {**export_metadata(net), **overrides}
    _save_file({k: v.contiguous() for k, v in net.params.items()}, str(path), metadata=meta)
    return path


def huge_input_export(path: Path, side: int = 20_000) -> Path:
    """768 bytes that declare a conv input of [1, side, side]."""
    from core.io.export import FORMAT, VERSION
    from core.network.spec import Architecture, Conv, GlobalAvgPool, Linear

    arch = Architecture((Conv("c", 1, 1, (1, 1), (1, 1), (0, 0)), GlobalAvgPool(), Linear("l", 1, 1)), (1, side, side))
    params = {"c.weight": torch.ones(1, 1, 1, 1), "c.bias": torch.zeros(1), "l.weight": torch.ones(1, 1),
              "l.bias": torch.zeros(1)}

    meta = {"format": FORMAT, "version": VERSION, "architecture": arch.to_json(), "meta": "{}"}
    _save_file(params, str(path), metadata=meta)
    return path


def many_tensors(path: Path, count: int = 1_000_000) -> Path:
    """A safetensors file of `count` one-element tensors."""
    _save_file({f"t{i}": torch.zeros(1) for i in range(count)}, str(path))
    return path


def _save_file(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file(tensors, path, metadata=metadata)


def build_all(directory: Path, inflated: int = 2 << 30) -> list[Path]:
    """Every hostile file of the benchmark, written into `directory` (a few MB on disk)."""
    return [pt_bomb(directory / "bomb.pt", inflated), npz_bomb(directory / "bomb.npz", inflated),
            deep_dict_pt(directory / "deep-dict.pt"), deep_list_pt(directory / "deep-list.pt"),
            export_with_metadata(directory / "deep-meta.safetensors", meta="[" * 100_000 + "]" * 100_000),
            huge_input_export(directory / "huge-input.safetensors"), many_tensors(directory / "million.safetensors")]


MEASURE = textwrap.dedent("""
    import json, sys, time
    from core.errors import WeightSpaceError
    from core.io import load_network
    started = time.perf_counter()
    try:
        load_network(sys.argv[1], "relu")
        outcome = "accepted"
    except WeightSpaceError as exc:
        outcome = "refused: " + str(exc)
    seconds = time.perf_counter() - started
    # VmHWM: this process's own peak (ru_maxrss of an exec'd child would include its parent's peak)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_mb": int(status["VmHWM"].split()[0]) / 1024}))
""")


def measure(path: Path) -> dict:
    """Load `path` in a fresh interpreter (torch and core.io imported): outcome, seconds, peak resident MB."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=600,
                         cwd=REPO_ROOT)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"outcome": f"crashed: {last}", "seconds": None, "peak_mb": None}
    return json.loads(out.stdout.strip().splitlines()[-1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inflate-gib", type=int, default=2, help="what each zip bomb inflates to (default 2 GiB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from core.bench.machine import machine_info

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "ok.pt"
        torch.save(small_state(), baseline)
        for path in [baseline, *build_all(Path(tmp), args.inflate_gib << 30)]:
            rows.append({"file": path.name, "bytes": path.stat().st_size, **measure(path)})
    result = {"benchmark": "hostile", "rows": rows, "machine": machine_info()}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"refusing hostile files, one fresh interpreter each ({result['machine']['summary']}):")
    for r in rows:
        peak = f"{r['peak_mb']:,.0f} MB" if r["peak_mb"] is not None else "?"
        seconds = f"{r['seconds']:.2f} s" if r["seconds"] is not None else "?"
        print(f"  {r['file']:<24} {r['bytes']:>12,} B  peak {peak:>8}  load {seconds:>8}  {r['outcome'][:90]}")
    return 0
