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

from core.network.spec import Architecture, Network
from core.symmetry.actions import GroupElement, _apply_plan, _plan


def canonical_element(net: Network) -> GroupElement:
    """The group element g with apply_to_network(net, g) == canonicalize(net)."""
    return canonical_elements(net.architecture, net.flat().detach()[None]).index(0)


def canonical_elements(arch: Architecture, flat: torch.Tensor) -> GroupElement:
    """A batch of group elements [B, size] taking each of the networks `flat` [B, P] to its canonical form (one
    pass of scatter operations per tie group for the whole batch: no Python loop over networks or neurons)."""
    plan = _plan(arch)
    report, layers = plan.report, plan.layout.layers
    x = flat.detach().to(torch.float64)
    b = x.shape[0]

    # 1. phase wrapping (shifts touch only the shifted parameters, so all layers at once)
    g = GroupElement()
    for L, period in plan.periods.items():
        layer = layers[L]
        sel = plan.shift & (plan.row_node >= layer.start) & (plan.row_node < layer.start + layer.size)
        values = torch.zeros(b, layer.size, dtype=torch.float64)
        values[:, plan.row_node[sel] - layer.start] = x[:, sel]
        g.shifts[L] = -torch.floor(values / period + 0.5).long()
    x = _apply_plan(plan, x, g)

    # 2./3. tie groups in order of their first layer
    for members in sorted(report.groups().values(), key=lambda ms: ms[0].layer):
        head = members[0]
        if not head.permutable:
            continue
        step = _tie_group_step(plan, members, x)
        x = _apply_plan(plan, x, step)
        g = step.compose(g)
    return g


def _tie_group_step(plan, members: list, x: torch.Tensor) -> GroupElement:
    """Normalise and sort the neurons of one tie group, given earlier groups already canonical ([B, P] float64)."""
    head = members[0]
    layer = plan.layout.layers[head.layer]
    rows = (plan.row_node >= layer.start) & (plan.row_node < layer.start + layer.size)
    node = plan.row_node[rows] - layer.start                                        # [R] neuron of each parameter
    values = x[:, rows]                                                              # [B, R] its incoming parameters
    scaled = plan.row_exp[rows]                                                      # [R] scaled by the neuron's d
    b, n = x.shape[0], layer.size
    at = node.expand(b, -1)

    def per_neuron(v: torch.Tensor) -> torch.Tensor:                                 # [B, R] → [B, n] sums
        return torch.zeros(b, n, dtype=torch.float64).index_add_(1, node, v)

    c = torch.ones(b, n, dtype=torch.float64)
    if head.scaling == "positive":
        norm = per_neuron(torch.where(scaled, values ** 2, 0.0)).sqrt()
        c = torch.where(norm > 0, 1.0 / norm, torch.ones_like(norm))
    if head.sign_flips:
        # sign of the largest-magnitude scaled entry per neuron (exact ± ties: measure zero → +)
        mag = torch.where(scaled, values.abs(), -1.0)
        best = torch.full((b, n), -1.0, dtype=torch.float64).scatter_reduce(1, at, mag, "amax")
        at_best = scaled & (mag == best.gather(1, at))
        c = c * torch.where(per_neuron(torch.where(at_best, values, 0.0)) < 0, -1.0, 1.0)
    normalised = values * torch.where(scaled, c.gather(1, at), 1.0)
    if head.scaling is None and not head.sign_flips:
        key = per_neuron(normalised ** 2).sqrt()
    else:
        key = per_neuron(normalised)
    perm = torch.sort(key, dim=1, stable=True).indices  # new j takes old perm[j]
    step = GroupElement()
    for m in members:
        step.perms[m.layer] = perm.clone()
        if head.scaling is not None or head.sign_flips:
            step.scales[m.layer] = c.gather(1, perm)
    return step


def canonicalize_flat(arch: Architecture, flat: torch.Tensor) -> torch.Tensor:
    """Canonical forms of networks `flat` [B, P] (or [P]), in the input's dtype."""
    single = flat.dim() == 1
    x = (flat[None] if single else flat).detach().to(torch.float64)
    out = _apply_plan(_plan(arch), x, canonical_elements(arch, x)).to(flat.dtype)
    return out[0] if single else out


def canonicalize(net: Network) -> Network:
    """The canonical representative of `net`'s symmetry orbit (see the module docstring)."""
    flat = canonicalize_flat(net.architecture, net.flat().detach())
    return Network.from_flat(net.architecture, flat, dict(net.meta))
