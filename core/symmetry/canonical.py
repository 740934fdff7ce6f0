"""Canonical forms: one representative per symmetry orbit, a baseline way to remove symmetry.

Procedure (deterministic, in float64):
1. phase: every sine layer's phase parameter is wrapped into [-P/2, P/2) (P = 2π/w0);
2. tie groups in order of their first layer; for the group's first layer, each neuron's *incoming*
   parameters (rows of its weight op, bias, norm parameters — only earlier, already canonical layers
   feed them) are normalised: positive scaling → unit norm of the scaled part; sign flips → the
   largest-magnitude scaled entry made positive; then neurons are sorted by an invariant key (norm of
   all incoming parameters for permutation-only layers, sum of the normalised ones otherwise);
3. that group element is applied, which also rescales/permutes the outgoing weights, and the next
   group follows.
Canonicalising any transformed copy gives the same network up to rounding, except on measure-zero
ties of the sort key.
"""

from __future__ import annotations

import torch

from core.network.spec import Network
from core.symmetry.actions import GroupElement, _apply_plan, _plan


def canonical_element(net: Network) -> GroupElement:
    """The group element g with apply_to_network(net, g) == canonicalize(net)."""
    plan = _plan(net.architecture)
    report, layers = plan.report, plan.layout.layers
    flat = net.flat().detach().to(torch.float64)

    # 1. phase wrapping (shifts touch only the shifted parameters, so all layers at once)
    g = GroupElement()
    for L, period in plan.periods.items():
        layer = layers[L]
        sel = plan.shift & (plan.row_node >= layer.start) & (plan.row_node < layer.start + layer.size)
        nodes = plan.row_node[sel] - layer.start
        values = torch.empty(layer.size, dtype=torch.float64)
        values[nodes] = flat[sel]
        g.shifts[L] = -torch.floor(values / period + 0.5).long()
    flat = _apply_plan(plan, flat, g)

    # 2./3. tie groups in order of their first layer
    groups = sorted(report.groups().values(), key=lambda ms: ms[0].layer)
    for members in groups:
        head = members[0]
        if not head.permutable:
            continue
        layer = layers[head.layer]
        rows = (plan.row_node >= layer.start) & (plan.row_node < layer.start + layer.size)
        node = plan.row_node[rows] - layer.start
        values = flat[rows]
        scaled = plan.row_exp[rows]
        n = layer.size
        # per-neuron statistics by scatter (no Python loop over neurons)
        sq_scaled = torch.zeros(n, dtype=torch.float64).index_add_(0, node[scaled], values[scaled] ** 2)
        c = torch.ones(n, dtype=torch.float64)
        if head.scaling == "positive":
            norm = sq_scaled.sqrt()
            c = torch.where(norm > 0, 1.0 / norm, torch.ones_like(norm))
        if head.sign_flips:
            # sign of the largest-magnitude scaled entry per neuron (exact ± ties: measure zero → +)
            mag = torch.where(scaled, values.abs(), torch.full_like(values, -1.0))
            best = torch.full((n,), -1.0, dtype=torch.float64).scatter_reduce(0, node, mag, "amax")
            at_best = scaled & (mag == best[node])
            sign_of = torch.zeros(n, dtype=torch.float64).index_add_(0, node[at_best], values[at_best]).sign()
            c = c * torch.where(sign_of < 0, -1.0, 1.0).to(torch.float64)
        normalised = values * torch.where(scaled, c[node], torch.ones((), dtype=torch.float64))
        if head.scaling is None and not head.sign_flips:
            key = torch.zeros(n, dtype=torch.float64).index_add_(0, node, normalised ** 2).sqrt()
        else:
            key = torch.zeros(n, dtype=torch.float64).index_add_(0, node, normalised)
        perm = torch.sort(key, stable=True).indices  # new j takes old perm[j]
        step = GroupElement()
        for m in members:
            step.perms[m.layer] = perm.clone()
            if head.scaling is not None or head.sign_flips:
                step.scales[m.layer] = c[perm].clone()
        flat = _apply_plan(plan, flat, step)
        g = step.compose(g)
    return g


def canonicalize(net: Network) -> Network:
    """The canonical representative of `net`'s symmetry orbit (see the module docstring)."""
    g = canonical_element(net)
    flat = _apply_plan(_plan(net.architecture), net.flat().detach().to(torch.float64), g)
    return Network.from_flat(net.architecture, flat.to(net.dtype), dict(net.meta))
