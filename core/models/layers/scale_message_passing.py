"""Scale/sign-equivariant message passing (the ScaleGMN layer; bidirectional variant = ScaleGMN-B).

Node state h_i transforms by q_i, edge state e_ij (j → i) by q_i / q_j (see `invariant.py`).

    forward message (j → i, received by i):   m_ij = (W_e e_ij) ⊙ (W_v h_j)            ∝ (q_i/q_j)·q_j = q_i
    backward message (i → j, received by j):  m̃_ji = (W̃_e ẽ_ij) ⊙ (W̃_v h_i)          ∝ (q_j/q_i)·q_i = q_j
        with ẽ = reciprocal(e): e for sign/plain edges, e/‖e‖² for positively scaled ones (∝ q_j/q_i)
    a_i = [mean_j m_ij, mean_j m_ij · log(deg_i+1)/δ]  (per direction; invariant degree scalers)
    z_i = [h_i, a_i^fwd, a_i^bwd]                          (every block ∝ q_i)
    h_i ← h_i + (W z_i) ⊙ g(canon(z_i), emb_i) (+ c(·) for plain neurons)
    e_ij ← e_ij + (W' e_ij) ⊙ g'(canon(e_ij), canon(h_i), canon(h_j)) (+ c'(·) for plain edges)
    (`norm`: a LayerNorm in the invariant gates g, c, g', c', so that they stay bounded; see `equivariant.py`)

Using e itself for backward messages (as the public reference code does) gives (q_i/q_j)·q_i, which is not
q_j under positive scaling; the reciprocal keeps ScaleGMN-B exactly equivariant.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.utils import scatter

from core.models.layers.equivariant import GatedEquivariantLinear, RangeSafeLayerNorm
from core.models.layers.invariant import NONE, canonicalise, reciprocal


class ScaleMessagePassing(nn.Module):
    """One ScaleGMN(-B) layer: (h [N, H], e [E, H]) → (h', e'), equivariant to permutations, scales and signs."""

    def __init__(self, hidden: int, emb_dim: int, bidirectional: bool = False, dropout: float = 0.0,
                 norm: bool = False):
        super().__init__()
        h = hidden
        self.hidden, self.bidirectional = h, bidirectional
        dirs = 2 if bidirectional else 1
        self.msg_e = nn.Linear(h, dirs * h, bias=False)  # W_e (| W̃_e applied to the reciprocal edge)
        self.msg_v = nn.Linear(h, dirs * h, bias=False)  # W_v (| W̃_v)
        z_dim = h * (1 + 2 * dirs)
        self.node_update = GatedEquivariantLinear(z_dim, h, z_dim + emb_dim, h, norm)
        self.edge_inv_e = nn.Linear(h, h)
        self.edge_inv_src = nn.Linear(h, h, bias=False)
        self.edge_inv_dst = nn.Linear(h, h, bias=False)
        self.edge_norm = RangeSafeLayerNorm(h) if norm else nn.Identity()  # bounds g', c' (see `equivariant.py`)
        self.edge_gate = nn.Linear(h, 2 * h)  # g' | c'
        self.edge_lin = nn.Linear(h, h, bias=False)  # W'
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mod in (self.msg_e, self.msg_v, self.node_update, self.edge_inv_e, self.edge_inv_src,
                    self.edge_inv_dst, self.edge_gate, self.edge_lin, self.edge_norm):
            if hasattr(mod, "reset_parameters"):  # the edge norm may be an Identity
                mod.reset_parameters()
        with torch.no_grad():
            self.edge_gate.weight.mul_(0.1)
            self.edge_gate.bias.zero_()

    def forward(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor, kind: torch.Tensor,
                ekind: torch.Tensor, emb: torch.Tensor, inv_deg: tuple[torch.Tensor, ...],
                amp: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """kind [N], ekind [E]: symmetry kinds; emb [N, emb]: invariant node embedding;
        inv_deg / amp: per direction 1/max(deg, 1) and log(deg+1)/δ, each [N, 1]."""
        n, hd = h.shape[0], self.hidden
        src, dst = edge_index
        hv = self.msg_v(h)  # [N, dirs·H]
        parts = [h]
        fwd = self.msg_e.weight[:hd] if self.bidirectional else self.msg_e.weight
        m = F.linear(e, fwd) * hv[:, :hd].index_select(0, src)  # [E, H] ∝ q_dst
        mean = scatter(m, dst, 0, dim_size=n, reduce="sum") * inv_deg[0]  # [N, H] ∝ q_i
        parts += [mean, mean * amp[0]]
        if self.bidirectional:
            # [E, H] ∝ q_src
            mb = F.linear(reciprocal(e, ekind), self.msg_e.weight[hd:]) * hv[:, hd:].index_select(0, dst)
            mean_b = scatter(mb, src, 0, dim_size=n, reduce="sum") * inv_deg[1]
            parts += [mean_b, mean_b * amp[1]]
        z = torch.cat(parts, dim=1)  # [N, (1+2·dirs)·H], every column ∝ q_i
        inv = torch.cat([canonicalise(z, kind), emb], dim=1)
        h = h + self.dropout(self.node_update(z, inv, kind))  # [N, H]
        ch = canonicalise(h, kind)  # [N, H] invariant
        u = F.silu(self.edge_norm(self.edge_inv_e(canonicalise(e, ekind)) + self.edge_inv_src(ch).index_select(0, src)
                                  + self.edge_inv_dst(ch).index_select(0, dst)))
        g, c = self.edge_gate(u).split(hd, dim=1)  # [E, H] each
        e = e + self.dropout(self.edge_lin(e) * (1 + g) + (ekind == NONE)[:, None].to(e) * c)  # [E, H] ∝ q_i/q_j
        return h, e


def degree_terms(edge_index: torch.Tensor, n: int, delta: torch.Tensor, dtype: torch.dtype):
    """Per direction (forward = in-degree, backward = out-degree): 1/max(deg,1) and log(deg+1)/δ, each [N, 1]."""
    from torch_geometric.utils import degree

    inv, amp = [], []
    for d, row in enumerate((1, 0)):
        deg = degree(edge_index[row], n, dtype=dtype)[:, None]
        inv.append(1.0 / deg.clamp_min(1))
        amp.append(torch.log(deg + 1) / float(delta[d]))
    return tuple(inv), tuple(amp)
