"""Read tensors out of checkpoint files without executing anything in them.

Supported containers: PyTorch `torch.save` files (zip or legacy pickle, read with `weights_only=True`),
safetensors, and NumPy `.npz` (read with `allow_pickle=False`). TorchScript archives and pickles that need
arbitrary globals (full-module pickles) are refused with the name of the blocking class.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.errors import CheckpointError, UnsafeCheckpointError

# Keys under which training checkpoints commonly nest the model's state_dict, most specific first.
NESTED_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "network", "module", "weights", "params", "ema")

SAVE_HINT = "save a state_dict instead: torch.save(model.state_dict(), 'model.pt')"


@dataclass(frozen=True)
class Limits:
    """Upper bounds that protect a server from oversized or hostile files."""

    max_file_bytes: int = 1 << 30  # 1 GiB
    max_tensors: int = 10_000
    max_tensor_elements: int = 100_000_000
    max_total_elements: int = 250_000_000


DEFAULT_LIMITS = Limits()


@dataclass
class TensorFile:
    """The tensors of a checkpoint (a flat, ordered state_dict) and any metadata that came with it."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    container: str = "torch"  # torch | safetensors | npz
    extras: dict = field(default_factory=dict)  # non-tensor entries of a training checkpoint (e.g. "config")


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
        raise CheckpointError(f"{path.name}: {size / 2**20:.0f} MiB exceeds the {limits.max_file_bytes / 2**20:.0f} MiB limit")


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in names)


def _load_torch(path: Path, kind: str) -> object:
    if kind == "zip":
        if _is_torchscript(path):
            raise UnsafeCheckpointError(
                f"{path.name} is a TorchScript archive, which is code and is never loaded; {SAVE_HINT}"
            )
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as exc:  # corrupt archive
            raise CheckpointError(f"{path.name}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})".splitlines()[0]) from None
        if unsafe:
            shown = ", ".join(sorted(unsafe)[:4])
            raise UnsafeCheckpointError(
                f"{path.name} contains Python objects that would need code execution to load ({shown}); "
                f"it is probably a pickled full model; {SAVE_HINT}"
            )
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # the message of weights_only names the refused global, e.g. "Unsupported global: GLOBAL os.system"
        detail = " ".join(str(exc).split())
        blocked = detail.split("Unsupported global: GLOBAL", 1)[-1].split()[0] if "Unsupported global" in detail else None
        what = f"the class/function {blocked}" if blocked else "objects outside the weights-only allow-list"
        raise UnsafeCheckpointError(f"{path.name} needs {what} to load, which is refused; {SAVE_HINT}") from None
    except Exception as exc:
        raise CheckpointError(
            f"{path.name}: truncated or corrupt checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path.name}: truncated or corrupt safetensors file ({exc})") from None
    return tensors, metadata


def _load_npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: torch.from_numpy(np.array(data[k])) for k in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UnsafeCheckpointError(f"{path.name} holds pickled objects, which are refused") from None
        raise CheckpointError(f"{path.name}: unreadable .npz ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{path.name}: truncated or corrupt .npz ({exc})") from None


def _flatten(obj: object, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)


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
    tensors: dict[str, torch.Tensor] = {}
    _flatten({k: v for k, v in cur.items() if isinstance(v, (torch.Tensor, dict))}, "", tensors)
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


def check_tensors(tensors: dict[str, torch.Tensor], name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Enforce count/size limits and finiteness; raise CheckpointError naming the first offending tensor."""
    if len(tensors) > limits.max_tensors:
        raise CheckpointError(f"{name}: {len(tensors)} tensors exceed the limit of {limits.max_tensors}")
    total = 0
    for key, t in tensors.items():
        n = t.numel()
        if n > limits.max_tensor_elements:
            raise CheckpointError(f"{name}: tensor {key} has {n:,} elements, over the limit of {limits.max_tensor_elements:,}")
        total += n
        if total > limits.max_total_elements:
            raise CheckpointError(f"{name}: more than {limits.max_total_elements:,} elements in all")
        if t.is_floating_point() or t.is_complex():
            if not bool(torch.isfinite(t).all()):
                bad = "NaN" if bool(torch.isnan(t).any()) else "Inf"
                raise CheckpointError(f"{name}: tensor {key} contains {bad} values")


def read_tensor_file(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> TensorFile:
    """Read a checkpoint's tensors safely (nothing in the file is executed) and validate them."""
    path = Path(path)
    _check_size(path, limits)
    kind = _sniff(path)
    metadata: dict[str, str] = {}
    extras: dict = {}
    if kind == "safetensors" or (path.suffix == ".safetensors" and kind == "unknown"):
        tensors, metadata = _load_safetensors(path)
        container = "safetensors"
    elif path.suffix == ".npz" and kind == "zip":
        tensors, container = _load_npz(path), "npz"
    elif kind in ("zip", "pickle"):
        tensors, extras = extract_state_dict(_load_torch(path, kind), path.name)
        container = "torch"
    else:
        raise CheckpointError(
            f"{path.name}: not a recognised checkpoint (expected a torch.save state_dict .pt/.pth/.bin, .safetensors or .npz)"
        )
    if not tensors:
        raise CheckpointError(f"{path.name}: contains no tensors")
    check_tensors(tensors, path.name, limits)
    tensors = {k: owned_aligned(t) for k, t in tensors.items()}
    return TensorFile(tensors=tensors, metadata=metadata, container=container, extras=extras)


def json_metadata(metadata: dict[str, str], key: str) -> object:
    """Decode one JSON-valued metadata entry; CheckpointError if it is malformed."""
    try:
        return json.loads(metadata[key])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"malformed metadata entry {key!r}: {exc}") from None

