"""Import the public zoo formats into the project's zoo directory format.

    dwsnets         DWSNets INR folders: mnist_png_{training|testing}_<label>_<id>/…/*.pth, keys seq.N.*
                    (SIREN 2→…→1, sin(30·(Wx+b)), output + 0.5); testing → test split, training → train / val
    nfn             NFN SIREN folders: randinit_smaller_<label>s/net<idx>.pth (original SIREN: no +0.5);
                    the Linear layers are renamed seq.0, seq.1, … in file order
    small-cnn-zoo   weights.npy + layout.csv + metrics.csv.gz (rows with step == 86), via core.io
    cnn-wild-park   checkpoints {"model": state_dict, "config": {...}} (*.pt / *.pth), grouped by architecture
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.io import load_network, read_small_cnn_zoo
from core.io.read import read_tensor_file
from core.network.spec import ACTIVATIONS, Architecture, siren_architecture
from core.zoo.images import ZooError
from core.zoo.store import split_assignment, write_zoo

FORMATS = ("dwsnets", "nfn", "small-cnn-zoo", "cnn-wild-park")
_DWS_DIR = re.compile(r"^(?P<dataset>[A-Za-z0-9]+)_png_(?P<part>training|testing)_(?P<label>\d+)_(?P<id>\d+)$")
_NFN_DIR = re.compile(r"^randinit_smaller_(?P<label>.+?)s?$")
_NFN_FILE = re.compile(r"^net(?P<idx>\d+)\.pth?$")


def _siren_from_tensors(tensors: dict[str, torch.Tensor], w0: float, offset: float,
                        path: Path) -> tuple[Architecture, torch.Tensor]:
    """Ordered Linear weights/biases of a SIREN state_dict → (siren architecture, flat params)."""
    weights = [(k, v) for k, v in tensors.items() if k.endswith("weight") and v.dim() == 2]
    if not weights:
        raise ZooError(f"{path}: no Linear weights found")
    parts, hidden = [], []
    prev = None
    for i, (key, w) in enumerate(weights):
        bias = tensors.get(key[: -len("weight")] + "bias")
        if bias is None or bias.shape != (w.shape[0],):
            raise ZooError(f"{path}: {key} has no matching bias")
        if prev is not None and w.shape[1] != prev:
            raise ZooError(f"{path}: {key} takes {w.shape[1]} inputs but the previous layer gives {prev}")
        prev = w.shape[0]
        if i < len(weights) - 1:
            hidden.append(w.shape[0])
        parts += [w.reshape(-1), bias.reshape(-1)]
    if weights[0][1].shape[1] != 2 or prev != 1:
        raise ZooError(f"{path}: not a 2→…→1 SIREN (input {weights[0][1].shape[1]}, output {prev})")
    return siren_architecture(tuple(hidden), w0, offset), torch.cat(parts).to(torch.float32)


def _inr_import(files: list[tuple[Path, int, str | None]], fmt: str, out: Path, src: Path, w0: float, offset: float,
                seed: int, overwrite: bool):
    if not files:
        raise ZooError(f"{src}: no {fmt} INR checkpoints found")
    flats: list[torch.Tensor] = []
    rows: list[dict[str, Any]] = []
    arch0 = None
    for i, (path, label, part) in enumerate(files):
        arch, flat = _siren_from_tensors(read_tensor_file(path).tensors, w0, offset, path)
        if arch0 is None:
            arch0 = arch
        elif arch != arch0:
            raise ZooError(f"{path}: architecture differs from the first INR's; one folder must hold one SIREN shape")
        flats.append(flat)
        rows.append(dict(index=i, group="siren", label=label, file=str(path.relative_to(src)), source_split=part or ""))
    parts = [r["source_split"] for r in rows]
    train_like = np.flatnonzero([p != "testing" for p in parts])
    split = np.array(["test" if p == "testing" else "train" for p in parts], dtype=object)
    if any(p == "testing" for p in parts):  # DWSNets: 5k of the 60k training INRs are the validation set
        val = split_assignment(train_like, (11.0, 1.0, 0.0), seed)
        split[train_like] = np.where(val == "val", "val", "train")
    else:
        split = split_assignment(np.arange(len(rows)), (0.8, 0.1, 0.1), seed)
    return write_zoo(out, generator=f"import:{fmt}", options=dict(source=str(src), w0=w0, offset=offset, seed=seed),
                     architectures={"siren": arch0}, groups={"siren": (list(range(len(rows))), torch.stack(flats))},
                     rows=rows, splits_by_index={i: str(s) for i, s in enumerate(split)},
                     source={"format": fmt, "path": str(src)}, overwrite=overwrite)


def import_dwsnets(src: Path, out: Path, seed: int = 0, overwrite: bool = False):
    """DWSNets INR folders → zoo."""
    files = []
    for path in sorted(src.rglob("*.pth")):
        for parent in path.relative_to(src).parents:
            m = _DWS_DIR.match(parent.name)
            if m:
                files.append((path, int(m["label"]), m["part"]))
                break
    return _inr_import(files, "dwsnets", out, src, 30.0, 0.5, seed, overwrite)


def import_nfn(src: Path, out: Path, seed: int = 0, overwrite: bool = False):
    """NFN SIREN folders → zoo (original SIREN: w0 = 30, no output offset)."""
    files = []
    def order(p: Path) -> tuple[str, int]:
        m = _NFN_FILE.match(p.name)
        return str(p.parent), int(m["idx"]) if m else 0

    for path in sorted(src.rglob("net*.pt*"), key=order):
        m = _NFN_DIR.match(path.parent.name)
        if m and _NFN_FILE.match(path.name):
            label = m["label"]
            files.append((path, int(label) if label.isdigit() else label, None))
    labels = sorted({f[1] for f in files}, key=str)
    if any(isinstance(f[1], str) for f in files):
        files = [(p, labels.index(lab), part) for p, lab, part in files]
    return _inr_import(files, "nfn", out, src, 30.0, 0.0, seed, overwrite)


def import_small_cnn_zoo(src: Path, out: Path, seed: int = 0, overwrite: bool = False):
    """Small CNN Zoo directory → zoo (groups by activation)."""
    zoo = read_small_cnn_zoo(src)
    if len(zoo) == 0:
        raise ZooError(f"{src}: no networks at the final step")
    archs: dict[str, Architecture] = {}
    group_of = []
    for arch in zoo.architectures:
        name = arch.activations()[0].fn if arch.activations() else "none"
        archs.setdefault(name, arch)
        group_of.append(name)
    rows = []
    for i, rec in enumerate(zoo.table.to_dict("records")):
        row = {"index": i, "group": group_of[i]}
        row.update({k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()})
        rows.append(row)
    groups = {}
    for g in archs:
        idx = [i for i in range(len(zoo)) if group_of[i] == g]
        groups[g] = (idx, zoo.flat[idx])
    split = split_assignment(np.arange(len(zoo)), (0.8, 0.1, 0.1), seed)
    return write_zoo(out, generator="import:small-cnn-zoo", options=dict(source=str(src), seed=seed),
                     architectures=archs, groups=groups, rows=rows,
                     splits_by_index={i: str(s) for i, s in enumerate(split)},
                     source={"format": "small-cnn-zoo", "path": str(src)}, overwrite=overwrite)


def _flat_config(config: Any, prefix: str = "config.") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(config, dict):
        for k, v in config.items():
            if isinstance(v, dict):
                out.update(_flat_config(v, f"{prefix}{k}."))
            elif isinstance(v, (int, float, str, bool)) or v is None:
                out[f"{prefix}{k}"] = v
            elif isinstance(v, (list, tuple)):
                out[f"{prefix}{k}"] = str(list(v))
    return out


_ACCURACY_COLUMNS = {"test_acc": "test_accuracy", "accuracy": "test_accuracy", "train_acc": "train_accuracy"}


def _config_input_size(config: dict[str, Any], path: Path) -> int:
    """The config's input_size (default 32): a whole number from 1 to 4096, checked before anything is sized by it."""
    size = config.get("input_size", 32)
    number = isinstance(size, (int, float)) and not isinstance(size, bool)
    if not number or not float(size).is_integer() or not 1 <= size <= 4096:
        raise ZooError(f"{path}: config input_size {str(size)[:40]!r} is not a whole number from 1 to 4096")
    return int(size)


def import_cnn_wild_park(src: Path, out: Path, seed: int = 0, overwrite: bool = False):
    """CNN Wild Park checkpoints → zoo (one group per distinct architecture)."""
    paths = sorted(p for p in src.rglob("*") if p.suffix in (".pt", ".pth") and p.is_file())
    if not paths:
        raise ZooError(f"{src}: no CNN Wild Park checkpoints (*.pt, *.pth) found")
    archs: dict[str, Architecture] = {}
    keys: dict[str, str] = {}
    flats: dict[str, list[tuple[int, torch.Tensor]]] = {}
    rows = []
    for i, path in enumerate(paths):
        tf = read_tensor_file(path)
        config = tf.extras.get("config") if isinstance(tf.extras.get("config"), dict) else {}
        act = next((str(config[k]).lower()[:40] for k in ("activation", "act", "nonlinearity") if k in config), None)
        act = {"leakyrelu": "leaky_relu", "leaky-relu": "leaky_relu", "swish": "silu"}.get(act, act)
        if act is not None and act not in ACTIVATIONS:
            raise ZooError(f"{path}: config activation {act!r} is not one of {', '.join(ACTIVATIONS[:-1])}")
        net = load_network(path, act, input_size=_config_input_size(config, path))
        key = net.architecture.to_json()
        if key not in keys:
            keys[key] = f"a{len(keys):03d}"
            archs[keys[key]] = net.architecture
        g = keys[key]
        flats.setdefault(g, []).append((i, net.flat().to(torch.float32)))
        row = {"index": i, "group": g, "file": str(path.relative_to(src))}
        row.update(_flat_config(config))
        for name in ("test_accuracy", "test_acc", "accuracy", "train_accuracy", "train_acc"):
            if name in config:
                row[_ACCURACY_COLUMNS.get(name, name)] = config[name]
        rows.append(row)
    groups = {g: ([i for i, _ in items], torch.stack([f for _, f in items])) for g, items in flats.items()}
    split = split_assignment(np.arange(len(paths)), (0.8, 0.1, 0.1), seed)
    return write_zoo(out, generator="import:cnn-wild-park", options=dict(source=str(src), seed=seed),
                     architectures=archs, groups=groups, rows=rows,
                     splits_by_index={i: str(s) for i, s in enumerate(split)},
                     source={"format": "cnn-wild-park", "path": str(src)}, overwrite=overwrite)


def import_zoo(format: str, src: str | os.PathLike, out: str | os.PathLike, *, seed: int = 0, overwrite: bool = False):
    """Convert a public zoo (`format` in FORMATS) at `src` into a zoo directory `out`; returns the opened Zoo."""
    from core.zoo.store import Zoo

    src_p, out_p = Path(src), Path(out)
    if not src_p.exists():
        raise ZooError(f"{src}: no such file or directory")
    fn = {"dwsnets": import_dwsnets, "nfn": import_nfn, "small-cnn-zoo": import_small_cnn_zoo,
          "cnn-wild-park": import_cnn_wild_park}.get(format)
    if fn is None:
        raise ZooError(f"unknown zoo format {format!r}; choose one of {', '.join(FORMATS)}")
    fn(src_p, out_p, seed=seed, overwrite=overwrite)
    return Zoo.open(out_p)
