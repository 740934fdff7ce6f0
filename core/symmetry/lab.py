"""What the app's symmetry lab shows: one transformed copy of a network, real or deliberately broken."""

from __future__ import annotations

import torch

from core.network.spec import Network
from core.symmetry.actions import KINDS, SymmetryError, _apply_plan, _plan
from core.symmetry.check import _sample


def _element(net: Network, kind: str, seed: int):
    """The plan and the random element of `kind` that `transformed_network` applies for this seed."""
    if kind not in KINDS:
        raise SymmetryError(f"unknown symmetry kind {kind!r}; choose from {', '.join(KINDS)}")
    plan = _plan(net.architecture)
    admitted = kind in plan.report.kinds
    gen = torch.Generator().manual_seed(int(seed))
    return plan, _sample(plan.report, kind, 1, gen, force=not admitted, nontrivial=True)


def acted_neurons(net: Network, kind: str, seed: int = 0) -> list[int]:
    """Graph node ids of the neurons `transformed_network(net, kind, seed)` moves, rescales, flips or shifts."""
    plan, g = _element(net, kind, seed)
    nodes = []
    for li in g.layers():
        size = plan.layout.layers[li].size
        touched = torch.zeros(size, dtype=torch.bool)
        if li in g.perms:
            touched |= g.perms[li].reshape(-1) != torch.arange(size)
        if li in g.scales:
            touched |= g.scales[li].reshape(-1) != 1
        if li in g.shifts:
            touched |= g.shifts[li].reshape(-1) != 0
        nodes += (torch.nonzero(touched).reshape(-1) + plan.layout.layers[li].start).tolist()
    return sorted(nodes)


def transformed_network(net: Network, kind: str, seed: int = 0, broken: bool = False) -> Network:
    """`net` acted on by one random element of `kind`; with `broken`, a near miss that is not a symmetry
    (a permutation/scaling of incoming weights only, or a half-period phase shift)."""
    plan, g = _element(net, kind, seed)
    flat = net.flat().detach().double()[None]
    if broken:
        moved = _apply_plan(plan, flat, g, outgoing=kind == "phase", phase_unit=0.5 if kind == "phase" else 1.0)
    else:
        moved = _apply_plan(plan, flat, g)
    return Network.from_flat(net.architecture, moved[0].to(net.dtype), dict(net.meta))
