"""Readable and JSON summaries of a Network: layers, shapes, counts, weight statistics, spectra."""

from __future__ import annotations

from typing import Any

import torch

from core.graph.layout import layout_for
from core.network.spec import Activation, BatchNorm, Conv, LayerNorm, Linear, Network


def weight_matrix(network: Network, name: str) -> torch.Tensor:
    """The layer's weight as a 2-d matrix [out, in·kernel] (float64)."""
    w = network.params[f"{name}.weight"].detach().double()
    return w.reshape(w.shape[0], -1)


def spectrum(matrix: torch.Tensor) -> dict[str, Any]:
    """Singular values, spectral norm and stable rank ‖W‖_F² / ‖W‖_2² of a matrix."""
    s = torch.linalg.svdvals(matrix)
    top = float(s[0]) if s.numel() else 0.0
    return {
        "singular_values": [float(v) for v in s],
        "spectral_norm": top,
        "stable_rank": float((s ** 2).sum() / top ** 2) if top > 0 else 0.0,
    }


def _stats(t: torch.Tensor) -> dict[str, float]:
    t = t.detach().double().reshape(-1)
    return {
        "mean": float(t.mean()),
        "std": float(t.std(unbiased=False)),
        "min": float(t.min()),
        "max": float(t.max()),
        "abs_mean": float(t.abs().mean()),
    }


def summarize(network: Network, spectra: bool = False) -> dict[str, Any]:
    """JSON-ready summary: counts (num_parameters, num_nodes, num_edges) and one entry per layer."""
    arch = network.architecture
    shapes = arch.value_shapes()
    layout = layout_for(arch)
    layers = []
    for i, op in enumerate(arch.ops):
        entry: dict[str, Any] = {"index": i, "kind": op.kind, "input_shape": list(shapes[i]), "output_shape": list(shapes[i + 1])}
        if isinstance(op, Activation):
            entry["activation"] = op.describe()
        if hasattr(op, "name"):
            entry["name"] = op.name
            entry["parameters"] = sum(v.numel() for k, v in network.params.items() if k.rsplit(".", 1)[0] == op.name)
        if isinstance(op, (Linear, Conv)):
            entry["weight"] = _stats(network.params[f"{op.name}.weight"])
            if f"{op.name}.bias" in network.params:
                entry["bias"] = _stats(network.params[f"{op.name}.bias"])
            if isinstance(op, Conv):
                entry["kernel_size"] = list(op.kernel_size)
                entry["stride"] = list(op.stride)
                entry["padding"] = list(op.padding)
            if spectra:
                entry["spectrum"] = spectrum(weight_matrix(network, op.name))
        if isinstance(op, (BatchNorm, LayerNorm)):
            entry["eps"] = op.eps
        if op.kind == "residual":
            entry["source"] = op.source
        if op.kind == "offset":
            entry["value"] = op.value
        layers.append(entry)
    acts = sorted({a.describe() for a in arch.activations()})
    return {
        "num_parameters": arch.num_parameters,
        "num_nodes": layout.num_nodes,
        "num_edges": layout.num_edges,
        "input_shape": list(arch.input_shape),
        "output_shape": list(shapes[-1]),
        "activations": acts,
        "layers": layers,
        "assumptions": list(network.meta.get("assumptions", [])),
        "architecture": arch.to_dict(),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable multi-line rendering of `summarize`'s output."""
    lines = [
        f"parameters: {summary['num_parameters']:,}   neural graph: {summary['num_nodes']:,} nodes, {summary['num_edges']:,} edges",
        f"input {tuple(summary['input_shape'])} → output {tuple(summary['output_shape'])};"
        f" activations: {', '.join(summary['activations']) or 'none'}",
        "",
        f"{'#':>3}  {'layer':<34} {'shape':<28} {'params':>9}  weight mean ± std  [min, max]",
    ]
    for layer in summary["layers"]:
        kind = layer["kind"]
        label = f"{kind} {layer.get('name', '')}".strip()
        if kind == "activation":
            label = f"activation {layer['activation']}"
        elif kind == "residual":
            label = f"residual (+ value after op {layer['source']})"
        elif kind == "offset":
            label = f"offset {layer['value']:+g}"
        elif kind == "conv":
            label += f" k{'x'.join(map(str, layer['kernel_size']))}/s{layer['stride'][0]}/p{layer['padding'][0]}"
        shape = f"{tuple(layer['input_shape'])} → {tuple(layer['output_shape'])}"
        params = f"{layer['parameters']:,}" if "parameters" in layer else ""
        stats = ""
        if "weight" in layer:
            w = layer["weight"]
            stats = f"{w['mean']:+.3f} ± {w['std']:.3f}  [{w['min']:+.3f}, {w['max']:+.3f}]"
        lines.append(f"{layer['index']:>3}  {label:<34} {shape:<28} {params:>9}  {stats}")
    if summary["assumptions"]:
        lines += ["", "assumptions:"] + [f"  - {a}" for a in summary["assumptions"]]
    return "\n".join(lines)
