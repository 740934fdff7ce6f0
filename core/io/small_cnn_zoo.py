"""Reader for the Small CNN Zoo format (Unterthiner et al. 2020: CIFAR10-GS, SVHN-GS, MNIST, F-MNIST).

A zoo directory holds `weights.npy` ([n, P] flat parameters, TensorFlow layout), `layout.csv` (one row per
variable: name, start index, end index, shape in TF order — HWIO for conv kernels, [in, out] for dense)
and `metrics.csv.gz` (one row per weights row; `step`, `test_accuracy`, `config.*` hyperparameters).
Only rows at the final step (86 in the published zoos) are kept. The nets are 3 × (3×3 conv, 16 channels,
stride 2) → global average pooling → dense(10) on 32×32 grey images; TF's "same" padding with stride 2
pads bottom/right only, which torch's symmetric padding cannot express, so executing a converted net
reproduces TF outputs only approximately (the parameters and graphs are exact).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.errors import ArchitectureError, CheckpointError
from core.io.read import DEFAULT_LIMITS, Limits, check_value_sizes
from core.network.spec import Activation, Architecture, Conv, GlobalAvgPool, Linear, Network, Op


@dataclass
class SmallCNNZoo:
    """Networks of one parameter layout: flat parameters [n, P], an architecture per row, the metrics table."""

    flat: torch.Tensor
    architectures: list[Architecture]
    table: pd.DataFrame

    def __len__(self) -> int:
        return self.flat.shape[0]

    def network(self, i: int) -> Network:
        """Network `i`, with its metrics row as metadata."""
        meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in self.table.iloc[i].to_dict().items()}
        return Network.from_flat(self.architectures[i], self.flat[i], meta)


def _columns(layout: pd.DataFrame) -> tuple[str, str, str, str]:
    cols = {c.lower(): c for c in layout.columns}
    pick = lambda *names: next((cols[n] for n in names if n in cols), None)  # noqa: E731
    found = (pick("varname", "name", "variable"), pick("start_idx", "start"), pick("end_idx", "end"), pick("shape"))
    if None in found:
        raise CheckpointError(
            f"layout.csv needs columns varname, start_idx, end_idx, shape; has {list(layout.columns)[:10]}")
    return found  # type: ignore[return-value]


_SHAPE_TEXT = re.compile(r"[\[(]?\s*\d{1,9}(\s*,\s*\d{1,9}){0,3}\s*,?\s*[\])]?")


def _shape(text: object, where: str) -> tuple[int, ...]:
    """A layout shape such as "(3, 3, 1, 16)" or "[16]": one to four positive integers (never evaluated)."""
    text = str(text).strip()
    if len(text) > 100 or not _SHAPE_TEXT.fullmatch(text):
        raise CheckpointError(f"{where}: shape {text[:40]!r} is not one to four positive integers")
    shape = tuple(int(t) for t in re.findall(r"\d+", text))
    if min(shape) <= 0:
        raise CheckpointError(f"{where}: shape {shape} has an empty dimension")
    return shape


def _index(value: object, where: str) -> int:
    """A start/end index from layout.csv: a whole number (CSV readers may give floats or strings)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise CheckpointError(f"{where}: index {str(value)[:40]!r} is not a whole number")
    return int(number)


def _layout_entries(layout: pd.DataFrame, width: int, d: Path) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """(variable, start, end, shape) per layout row, checked against the width of weights.npy."""
    name_c, start_c, end_c, shape_c = _columns(layout)
    entries = []
    for row, entry in enumerate(layout.itertuples(index=False)):
        var = str(getattr(entry, name_c))
        where = f"{d}: layout.csv row {row + 1} ({var[:60]})"
        start, end = _index(getattr(entry, start_c), where), _index(getattr(entry, end_c), where)
        shape = _shape(getattr(entry, shape_c), where)
        if not 0 <= start < end <= width:
            raise CheckpointError(f"{where}: columns {start}…{end} are outside weights.npy's {width} columns")
        if math.prod(shape) != end - start:
            raise CheckpointError(f"{where}: shape {shape} holds {math.prod(shape)} values, columns {start}…{end} "
                                  f"hold {end - start}")
        entries.append((var, start, end, shape))
    return entries


def _read_files(d: Path, limits: Limits) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """weights.npy (memory-mapped), layout.csv and metrics.csv.gz, each bounded before it is read in full."""
    for name in ("weights.npy", "layout.csv", "metrics.csv.gz"):
        if not (d / name).is_file():
            raise CheckpointError(f"{d}: not a Small CNN Zoo directory (missing {name})")
    try:
        weights = np.load(d / "weights.npy", mmap_mode="r", allow_pickle=False)  # mapped: nothing read yet
    except (ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{d}: unreadable weights.npy ({' '.join(str(exc).split())[:200]})") from None
    if weights.ndim != 2 or weights.dtype.kind != "f" or weights.shape[1] > limits.max_total_elements:
        raise CheckpointError(f"{d}: weights.npy must be a 2-d float array [networks, parameters]; it is "
                              f"{weights.dtype} of shape {weights.shape}")
    try:
        layout = pd.read_csv(d / "layout.csv", nrows=limits.max_tensors + 1)
        # one more row than weights.npy has is enough to tell a mismatch, and bounds what is inflated
        metrics = pd.read_csv(d / "metrics.csv.gz", nrows=weights.shape[0] + 1)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError, EOFError) as exc:
        raise CheckpointError(f"{d}: unreadable zoo file ({' '.join(str(exc).split())[:200]})") from None
    if len(metrics) != weights.shape[0]:
        raise CheckpointError(f"{d}: weights.npy has shape {weights.shape} but metrics has "
                              f"{len(metrics)}{'+' if len(metrics) > weights.shape[0] else ''} rows")
    if len(layout) > limits.max_tensors:
        raise CheckpointError(f"{d}: layout.csv has more than {limits.max_tensors:,} variables")
    return weights, layout, metrics


def _convert(entries: list[tuple[str, int, int, tuple[int, ...]]], raw: torch.Tensor,
             d: Path) -> tuple[list[Op], list[torch.Tensor], int | None]:
    """Ops, torch-layout parameter blocks [n, size] and input channels from the TF variables in order."""
    ops: list[Op] = []
    pieces: list[torch.Tensor] = []
    in_channels = None
    n = raw.shape[0]
    kernels = [e for e in entries if "kernel" in e[0]]
    for idx, entry in enumerate(entries):
        var, start, end, shape = entry
        block = raw[:, start:end].reshape(n, *shape)
        layer = var.split("/")[-2] if "/" in var else var.split(":")[0]
        layer = re.sub(r"\W", "_", layer)
        if "kernel" in var:
            if len(shape) == 4:  # HWIO → OIHW
                kh, kw, cin, cout = shape
                ops.append(Conv(layer, cin, cout, (kh, kw), (2, 2), (kh // 2, kw // 2)))
                pieces.append(block.permute(0, 4, 3, 1, 2).reshape(n, -1))
                in_channels = in_channels or cin
            elif len(shape) == 2:  # [in, out] → [out, in]
                if ops and isinstance(ops[-1], (Conv, Activation)):
                    ops.append(GlobalAvgPool())
                ops.append(Linear(layer, shape[0], shape[1]))
                pieces.append(block.transpose(1, 2).reshape(n, -1))
            else:
                raise CheckpointError(f"{d}: variable {var} has unsupported shape {shape}")
            if not (idx + 1 < len(entries) and "bias" in entries[idx + 1][0]):
                op = ops[-1]
                ops[-1] = type(op)(**{**op.__dict__, "bias": False})
            if entry is not kernels[-1]:
                ops.append(Activation("unknown"))
        elif "bias" in var:
            pieces.append(block.reshape(n, -1))
        else:
            raise CheckpointError(f"{d}: unexpected variable {var} in layout.csv")
    if not any(isinstance(op, (Conv, Linear)) for op in ops):
        raise CheckpointError(f"{d}: layout.csv lists no kernel variables")
    return ops, pieces, in_channels


ACTIVATION_NAMES = ("relu", "tanh", "sigmoid", "identity", "gelu", "silu")


def _per_network_architectures(base: Architecture, table: pd.DataFrame) -> list[Architecture]:
    """The architecture of each row: `base` with the row's activation (unknown when the table has none)."""
    act_col = next((c for c in ("config.activation", "activation") if c in table), None)
    cache: dict[str, Architecture] = {}
    archs = []
    for i in range(len(table)):
        fn = str(table[act_col].iloc[i]).lower() if act_col else "unknown"
        fn = fn if fn in ACTIVATION_NAMES else ("identity" if fn == "linear" else "unknown")
        if fn not in cache:
            cache[fn] = base.with_activation(fn)
        archs.append(cache[fn])
    return archs


def read_small_cnn_zoo(directory: str | os.PathLike, step: int | None = 86, input_size: int = 32,
                       limits: Limits = DEFAULT_LIMITS) -> SmallCNNZoo:
    """Read a Small CNN Zoo directory into flat torch-layout parameters + architectures + metrics."""
    d = Path(directory)
    weights, layout, metrics = _read_files(d, limits)
    final = step is not None and "step" in metrics
    rows = np.flatnonzero(metrics["step"].to_numpy() == step) if final else np.arange(len(metrics))
    if len(rows) * weights.shape[1] > limits.max_total_elements:
        raise CheckpointError(f"{d}: {len(rows):,} networks × {weights.shape[1]:,} parameters exceed the limit of "
                              f"{limits.max_total_elements:,} values")
    entries = _layout_entries(layout, weights.shape[1], d)
    raw = torch.from_numpy(np.asarray(weights[rows], dtype=np.float32))
    if not bool(torch.isfinite(raw).all()):
        raise CheckpointError(f"{d}: weights.npy contains NaN or Inf values")
    ops, pieces, in_channels = _convert(entries, raw, d)
    flat = torch.cat(pieces, dim=1)
    convolutional = any(isinstance(o, Conv) for o in ops)
    input_shape = (in_channels or 1, input_size, input_size) if convolutional else (ops[0].in_features,)
    try:
        base = Architecture(tuple(ops), input_shape)
        check_value_sizes(base, str(d), limits)
    except ArchitectureError as exc:
        raise CheckpointError(f"{d}: the layout does not describe a chain of layers ({exc})") from None
    table = metrics.iloc[rows].reset_index(drop=True)
    return SmallCNNZoo(flat=flat, architectures=_per_network_architectures(base, table), table=table)
