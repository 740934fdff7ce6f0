"""Canonical forms: one representative per symmetry orbit, a baseline way to remove symmetry.

Procedure (deterministic, in float64):
1. phase: every sine layer's phase parameter is wrapped into [-P/2, P/2) (P = 2π/w0);
2. tie groups one at a time, each neuron normalised by the parameters it `reads` (`CANONICAL_RULES`):
   - "incoming" (the default): groups in order of their first layer; for the group's first layer, each neuron's
     *incoming* parameters (rows of its weight op, bias, norm parameters — only earlier, already canonical layers
     feed them);
   - "outgoing": groups in reverse order of their last layer; for the group's last layer, each neuron's *outgoing*
     parameters (the columns of later weight ops that read it — only later, already canonical layers hold them).
     Transforms of a network's input coordinates (INR translations, rotations) change only first-layer incoming
     parameters, so this rule gives a transformed INR's neurons the signs of the original's;
   - "incoming-first": the first tie group by its incoming parameters, then the others as "outgoing" does. The
     first layer keeps the incoming rule's orientation of what it reads from the input; input transforms change
     no deeper neuron's sign. (Valid: the first group's incoming parameters come from the input alone, and every
     parameter a later group reads belongs to a group already done.)
   positive scaling → unit norm of the scaled part; sign flips → the largest-magnitude scaled entry made positive;
   then neurons are sorted by an invariant key (norm of all those parameters for permutation-only layers, sum of
   the normalised ones otherwise);
3. that group element is applied, which also rescales/permutes the neurons' other parameters, and the next group
   follows.
Canonicalising any transformed copy gives the same network up to rounding, except on measure-zero ties of the sort
key.
"""

from __future__ import annotations

import torch

from core.network.spec import Architecture, Network
from core.symmetry.actions import GroupElement, SymmetryError, _apply_plan, _plan

CANONICAL_RULES = ("incoming", "outgoing", "incoming-first")  # which parameters fix each neuron's scale, sign and place


def canonical_rule(value: bool | str | None) -> str | None:
    """A run's `canonical` setting as a rule name: None (off), "incoming" (also `True`, as runs before the rules
    recorded it), "outgoing" or "incoming-first"."""
    if value is None or value is False:
        return None
    if value is True:
        return "incoming"
    if value not in CANONICAL_RULES:
        raise SymmetryError(f"unknown canonical form {value!r}; choose from {', '.join(CANONICAL_RULES)}")
    return value


def canonical_element(net: Network, reads: str = "incoming") -> GroupElement:
    """The group element g with apply_to_network(net, g) == canonicalize(net, reads)."""
    return canonical_elements(net.architecture, net.flat().detach()[None], reads).index(0)


def canonical_elements(arch: Architecture, flat: torch.Tensor, reads: str = "incoming") -> GroupElement:
    """A batch of group elements [B, size] taking each of the networks `flat` [B, P] to its canonical form under
    rule `reads` (one pass of scatter operations per tie group for the whole batch: no Python loop over networks
    or neurons)."""
    reads = canonical_rule(reads)
    if reads is None:
        raise SymmetryError("canonical_elements needs a rule: " + ", ".join(CANONICAL_RULES))
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

    # 2./3. tie groups in order of their first layer (incoming), in reverse order of their last (outgoing), or the
    # first group and then the rest in reverse (incoming-first)
    groups = [ms for ms in report.groups().values() if ms[0].permutable]
    forward = sorted(groups, key=lambda ms: min(m.layer for m in ms))
    backward = sorted(groups, key=lambda ms: max(m.layer for m in ms), reverse=True)
    if reads == "incoming":
        order = [(ms, "incoming") for ms in forward]
    elif reads == "outgoing":
        order = [(ms, "outgoing") for ms in backward]
    else:  # incoming-first: the first group, then the rest backwards
        order = [(ms, "incoming") for ms in forward[:1]] + [(ms, "outgoing") for ms in backward if ms is not forward[0]]
    for members, rule in order:
        step = _tie_group_step(plan, members, x, rule)
        x = _apply_plan(plan, x, step)
        g = step.compose(g)
    return g


def _tie_group_step(plan, members: list, x: torch.Tensor, reads: str) -> GroupElement:
    """Normalise and sort the neurons of one tie group from the parameters they `reads`, given that the groups
    those parameters also touch are canonical already ([B, P] float64)."""
    head = members[0]
    if reads == "incoming":
        layer = plan.layout.layers[min(m.layer for m in members)]
        node_of, scales = plan.row_node, plan.row_exp                                # multiplied by the neuron's d
        chosen = (node_of >= layer.start) & (node_of < layer.start + layer.size)
    else:
        layer = plan.layout.layers[max(m.layer for m in members)]
        node_of, scales = plan.col_node, plan.col_exp                                # divided by the neuron's d
        own = torch.zeros_like(plan.row_node, dtype=torch.bool)
        for m in members:  # parameters the group transforms at both ends stay out
            ml = plan.layout.layers[m.layer]
            own |= (plan.row_node >= ml.start) & (plan.row_node < ml.start + ml.size)
        chosen = (node_of >= layer.start) & (node_of < layer.start + layer.size) & ~own
    node = node_of[chosen] - layer.start                                             # [R] neuron of each parameter
    values = x[:, chosen]                                                            # [B, R] the parameters it reads
    scaled = scales[chosen]                                                          # [R] moved by the neuron's d
    b, n = x.shape[0], layer.size
    at = node.expand(b, -1)

    def per_neuron(v: torch.Tensor) -> torch.Tensor:                                 # [B, R] → [B, n] sums
        return torch.zeros(b, n, dtype=torch.float64).index_add_(1, node, v)

    if reads == "outgoing" and head.scaling == "positive":
        # one outgoing weight per neuron normalises to ±1 for every neuron: no order would be left to sort by
        fan_out = torch.zeros(n, dtype=torch.long).index_add_(0, node, scaled.long())
        if int(fan_out.min()) < 2:
            raise SymmetryError(f"the outgoing canonical form needs at least two outgoing weights per neuron of a "
                                f"positively scaled layer; hidden layer {head.layer} has a neuron with "
                                f"{int(fan_out.min())}: use the incoming form")

    # c: the neuron's scale d in the element; incoming parameters become values · c, outgoing ones values / c
    c = torch.ones(b, n, dtype=torch.float64)
    if head.scaling == "positive":
        norm = per_neuron(torch.where(scaled, values ** 2, 0.0)).sqrt()
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        c = 1.0 / safe if reads == "incoming" else safe
    if head.sign_flips:
        # sign of the largest-magnitude scaled entry per neuron (exact ± ties: measure zero → +)
        mag = torch.where(scaled, values.abs(), -1.0)
        best = torch.full((b, n), -1.0, dtype=torch.float64).scatter_reduce(1, at, mag, "amax")
        at_best = scaled & (mag == best.gather(1, at))
        c = c * torch.where(per_neuron(torch.where(at_best, values, 0.0)) < 0, -1.0, 1.0)
    factor = c if reads == "incoming" else 1.0 / c
    normalised = values * torch.where(scaled, factor.gather(1, at), 1.0)
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


def canonicalize_flat(arch: Architecture, flat: torch.Tensor, reads: str = "incoming") -> torch.Tensor:
    """Canonical forms of networks `flat` [B, P] (or [P]) under rule `reads`, in the input's dtype."""
    single = flat.dim() == 1
    x = (flat[None] if single else flat).detach().to(torch.float64)
    out = _apply_plan(_plan(arch), x, canonical_elements(arch, x, reads)).to(flat.dtype)
    return out[0] if single else out


def canonicalize(net: Network, reads: str = "incoming") -> Network:
    """The canonical representative of `net`'s symmetry orbit under rule `reads` (see the module docstring)."""
    flat = canonicalize_flat(net.architecture, net.flat().detach(), reads)
    return Network.from_flat(net.architecture, flat, dict(net.meta))
