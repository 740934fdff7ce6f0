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

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.errors import CheckpointError
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
        raise CheckpointError(f"layout.csv needs columns varname, start_idx, end_idx, shape; has {list(layout.columns)}")
    return found  # type: ignore[return-value]


def _shape(text: str) -> tuple[int, ...]:
    try:
        value = ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError):
        value = [int(t) for t in re.findall(r"\d+", str(text))]
    return tuple(int(v) for v in (value if isinstance(value, (tuple, list)) else [value]))


def read_small_cnn_zoo(directory: str | os.PathLike, step: int | None = 86, input_size: int = 32) -> SmallCNNZoo:
    """Read a Small CNN Zoo directory into flat torch-layout parameters + architectures + metrics."""
    d = Path(directory)
    for name in ("weights.npy", "layout.csv", "metrics.csv.gz"):
        if not (d / name).is_file():
            raise CheckpointError(f"{d}: not a Small CNN Zoo directory (missing {name})")
    try:
        weights = np.load(d / "weights.npy", mmap_mode="r", allow_pickle=False)
        layout = pd.read_csv(d / "layout.csv")
        metrics = pd.read_csv(d / "metrics.csv.gz")
    except (ValueError, OSError, pd.errors.ParserError, EOFError) as exc:
        raise CheckpointError(f"{d}: unreadable zoo file ({exc})") from None
    if weights.ndim != 2 or len(metrics) != weights.shape[0]:
        raise CheckpointError(f"{d}: weights.npy has shape {weights.shape} but metrics has {len(metrics)} rows")
    keep = np.ones(len(metrics), dtype=bool) if step is None or "step" not in metrics else (metrics["step"].to_numpy() == step)
    rows = np.flatnonzero(keep)
    name_c, start_c, end_c, shape_c = _columns(layout)

    ops: list[Op] = []
    pieces: list[torch.Tensor] = []
    raw = torch.from_numpy(np.asarray(weights[rows], dtype=np.float32))
    if not bool(torch.isfinite(raw).all()):
        raise CheckpointError(f"{d}: weights.npy contains NaN or Inf values")
    in_channels = None
    entries = list(layout.itertuples(index=False))
    kernels = [e for e in entries if "kernel" in str(getattr(e, name_c))]
    for idx, entry in enumerate(entries):
        var = str(getattr(entry, name_c))
        start, end, shape = int(getattr(entry, start_c)), int(getattr(entry, end_c)), _shape(getattr(entry, shape_c))
        block = raw[:, start:end].reshape(len(rows), *shape)
        layer = var.split("/")[-2] if "/" in var else var.split(":")[0]
        layer = re.sub(r"\W", "_", layer)
        if "kernel" in var:
            last = entry is kernels[-1]
            if len(shape) == 4:  # HWIO → OIHW
                kh, kw, cin, cout = shape
                ops.append(Conv(layer, cin, cout, (kh, kw), (2, 2), (kh // 2, kw // 2)))
                pieces.append(block.permute(0, 4, 3, 1, 2).reshape(len(rows), -1))
                in_channels = in_channels or cin
            elif len(shape) == 2:  # [in, out] → [out, in]
                if ops and isinstance(ops[-1], (Conv, Activation)):
                    ops.append(GlobalAvgPool())
                ops.append(Linear(layer, shape[0], shape[1]))
                pieces.append(block.transpose(1, 2).reshape(len(rows), -1))
            else:
                raise CheckpointError(f"{d}: variable {var} has unsupported shape {shape}")
            has_bias = idx + 1 < len(entries) and "bias" in str(getattr(entries[idx + 1], name_c))
            if not has_bias:
                op = ops[-1]
                ops[-1] = type(op)(**{**op.__dict__, "bias": False})
            if not last:
                ops.append(Activation("unknown"))
        elif "bias" in var:
            pieces.append(block.reshape(len(rows), -1))
        else:
            raise CheckpointError(f"{d}: unexpected variable {var} in layout.csv")
    flat = torch.cat(pieces, dim=1)
    input_shape = (in_channels or 1, input_size, input_size) if any(isinstance(o, Conv) for o in ops) else (ops[0].in_features,)
    base = Architecture(tuple(ops), input_shape)
    table = metrics.iloc[rows].reset_index(drop=True)
    act_col = next((c for c in ("config.activation", "activation") if c in table), None)
    cache: dict[str, Architecture] = {}
    archs = []
    for i in range(len(rows)):
        fn = str(table[act_col].iloc[i]).lower() if act_col else "unknown"
        fn = fn if fn in ("relu", "tanh", "sigmoid", "identity", "gelu", "silu") else ("identity" if fn == "linear" else "unknown")
        if fn not in cache:
            cache[fn] = base.with_activation(fn)
        archs.append(cache[fn])
    return SmallCNNZoo(flat=flat, architectures=archs, table=table)
