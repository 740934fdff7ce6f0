"""Checkpoint I/O: read any supported file safely into a `Network`, and write the export format.

    load_network(path, activation=None)  .pt/.pth/.bin (state_dict or training checkpoint), .safetensors
                                         (plain or the project's export format), .npz
    network_from_module(module, input_shape)   trace an nn.Module with torch.fx
    network_from_state_dict(tensors, activation)
    save_network(network, path)          safetensors + architecture metadata (round-trips without code)
    read_small_cnn_zoo(directory)        Small CNN Zoo (weights.npy + layout.csv + metrics.csv.gz)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from core.errors import UnknownActivationError
from core.io.export import is_export, network_from_export, network_to_bytes, save_network
from core.io.infer import architecture_from_state_dict, network_from_state_dict
from core.io.read import DEFAULT_LIMITS, Limits, TensorFile, check_value_sizes, read_tensor_file
from core.io.small_cnn_zoo import SmallCNNZoo, read_small_cnn_zoo
from core.io.trace import network_from_module
from core.network.spec import ACTIVATIONS, Network

SUPPORTED_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".npz")


def load_network(
    path: str | os.PathLike,
    activation: str | None = None,
    *,
    w0: float = 30.0,
    slope: float = 0.01,
    input_size: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Network:
    """Read a checkpoint file into a Network; nothing in the file is executed.

    `activation` overrides an unknown activation (state_dicts do not store one); an exported file's
    own description wins unless its activation is unknown.
    """
    if activation is not None and activation not in ACTIVATIONS:
        raise UnknownActivationError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS[:-1])}")
    path = Path(path)
    tf = read_tensor_file(path, limits)
    if tf.container == "safetensors" and is_export(tf.metadata):
        net = network_from_export(tf.tensors, tf.metadata, path.name, limits)
        if activation is not None:
            net = Network(net.architecture.with_activation(activation, slope=slope, w0=w0), net.params, net.meta)
    else:
        net = network_from_state_dict(tf.tensors, activation, w0=w0, slope=slope, input_size=input_size)
    check_value_sizes(net.architecture, path.name, limits)
    if tf.notes:
        net.meta["assumptions"] = [*net.meta.get("assumptions", []), *tf.notes]
    net.meta["file"] = path.name
    net.meta["container"] = tf.container
    if tf.extras.get("config") is not None:
        net.meta["config"] = tf.extras["config"]
    return net


__all__ = [
    "DEFAULT_LIMITS", "Limits", "SUPPORTED_SUFFIXES", "SmallCNNZoo", "TensorFile", "architecture_from_state_dict",
    "load_network", "load_network_bytes", "network_from_module", "network_from_state_dict", "network_to_bytes",
    "read_small_cnn_zoo", "read_tensor_file", "save_network",
]


def load_network_bytes(data: bytes, filename: str, activation: str | None = None, **kwargs) -> Network:
    """Load a checkpoint given as bytes (an upload); the name's suffix picks nothing, the content does."""
    import tempfile

    limits: Limits = kwargs.get("limits", DEFAULT_LIMITS)
    if len(data) > limits.max_file_bytes:
        from core.errors import CheckpointError

        raise CheckpointError(
            f"{filename}: {len(data) / 2**20:.0f} MiB exceeds the {limits.max_file_bytes / 2**20:.0f} MiB limit")
    suffix = Path(filename).suffix if Path(filename).suffix in SUPPORTED_SUFFIXES else ".pt"
    # the temporary copy carries the upload's own (sanitised) name, so errors name the file the user chose
    stem = re.sub(r"[^\w.-]", "_", Path(filename).stem)[:100].lstrip(".") or "upload"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{stem}{suffix}"
        path.write_bytes(data)
        net = load_network(path, activation, **kwargs)
    net.meta["file"] = Path(filename).name
    return net
