"""Read tensors out of checkpoint files without executing anything in them.

Supported containers: PyTorch `torch.save` files (zip or legacy pickle, read with `weights_only=True`),
safetensors, and NumPy `.npz` (read with `allow_pickle=False`). TorchScript archives and pickles that need
arbitrary globals (full-module pickles) are refused with the name of the blocking class.

Nothing is inflated or unpickled before the file's index has been checked against `Limits`: the zip
central directory (member count, declared sizes, compression ratios, the pickle's size, the number of
storages), the safetensors JSON header (size, nesting, tensor count, dtypes, shapes, offsets) and the
`.npy` headers inside an `.npz` (dtypes, shapes). A hostile file is refused with memory bounded by the
header sizes, not by what it would inflate to.

Dtype policy: float32/float64 are kept; float16, bfloat16 and float8 are converted to float32 (with a
note); complex, integer, bool, sparse and quantized tensors are refused, except integer bookkeeping
buffers (`*.num_batches_tracked`).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.errors import CheckpointError, UnsafeCheckpointError

# Keys under which training checkpoints commonly nest the model's state_dict, most specific first.
NESTED_KEYS = (
    "state_dict", "model_state_dict", "model_state", "model", "net", "network", "module", "weights", "params", "ema",
)

SAVE_HINT = "save a state_dict instead: torch.save(model.state_dict(), 'model.pt')"

# integer buffers that are bookkeeping, not weights (BatchNorm's step counter)
INTEGER_BUFFER_SUFFIXES = ("num_batches_tracked",)


@dataclass(frozen=True)
class Limits:
    """Upper bounds that protect a server from oversized or hostile files."""

    max_file_bytes: int = 1 << 30  # 1 GiB
    max_tensors: int = 10_000
    max_tensor_elements: int = 100_000_000
    max_total_elements: int = 250_000_000
    max_header_bytes: int = 16 << 20  # a safetensors JSON header, a .pt's pickle, JSON metadata
    max_compression_ratio: float = 10.0  # inflated / compressed, for zip members that inflate past 1 MiB
    max_depth: int = 64  # nesting of containers in pickles and JSON
    max_objects: int = 1_000_000  # containers and values in a pickle (shared references count each time)
    max_value_elements: int = 1 << 21  # elements of one input sample or of any value computed from it


DEFAULT_LIMITS = Limits()
RATIO_FLOOR_BYTES = 1 << 20  # small members (e.g. a zero bias) may compress well; only large ones are bombs
MAX_ITEMSIZE = 8  # float64: the widest element a declared size is checked against


@dataclass
class TensorFile:
    """The tensors of a checkpoint (a flat, ordered state_dict) and any metadata that came with it."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    container: str = "torch"  # torch | safetensors | npz
    extras: dict = field(default_factory=dict)  # non-tensor entries of a training checkpoint (e.g. "config")
    notes: list[str] = field(default_factory=list)  # conversions made while reading (e.g. float16 → float32)


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 9:
        header_len = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and 0 < header_len < 100_000_000:
            return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def _check_size(path: Path, limits: Limits) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path.name}: the file is empty")
    if size > limits.max_file_bytes:
        raise CheckpointError(f"{path.name}: {size / 2**20:.0f} MiB exceeds the "
                              f"{limits.max_file_bytes / 2**20:.0f} MiB limit")


# ---------------------------------------------------------------------------------------------- limits
def _check_counts(name: str, count: int, elements: list[tuple[str, int]], limits: Limits) -> None:
    """Tensor count and element limits, from declared shapes (before loading) or loaded tensors."""
    if count > limits.max_tensors:
        raise CheckpointError(f"{name}: {count:,} tensors exceed the limit of {limits.max_tensors:,}")
    total = 0
    for key, n in elements:
        if n > limits.max_tensor_elements:
            raise CheckpointError(f"{name}: tensor {key} has {n:,} elements, over the limit of "
                                  f"{limits.max_tensor_elements:,}")
        total += n
        if total > limits.max_total_elements:
            raise CheckpointError(f"{name}: more than {limits.max_total_elements:,} elements in all")


def dtype_verdict(key: str, dtype: torch.dtype) -> str | None:
    """None if `dtype` is kept as is, "convert" if it is widened to float32; raises CheckpointError if refused."""
    if dtype in (torch.float32, torch.float64):
        return None
    if dtype.is_floating_point:
        return "convert"  # float16, bfloat16, float8: every kernel here runs in float32 or float64
    if dtype.is_complex:
        raise CheckpointError(f"tensor {key} is complex ({str(dtype).removeprefix('torch.')}); weights must be real")
    if key.endswith(INTEGER_BUFFER_SUFFIXES):
        return None
    kind = "bool" if dtype == torch.bool else "integer"
    raise CheckpointError(f"tensor {key} holds {kind} values ({str(dtype).removeprefix('torch.')}), not weights; "
                          "only floating-point tensors are read")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _named(name: str, exc: CheckpointError) -> CheckpointError:
    return CheckpointError(f"{name}: {exc}")


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(text: str | bytes) -> int:
    """Deepest nesting of arrays/objects in a JSON text (strings skipped), without parsing it."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    # brackets inside strings do not nest; possessive quantifiers, and an unterminated string running to the end,
    # keep this one linear pass whatever the text
    raw = re.sub(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', b"", raw)
    codes = np.frombuffer(raw.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if codes.size == 0:
        return 0
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def loads_json(text: str | bytes, what: str, limits: Limits = DEFAULT_LIMITS, error: type[Exception] = CheckpointError):
    """json.loads with the size and nesting of `text` checked first; `error` (one line) when refused."""
    if len(text) > limits.max_header_bytes:
        raise error(f"{what}: {len(text):,} bytes of JSON exceed the limit of {limits.max_header_bytes:,}")
    depth = json_depth(text)
    if depth > limits.max_depth:
        raise error(f"{what}: JSON nested {depth} levels deep, over the limit of {limits.max_depth}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, a 5,000-digit number
        raise error(f"{what}: malformed JSON ({_first_line(exc)})") from None


def check_nesting(obj: object, name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse containers nested deeper than `limits.max_depth` or holding too many objects (iteratively)."""
    stack = [(obj, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > limits.max_objects:
            raise CheckpointError(f"{name}: more than {limits.max_objects:,} objects in the pickle")
        if isinstance(item, (dict, list, tuple, set, frozenset)):
            if depth >= limits.max_depth:
                raise CheckpointError(f"{name}: containers nested more than {limits.max_depth} levels deep")
            children = list(item.keys()) + list(item.values()) if isinstance(item, dict) else list(item)
            stack.extend((child, depth + 1) for child in children)


# ---------------------------------------------------------------------------------------------- zip index
def _zip_index(path: Path, limits: Limits, max_members: int) -> list[zipfile.ZipInfo]:
    """The members of a zip archive, refused by count, declared size and compression ratio before inflating."""
    try:
        with open(path, "rb") as fh:
            # the end record gives the member count before ZipFile builds one object per member
            end = zipfile._EndRecData(fh)  # noqa: SLF001 (the stdlib's own reader of the end record)
    except OSError as exc:
        raise CheckpointError(f"{path.name}: unreadable ({_first_line(exc)})") from None
    if end is None:
        raise CheckpointError(f"{path.name}: truncated or corrupt archive (no end of central directory record)")
    members = end[zipfile._ECD_ENTRIES_TOTAL]  # noqa: SLF001
    if members > max_members:
        raise CheckpointError(f"{path.name}: the archive lists {members:,} members, over the limit of {max_members:,}")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path.name}: truncated or corrupt archive ({_first_line(exc)})") from None
    budget = limits.max_total_elements * MAX_ITEMSIZE + limits.max_header_bytes
    total = 0
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and ratio > limits.max_compression_ratio:
            raise CheckpointError(
                f"{path.name}: member {info.filename} would inflate {info.compress_size:,} bytes to {info.file_size:,} "
                f"(ratio {ratio:,.0f}:1, limit {limits.max_compression_ratio:g}:1): refused as a decompression bomb")
        total += info.file_size
        if total > budget:
            raise CheckpointError(f"{path.name}: members declare more than {budget / 2**30:.1f} GiB in all "
                                  f"(more than {limits.max_total_elements:,} elements)")
    return infos


def _check_torch_zip(path: Path, infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    """A torch.save archive: TorchScript refused, the pickle's size and the number of storages bounded."""
    names = [i.filename.split("/", 1)[-1] for i in infos]
    if any(n.startswith(("code/", "constants.pkl")) for n in names):
        raise UnsafeCheckpointError(
            f"{path.name} is a TorchScript archive, which is code and is never loaded; {SAVE_HINT}")
    pickles = [i for i, n in zip(infos, names) if n == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError(f"{path.name}: not a PyTorch checkpoint (a zip without a data.pkl)")
    if pickles[0].file_size > limits.max_header_bytes:
        raise CheckpointError(f"{path.name}: its pickle declares {pickles[0].file_size:,} bytes, over the limit of "
                              f"{limits.max_header_bytes:,}")
    storages = sum(1 for n in names if n.startswith("data/"))
    if storages > limits.max_tensors:
        raise CheckpointError(
            f"{path.name}: {storages:,} tensors exceed the limit of {limits.max_tensors:,} (counted by their storages)")


_NUMPY_KINDS = {"f": "floating", "c": "complex", "i": "integer", "u": "integer", "b": "bool"}


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    from numpy.lib import format as npy

    with zf.open(info) as fh:
        major, _ = npy.read_magic(fh)
        read = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
        shape, _, dtype = read(fh, max_header_size=10_000)
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _check_npz(path: Path, infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    """Each .npy header inside an .npz: dtype policy, declared shape within the limits and within the member."""
    elements: list[tuple[str, int]] = []
    with zipfile.ZipFile(path) as zf:
        for info in infos:
            key = info.filename.removesuffix(".npy")
            try:
                shape, dtype = _npy_header(zf, info)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError, TypeError) as exc:
                raise CheckpointError(
                    f"{path.name}: member {info.filename} is not a readable .npy ({_first_line(exc)})") from None
            if dtype.hasobject:
                raise UnsafeCheckpointError(f"{path.name} holds pickled objects (array {key}), which are refused")
            kind = _NUMPY_KINDS.get(dtype.kind)
            if kind is None or (kind == "floating" and dtype.itemsize > 8):
                raise CheckpointError(
                    f"{path.name}: array {key} has dtype {dtype} ({dtype.name}), not numbers torch can hold")
            try:
                dtype_verdict(key, torch.from_numpy(np.zeros(0, dtype=dtype.newbyteorder("="))).dtype)
            except TypeError:
                raise CheckpointError(f"{path.name}: array {key} has dtype {dtype}, which torch cannot hold") from None
            except CheckpointError as exc:
                raise _named(path.name, exc) from None
            n = int(np.prod(shape, dtype=object))
            if n * dtype.itemsize > info.file_size:
                raise CheckpointError(f"{path.name}: array {key} declares shape {shape} but its member holds only "
                                      f"{info.file_size:,} bytes (truncated)")
            elements.append((key, n))
    _check_counts(path.name, len(elements), elements, limits)


# ---------------------------------------------------------------------------------------------- safetensors index
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "F8_E4M3FNUZ": torch.float8_e4m3fnuz,
    "F8_E5M2FNUZ": torch.float8_e5m2fnuz, "C64": torch.complex64, "C128": torch.complex128, "BOOL": torch.bool,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U64": torch.uint64, "U32": torch.uint32, "U16": torch.uint16, "U8": torch.uint8,
}


def check_safetensors_header(path: Path, limits: Limits = DEFAULT_LIMITS, weights: bool = True) -> dict:
    """A safetensors file's tensor entries from its JSON header alone, checked: the header's size and nesting,
    tensor count, shapes, offsets inside the file and (`weights`) the dtype policy."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        if header_len > limits.max_header_bytes:
            raise CheckpointError(f"{path.name}: safetensors header of {header_len:,} bytes exceeds the limit of "
                                  f"{limits.max_header_bytes:,}")
        if header_len + 8 > size:
            raise CheckpointError(f"{path.name}: truncated safetensors file (the header runs past the end)")
        header = loads_json(fh.read(header_len), f"{path.name}: safetensors header", limits)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name}: safetensors header is not a JSON object")
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    _check_counts(path.name, len(entries), [], limits)
    elements = []
    for key, entry in entries.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype")) if isinstance(entry, dict) else None
        if (dtype is None or not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape)
                or not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)):
            raise CheckpointError(f"{path.name}: malformed safetensors entry for tensor {key!r}")
        if offsets[1] + 8 + header_len > size:
            raise CheckpointError(f"{path.name}: truncated safetensors file (tensor {key} runs past the end)")
        try:
            if weights:
                dtype_verdict(key, dtype)
        except CheckpointError as exc:
            raise _named(path.name, exc) from None
        elements.append((key, int(np.prod(shape, dtype=object))))
    _check_counts(path.name, len(entries), elements, limits)
    return entries


# ---------------------------------------------------------------------------------------------- loading
# modules whose functions run commands, code or I/O when a pickle calls them: such a file is an attack, not a model
_CODE_EXECUTING = ("os.", "posix.", "nt.", "subprocess.", "builtins.", "__builtin__.", "sys.", "shutil.",
                   "socket.", "importlib.", "runpy.", "pty.", "code.", "webbrowser.", "ctypes.", "multiprocessing.")


def _unsafe_globals_message(name: str, unsafe: list[str]) -> str:
    """Why a checkpoint that names `unsafe` globals is refused: a code-executing pickle or a pickled model."""
    shown = ", ".join(sorted(unsafe)[:4])
    if any(g.startswith(_CODE_EXECUTING) for g in unsafe):
        return f"{name} is a code-executing pickle (it calls {shown}); refused, nothing in it was run"
    return (f"{name} contains Python objects that would need code execution to load ({shown}); "
            f"it is probably a pickled full model; {SAVE_HINT}")


def _load_torch(path: Path, kind: str, limits: Limits) -> object:
    if kind == "zip":
        _check_torch_zip(path, _zip_index(path, limits, limits.max_tensors + 64), limits)
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as exc:  # corrupt archive
            raise CheckpointError(f"{path.name}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None
        if unsafe:
            raise UnsafeCheckpointError(_unsafe_globals_message(path.name, unsafe))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # the message of weights_only names the refused global, e.g. "Unsupported global: GLOBAL os.system"
        detail = " ".join(str(exc).split())
        blocked = detail.split("Unsupported global: GLOBAL", 1)[-1].split()[0] if "Unsupported global" in detail else ""
        what = f"the class/function {blocked}" if blocked else "objects outside the weights-only allow-list"
        raise UnsafeCheckpointError(f"{path.name} needs {what} to load, which is refused; {SAVE_HINT}") from None
    except Exception as exc:
        raise CheckpointError(
            f"{path.name}: truncated or corrupt checkpoint ({_first_line(exc)})") from None
    check_nesting(obj, path.name, limits)
    return obj


def _load_safetensors(path: Path, limits: Limits) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    check_safetensors_header(path, limits)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path.name}: truncated or corrupt safetensors file ({_first_line(exc)})") from None
    return tensors, metadata


def _load_npz(path: Path, limits: Limits) -> dict[str, torch.Tensor]:
    _check_npz(path, _zip_index(path, limits, limits.max_tensors), limits)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: torch.from_numpy(np.array(data[k])) for k in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UnsafeCheckpointError(f"{path.name} holds pickled objects, which are refused") from None
        raise CheckpointError(f"{path.name}: unreadable .npz ({_first_line(exc)})") from None
    except (OSError, zipfile.BadZipFile, EOFError, TypeError) as exc:
        raise CheckpointError(f"{path.name}: truncated or corrupt .npz ({_first_line(exc)})") from None


def _flatten(obj: dict, name: str) -> dict[str, torch.Tensor]:
    """Nested dicts of tensors → one flat dict with dotted keys (iterative; `check_nesting` bounds the depth)."""
    out: dict[str, torch.Tensor] = {}
    stack: list[tuple[str, object]] = [("", obj)]
    while stack:
        prefix, item = stack.pop()
        if isinstance(item, torch.Tensor):
            if prefix in out:  # {"a.b": t, "a": {"b": t2}}: two tensors under one key
                raise CheckpointError(f"{name}: the key {prefix!r} names two tensors (once flat, once nested); "
                                      "the state_dict is ambiguous")
            out[prefix] = item
        elif isinstance(item, dict):
            stack.extend((f"{prefix}.{k}" if prefix else str(k), v) for k, v in reversed(list(item.items())))
    return out


def extract_state_dict(obj: object, name: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict]:
    """Find the model's state_dict in a loaded object (bare, or nested in a training checkpoint)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{name}: holds a {type(obj).__name__}, not a dict of tensors (a state_dict)")
    extras: dict = {}
    cur = obj
    for _ in range(3):  # a few levels of nesting, e.g. {"model": {"state_dict": ...}}
        if any(isinstance(v, torch.Tensor) for v in cur.values()):
            break
        nested = next((k for k in NESTED_KEYS if isinstance(cur.get(k), dict)), None)
        if nested is None:
            candidates = [k for k, v in cur.items() if isinstance(v, dict)]
            nested = candidates[0] if len(candidates) == 1 else None
        if nested is None:
            break
        extras.update({k: v for k, v in cur.items() if k != nested and not isinstance(v, (dict, torch.Tensor))})
        if isinstance(cur.get("config"), dict):
            extras["config"] = cur["config"]
        cur = cur[nested]
    tensors = _flatten({k: v for k, v in cur.items() if isinstance(v, (torch.Tensor, dict))}, name)
    # DataParallel / DistributedDataParallel prefix every key with "module."
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    if not tensors:
        raise CheckpointError(f"{name}: contains no tensors")
    return tensors, extras


ALIGNMENT = 64  # bytes: what torch's CPU allocator gives; BLAS kernels choose their summation path by it


def owned_aligned(t: torch.Tensor) -> torch.Tensor:
    """t itself if it is contiguous and `ALIGNMENT`-aligned, else an aligned contiguous copy.

    safetensors packs tensors back to back (8-byte offsets) and a torch.save'd view shares a larger storage;
    MKL picks different summation orders for misaligned operands, so a loaded network would compute slightly
    different outputs (last bits) than the same weights held in memory, and views would pin whole storages."""
    if t.is_contiguous() and t.data_ptr() % ALIGNMENT == 0 and t.untyped_storage().nbytes() == t.nbytes:
        return t
    return t.clone(memory_format=torch.contiguous_format)


def _check_kind(key: str, t: torch.Tensor) -> None:
    if t.layout != torch.strided:
        raise CheckpointError(f"tensor {key} is a {str(t.layout).removeprefix('torch.')} tensor; save dense weights "
                              "(t.to_dense())")
    if t.is_quantized or t.device.type == "meta":
        raise CheckpointError(f"tensor {key} is {'quantized' if t.is_quantized else 'on the meta device (no values)'}; "
                              "only plain floating-point tensors are read")
    if t.dim() > 0 and t.numel() == 0:
        raise CheckpointError(f"tensor {key} has shape {tuple(t.shape)}: a zero-width layer holds no weights")


def check_tensors(tensors: dict[str, torch.Tensor], name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Enforce count/size limits, the dtype policy and finiteness; raise CheckpointError naming the first offender."""
    _check_counts(name, len(tensors), [(k, t.numel()) for k, t in tensors.items()], limits)
    for key, t in tensors.items():
        try:
            _check_kind(key, t)
            dtype_verdict(key, t.dtype)
        except CheckpointError as exc:
            raise _named(name, exc) from None
        wide = t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float32)  # no isfinite for float8
        if wide.is_floating_point() and not bool(torch.isfinite(wide).all()):
            bad = "NaN" if bool(torch.isnan(wide).any()) else "Inf"
            raise CheckpointError(f"{name}: tensor {key} contains {bad} values")


def _widen(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """float16 / bfloat16 / float8 tensors as float32, and one note per converted dtype."""
    converted = sorted({str(t.dtype).removeprefix("torch.") for k, t in tensors.items() if dtype_verdict(k, t.dtype)})
    if not converted:
        return tensors, []
    out = {k: t.to(torch.float32) if dtype_verdict(k, t.dtype) else t for k, t in tensors.items()}
    return out, [f"{', '.join(converted)} tensors converted to float32 (exact: float32 holds every such value)"]


def read_tensor_file(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> TensorFile:
    """Read a checkpoint's tensors safely (nothing in the file is executed) and validate them."""
    path = Path(path)
    _check_size(path, limits)
    kind = _sniff(path)
    metadata: dict[str, str] = {}
    extras: dict = {}
    if kind == "safetensors" or (path.suffix == ".safetensors" and kind == "unknown"):
        tensors, metadata = _load_safetensors(path, limits)
        container = "safetensors"
    elif path.suffix == ".npz" and kind == "zip":
        tensors, container = _load_npz(path, limits), "npz"
    elif kind in ("zip", "pickle"):
        tensors, extras = extract_state_dict(_load_torch(path, kind, limits), path.name)
        container = "torch"
    else:
        raise CheckpointError(
            f"{path.name}: not a recognised checkpoint "
            "(expected a torch.save state_dict .pt/.pth/.bin, .safetensors or .npz)")
    if not tensors:
        raise CheckpointError(f"{path.name}: contains no tensors")
    check_tensors(tensors, path.name, limits)
    tensors, notes = _widen(tensors)
    tensors = {k: owned_aligned(t) for k, t in tensors.items()}
    return TensorFile(tensors=tensors, metadata=metadata, container=container, extras=extras, notes=notes)


def json_metadata(metadata: dict[str, str], key: str, limits: Limits = DEFAULT_LIMITS) -> object:
    """Decode one JSON-valued metadata entry (size and nesting bounded); CheckpointError if it is malformed."""
    if key not in metadata:
        raise CheckpointError(f"malformed metadata: no entry {key!r}")
    return loads_json(metadata[key], f"metadata entry {key!r}", limits)


def check_value_sizes(architecture, name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse an architecture whose declared input or any value computed from it is too large to probe or run.

    Checked on the declared shapes alone, before any input is allocated (`check` runs 32 float64 probes)."""
    try:
        shapes = architecture.value_shapes()
    except (OverflowError, ValueError, MemoryError) as exc:
        raise CheckpointError(f"{name}: unusable declared shapes ({_first_line(exc)})") from None
    for i, shape in enumerate(shapes):
        n = int(np.prod(shape, dtype=object)) if shape else 1
        if n > limits.max_value_elements or any(s <= 0 for s in shape):
            where = "the declared input" if i == 0 else f"the value after op {i - 1}"
            raise CheckpointError(f"{name}: {where} has shape {tuple(shape)} ({n:,} elements per sample); the limit is "
                                  f"{limits.max_value_elements:,} positive-sized elements")
