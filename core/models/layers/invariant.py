"""Scale/sign canonicalisation and invariant maps (ScaleGMN, Kalogeropoulos et al. 2024).

Every node i carries a symmetry kind from its activation: NONE (input/output neurons and activations
without a scaling symmetry), POSITIVE (relu/leaky_relu: h_i → q_i h_i, q_i > 0) or SIGN (tanh/sine:
h_i → s_i h_i, s_i = ±1). An edge j → i transforms by q_i / q_j; its kind follows from its endpoints:
NONE (both NONE), POSITIVE (only positive scales), SIGN (only signs), REAL (a positive scale and a sign,
i.e. any non-zero real factor).

    canon(h) = h                  NONE
             = h / ‖h‖            POSITIVE          (x/‖x‖ is invariant to x → q x, q > 0)
             = |h|                SIGN              (elementwise)
             = |h| / ‖h‖          REAL

An invariant map is any MLP applied after `canonicalise`.
"""

from __future__ import annotations

import torch

from core.graph.layout import HIDDEN
from core.network.spec import ACTIVATION_IDS

NONE, POSITIVE, SIGN, REAL = 0, 1, 2, 3
POSITIVE_ACTIVATIONS = ("relu", "leaky_relu")
SIGN_ACTIVATIONS = ("tanh", "sine")


def node_kinds(node_role: torch.Tensor, node_activation: torch.Tensor) -> torch.Tensor:
    """Symmetry kind per node [N] (long): hidden relu/leaky_relu → POSITIVE, hidden tanh/sine → SIGN, else NONE."""
    pos = torch.zeros_like(node_activation, dtype=torch.bool)
    sign = torch.zeros_like(pos)
    for a in POSITIVE_ACTIVATIONS:
        pos |= node_activation == ACTIVATION_IDS[a]
    for a in SIGN_ACTIVATIONS:
        sign |= node_activation == ACTIVATION_IDS[a]
    hidden = node_role == HIDDEN
    kind = torch.where(hidden & pos, POSITIVE, NONE)
    return torch.where(hidden & sign, SIGN, kind).long()


def edge_kinds(kind: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """Symmetry kind per edge [E] from the kinds of its endpoints."""
    ks, kd = kind[edge_index[0]], kind[edge_index[1]]
    has_pos = (ks == POSITIVE) | (kd == POSITIVE)
    has_sign = (ks == SIGN) | (kd == SIGN)
    out = torch.where(has_pos, POSITIVE, NONE)
    out = torch.where(has_sign, SIGN, out)
    return torch.where(has_pos & has_sign, REAL, out).long()


RESCALE_ABOVE = 2.0 ** 32  # rows whose largest |value| exceeds this are divided by a power of two before squaring


def power_of_two_scale(v: torch.Tensor, above: float = RESCALE_ABOVE, eager: bool | None = None) -> torch.Tensor | None:
    """[..., 1] detached divisor m per row of v: 1 where the row's largest |value| is at most `above`, else the
    smallest power of two that brings it within `above`. Division by a power of two is exact in floating point, so
    norms of v / m scale back exactly, the squares of v / m stay finite for rows up to float's largest value, and
    rows in range keep every bit.

    eager (default: on CPU only): first check whether any value exceeds `above` and return None when none does (the
    usual case, which callers compute as before). On an accelerator that check would cost a device-to-host sync
    per call, so there (and under torch.compile) the divisor is always made: m = 1 for rows in range, the same
    forward bits (gradients may differ in rounding: autograd can sum their contributions in another order).
    """
    if v.numel() == 0:
        return None
    if eager is None:
        eager = v.device.type == "cpu"
    if eager and not torch.compiler.is_compiling():
        low, high = torch.aminmax(v.detach())
        if not bool((high > above) | (low < -above)):
            return None
    peak = v.detach().abs().amax(dim=-1, keepdim=True)
    return torch.where(peak > above, torch.exp2(torch.ceil(torch.log2(peak / above))), torch.ones_like(peak))


def _safe_norm(v: torch.Tensor) -> torch.Tensor:
    """‖v‖ over the last dim, clamped away from 0 only where it is (numerically) 0.

    Clamping the squared norm before the root keeps the gradient finite at v = 0 (`v.norm()`'s gradient
    there is 0/0 = NaN, which reaches the parameters even through an unselected `torch.where` branch).
    Rows beyond `RESCALE_ABOVE` are normed as m ‖v / m‖ (`power_of_two_scale`), so that their squares stay finite.
    """
    tiny = torch.finfo(v.dtype).tiny
    m = power_of_two_scale(v)
    if m is None:
        return v.pow(2).sum(dim=-1, keepdim=True).clamp_min(tiny).sqrt()
    return m * (v / m).pow(2).sum(dim=-1, keepdim=True).clamp_min(tiny).sqrt()


def canonicalise(v: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """Invariant canonical form of rows v [M, C] with per-row kinds [M] (see module docstring)."""
    k = kind[:, None]
    needs_abs = (k == SIGN) | (k == REAL)
    needs_norm = (k == POSITIVE) | (k == REAL)
    out = torch.where(needs_abs, v.abs(), v)
    return torch.where(needs_norm, out / _safe_norm(v), out)


def reciprocal(v: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """A vector that transforms by the reciprocal factor 1/c when v transforms by c [M, C].

    Signs are their own inverse (v itself); positive/real scales use the vector pseudo-inverse v/‖v‖²,
    since (c v)/‖c v‖² = (1/c) · v/‖v‖².
    """
    k = kind[:, None]
    scaled = (k == POSITIVE) | (k == REAL)
    # rows that are not scaled divide by 1, and the squared norm is floored directly (not via a root and a
    # square), so the gradient stays finite for zero rows; unscaled rows' gradients would otherwise leak NaN
    # v/‖v‖² = (v/m) / ‖v/m‖² / m with `power_of_two_scale`'s m: finite for rows whose squares would overflow
    m = power_of_two_scale(v)
    u = v if m is None else v / m
    sq = torch.where(scaled, u.pow(2).sum(dim=-1, keepdim=True), torch.ones_like(v[:, :1]))
    r = u / sq.clamp_min(torch.finfo(v.dtype).tiny ** 0.5)
    return torch.where(scaled, r if m is None else r / m, v)
