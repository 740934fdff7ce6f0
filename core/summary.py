"""Readable and JSON summaries of a Network: layers, shapes, counts, weight statistics, spectra.

Each op kind adds its own fields to its layer entry in one `op_details` handler (and, if it wants a label
other than `kind name`, one entry of `_LABELS`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch

from core.graph.layout import layout_for
from core.network.spec import (
    Activation,
    BatchNorm,
    Conv,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    Linear,
    Network,
    Offset,
    Pool,
    Residual,
)
from core.spectral import esd, fit_power_law


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


@functools.singledispatch
def op_details(op: object, network: Network, spectra: bool) -> dict[str, Any]:
    """Fields of `op`'s layer entry beyond index, kind, shapes, name and parameter count; one handler per
    op kind."""
    raise NotImplementedError(f"no summary for op {op!r}")


def _weight_details(op: Linear | Conv, network: Network, spectra: bool, **geometry: Any) -> dict[str, Any]:
    out = {"weight": _stats(network.params[f"{op.name}.weight"])}
    if f"{op.name}.bias" in network.params:
        out["bias"] = _stats(network.params[f"{op.name}.bias"])
    out.update(geometry)
    # WeightWatcher's α of the ESD of WᵀW/N (None with the reason when the layer is too small to fit)
    alpha, xmin, reason = fit_power_law(esd(weight_matrix(network, op.name)))
    out.update(alpha=alpha, alpha_xmin=xmin, alpha_reason=reason)
    if spectra:
        out["spectrum"] = spectrum(weight_matrix(network, op.name))
    return out


@op_details.register(Linear)
def _(op: Linear, network: Network, spectra: bool) -> dict[str, Any]:
    return _weight_details(op, network, spectra)


@op_details.register(Conv)
def _(op: Conv, network: Network, spectra: bool) -> dict[str, Any]:
    return _weight_details(op, network, spectra, kernel_size=list(op.kernel_size), stride=list(op.stride),
                           padding=list(op.padding))


@op_details.register(Activation)
def _(op: Activation, network: Network, spectra: bool) -> dict[str, Any]:
    return {"activation": op.describe()}


@op_details.register(BatchNorm)
@op_details.register(LayerNorm)
def _(op: BatchNorm | LayerNorm, network: Network, spectra: bool) -> dict[str, Any]:
    return {"eps": op.eps}


@op_details.register(Residual)
def _(op: Residual, network: Network, spectra: bool) -> dict[str, Any]:
    return {"source": op.source}


@op_details.register(Offset)
def _(op: Offset, network: Network, spectra: bool) -> dict[str, Any]:
    return {"value": op.value}


@op_details.register(Flatten)
@op_details.register(GlobalAvgPool)
@op_details.register(Pool)
def _(op: Flatten | GlobalAvgPool | Pool, network: Network, spectra: bool) -> dict[str, Any]:
    return {}


def summarize(network: Network, spectra: bool = False) -> dict[str, Any]:
    """JSON-ready summary: counts (num_parameters, num_nodes, num_edges) and one entry per layer."""
    arch = network.architecture
    shapes = arch.value_shapes()
    layout = layout_for(arch)
    layers = []
    for i, op in enumerate(arch.ops):
        entry: dict[str, Any] = {"index": i, "kind": op.kind, "input_shape": list(shapes[i]),
                                 "output_shape": list(shapes[i + 1])}
        if hasattr(op, "name"):
            entry["name"] = op.name
            entry["parameters"] = sum(v.numel() for k, v in network.params.items() if k.rsplit(".", 1)[0] == op.name)
        entry.update(op_details(op, network, spectra))
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


def _default_label(layer: dict[str, Any]) -> str:
    return f"{layer['kind']} {layer.get('name', '')}".strip()


# layer labels of `format_summary` that say more than `kind name`, by op kind
_LABELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "activation": lambda layer: f"activation {layer['activation']}",
    "residual": lambda layer: f"residual (+ value after op {layer['source']})",
    "offset": lambda layer: f"offset {layer['value']:+g}",
    "conv": lambda layer: _default_label(layer) + (
        f" k{'x'.join(map(str, layer['kernel_size']))}/s{layer['stride'][0]}/p{layer['padding'][0]}"
    ),
}


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable multi-line rendering of `summarize`'s output."""
    lines = [
        f"parameters: {summary['num_parameters']:,}   neural graph: {summary['num_nodes']:,} nodes,"
        f" {summary['num_edges']:,} edges",
        f"input {tuple(summary['input_shape'])} → output {tuple(summary['output_shape'])};"
        f" activations: {', '.join(summary['activations']) or 'none'}",
        "",
        f"{'#':>3}  {'layer':<34} {'shape':<28} {'params':>9}  {'alpha':>6}  weight mean ± std  [min, max]",
    ]
    for layer in summary["layers"]:
        label = _LABELS.get(layer["kind"], _default_label)(layer)
        shape = f"{tuple(layer['input_shape'])} → {tuple(layer['output_shape'])}"
        params = f"{layer['parameters']:,}" if "parameters" in layer else ""
        stats, alpha = "", ""
        if "alpha" in layer:
            alpha = f"{layer['alpha']:.2f}" if layer["alpha"] is not None else "-"
        if "weight" in layer:
            w = layer["weight"]
            stats = f"{w['mean']:+.3f} ± {w['std']:.3f}  [{w['min']:+.3f}, {w['max']:+.3f}]"
        lines.append(f"{layer['index']:>3}  {label:<34} {shape:<28} {params:>9}  {alpha:>6}  {stats}")
    if summary["assumptions"]:
        lines += ["", "assumptions:"] + [f"  - {a}" for a in summary["assumptions"]]
    return "\n".join(lines)
