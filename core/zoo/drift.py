"""How far a zoo's fitted INRs moved from their initial values, per layer and parameter kind.

`init_drift(zoo)` rebuilds every INR's initial parameters from the zoo's recipe and the per-network init
seeds in its table (`core.zoo.inr.initial_parameters`), then reports for each parameter tensor (e.g.
`seq.0.weight`), with F the fitted and I the initial values of all networks:

    correlation    Pearson correlation of F and I after subtracting each parameter position's mean over
                   the networks: how much of the differences *between networks* is their random init.
                   None when the init is the same for every network (a `shared` init or zero biases):
                   then the init adds no per-network differences and there is nothing to correlate.
    update_ratio   std(F − I) / std(I), stds over all networks and positions: the update's spread
                   relative to the init's. None when the init is all zeros.
    update_correlation  the same centred correlation of the update F − I with I: near 0 when fitting moves
                   each network independently of where it started (then correlation ≈ 1/√(1 + r²), r the
                   update/init spread of the centred values, so r > √3 is needed to fall under 0.5); > 0 when
                   fitting grows the init's own differences, and correlation then falls more slowly than
                   1/√(1 + r²) as the update grows.
    carries_init   correlation > CARRIES_INIT_CORRELATION (0.5): the init then explains more than a quarter
                   (r² > 0.25) of the variation between networks, so a metanetwork reading the layer
                   mostly sees seed noise, not the image.

Zoos built before recipes were recorded used the `siren` scheme with per-network seeds; their initial
values are rebuilt with that code, which has not changed since those zoos were built.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch

from core.network.spec import unflatten_params
from core.zoo.images import ZooError
from core.zoo.inr import initial_parameters, inr_recipe

CARRIES_INIT_CORRELATION = 0.5


def _centred_correlation(values: torch.Tensor, centred_init: torch.Tensor) -> float | None:
    """Pearson correlation of values [n, k] with an init already centred per position; None if values are constant."""
    vc = values - values.mean(0)
    denom = float(vc.square().sum().sqrt() * centred_init.square().sum().sqrt())
    return float((vc * centred_init).sum()) / denom if denom > 0.0 else None


def _tensor_drift(fitted: torch.Tensor, init: torch.Tensor) -> dict[str, Any]:
    """Drift statistics of one parameter tensor: fitted / init [n, k] in float64."""
    update = fitted - init
    init_std = float(init.std()) if init.numel() > 1 else 0.0
    update_std = float(update.std()) if init.numel() > 1 else 0.0
    ic = init - init.mean(0)
    correlation = update_correlation = None
    if fitted.shape[0] < 2:
        note = "needs at least two networks"
    elif float(ic.abs().max()) == 0.0:
        note = "init all zeros" if float(init.abs().max()) == 0.0 else "init identical across networks"
    else:
        correlation = _centred_correlation(fitted, ic)
        update_correlation = _centred_correlation(update, ic)
        note = "fitted values identical across networks" if correlation is None else ""
    return {
        "init_std": init_std,
        "fitted_std": float(fitted.std()) if fitted.numel() > 1 else 0.0,
        "update_std": update_std,
        "update_ratio": update_std / init_std if init_std > 0 else None,
        "correlation": correlation,
        "update_correlation": update_correlation,
        "carries_init": correlation is not None and correlation > CARRIES_INIT_CORRELATION,
        "note": note,
    }


def init_drift(zoo, indices: Iterable[int] | None = None) -> dict[str, Any]:
    """Drift of fitted INR parameters from their rebuilt initial values (see the module docstring).

    `zoo`: an opened `Zoo` built by `build_inr_zoo`; `indices`: networks to use (default all). Returns a
    JSON-ready dict: recipe, networks, threshold, rows (one per parameter tensor: layer, kind, entries,
    init_std, fitted_std, update_std, update_ratio, correlation, update_correlation, carries_init, note).
    """
    recipe = inr_recipe(zoo.manifest)
    if "seed" not in zoo.table:
        raise ZooError(f"{zoo.dir}: the zoo table has no seed column; initial values cannot be rebuilt")
    idx = np.arange(len(zoo)) if indices is None else np.asarray(list(indices), dtype=np.int64)
    if idx.size == 0:
        raise ZooError("no networks chosen")
    arch, fitted = zoo.flat(idx)
    seeds = zoo.table["seed"].to_numpy()[idx].tolist()
    init = initial_parameters(recipe, seeds, torch.float32).double()  # the float32 values the fit started from
    if init.shape != fitted.shape:
        raise ZooError(f"{zoo.dir}: rebuilt initial values have shape {tuple(init.shape)}, the stored parameters "
                       f"{tuple(fitted.shape)}; the recipe does not describe this zoo")
    f_parts = unflatten_params(arch, fitted.double())
    i_parts = unflatten_params(arch, init)
    rows = []
    for key, value in f_parts.items():
        layer, kind = key.rsplit(".", 1)
        n = value.shape[0]
        stats = _tensor_drift(value.reshape(n, -1), i_parts[key].reshape(n, -1))
        rows.append({"layer": layer, "kind": kind, "entries": int(value[0].numel()), **stats})
    return {"recipe": recipe, "networks": int(idx.size), "threshold": CARRIES_INIT_CORRELATION, "rows": rows}


def format_drift(report: dict[str, Any]) -> str:
    """The drift report as a text table (one line per parameter tensor)."""
    recipe = report["recipe"]
    source = "" if recipe.get("recorded") else " (an older zoo: recipe derived from its build options)"
    lines = [f"init drift over {report['networks']} networks, init {recipe['init']}{source}; flagged: "
             f"correlation > {report['threshold']}",
             f"{'tensor':<16}{'init std':>10}{'fitted std':>12}{'update/init':>13}{'corr':>8}{'update corr':>13}  flag"]

    def num(v: float | None, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    for r in report["rows"]:
        flag = "carries the init, not the data" if r["carries_init"] else r["note"]
        lines.append(f"{r['layer'] + '.' + r['kind']:<16}{r['init_std']:>10.4f}{r['fitted_std']:>12.4f}"
                     f"{num(r['update_ratio'], '.3f'):>13}{num(r['correlation'], '.3f'):>8}"
                     f"{num(r['update_correlation'], '.3f'):>13}  {flag}")
    return "\n".join(lines)
