"""The project's own network format: safetensors whose metadata holds the architecture description.

Metadata keys (all strings, as safetensors requires):
    format        "weight-space-explorer.network"
    version       "1"
    architecture  Architecture.to_json()
    meta          JSON of the network's JSON-serialisable metadata (assumptions, source, labels, …)
Any supported network round-trips bit for bit without its code, and one network always gives the same bytes (the
metadata keys are written sorted).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from core.errors import ArchitectureError, CheckpointError
from core.io.atomic import atomic_path
from core.io.read import DEFAULT_LIMITS, Limits, check_value_sizes, loads_json
from core.network.spec import Architecture, Network

FORMAT = "weight-space-explorer.network"
VERSION = "1"


def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        if k == "extra_buffers":
            continue
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[k] = v
    return out


def export_metadata(network: Network) -> dict[str, str]:
    """The safetensors metadata that describes `network`."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "architecture": network.architecture.to_json(),
        "meta": json.dumps(_json_safe(network.meta)),
    }


def save_network(network: Network, path: str | os.PathLike) -> None:
    """Write `network` in the export format (atomically)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=export_metadata(network))
        with open(tmp, "r+b") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = fh.read(size)
            fh.seek(8)
            fh.write(_sort_metadata_keys(header))


def network_to_bytes(network: Network) -> bytes:
    """The export format as bytes (for downloads)."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    data = save(tensors, metadata=export_metadata(network))
    size = int.from_bytes(data[:8], "little")
    return data[:8] + _sort_metadata_keys(data[8:8 + size]) + data[8 + size:]


def _sort_metadata_keys(header: bytes) -> bytes:
    """A safetensors JSON header with its `__metadata__` keys sorted, padded with spaces to the header's length.

    safetensors 0.8 writes the metadata map in a random order (upstream issue safetensors#584), so one network
    exported twice gave two different files. Sorting makes the export format byte-reproducible; the tensor entries,
    and so every data offset, keep their place and the header its length.
    """
    described = json.loads(header)
    if not isinstance(described.get("__metadata__"), dict):
        return header
    described["__metadata__"] = dict(sorted(described["__metadata__"].items()))
    # serde_json and json escape the same characters, so the sorted header is exactly as long as the original
    out = json.dumps(described, separators=(",", ":"), ensure_ascii=False).encode()
    if len(out) > len(header):  # never expected; keep the library's valid (if unsorted) header
        return header
    return out.ljust(len(header), b" ")


def is_export(metadata: dict[str, str]) -> bool:
    """Whether safetensors metadata comes from `save_network`."""
    return metadata.get("format") == FORMAT


def network_from_export(tensors: dict[str, torch.Tensor], metadata: dict[str, str], name: str = "file",
                        limits: Limits = DEFAULT_LIMITS) -> Network:
    """Rebuild the Network saved by `save_network` (JSON size, nesting and declared shapes checked first)."""
    if metadata.get("version") != VERSION:
        raise CheckpointError(
            f"{name}: export format version {metadata.get('version')!r} is not supported (expected {VERSION})")
    described = loads_json(metadata.get("architecture", ""), f"{name}: architecture metadata", limits,
                           ArchitectureError)
    if not isinstance(described, dict):
        raise ArchitectureError(f"{name}: the architecture metadata is not a JSON object")
    arch = Architecture.from_dict(described)
    check_value_sizes(arch, name, limits)
    meta = loads_json(metadata.get("meta", "{}"), f"{name}: 'meta' metadata", limits)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name}: the 'meta' metadata is not a JSON object")
    wanted = dict(arch.parameter_shapes())
    params = {k: v for k, v in tensors.items() if k in wanted}
    extra = {k: v for k, v in tensors.items() if k not in wanted}
    if extra:
        meta["extra_buffers"] = extra
    return Network(arch, params, meta)
