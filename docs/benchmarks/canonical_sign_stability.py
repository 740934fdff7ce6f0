"""How often does one draw of an INR weight transform change a hidden neuron's canonical sign? (docs/benchmarks/
inr_learning.md, "Canonical inputs on the K = 2 zoo …"). Usage: python docs/benchmarks/canonical_sign_stability.py

For 256 training INRs of the bundled mnist5k-inr zoo (2-32-32-1 SIRENs, w0 = 30) it compares the sign each neuron gets
before and after one draw of each `--augment ng` transform: under each rule of the canonical form
(`core.symmetry.canonical.CANONICAL_RULES`: the largest-magnitude incoming, or outgoing, parameter made positive, or
the first layer by incoming and the second by outgoing parameters; both hidden layers), and, for the first layer,
under two rules that read the bias, which rotations of the input coordinates leave unchanged: the wrapped bias made
positive, and a hybrid (the bias where |b| > tau · |w|, else the largest entry)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.symmetry.canonical import CANONICAL_RULES, canonical_elements  # noqa: E402
from core.zoo import Zoo  # noqa: E402
from core.zoo.inr_augment import parse_augment  # noqa: E402

TRANSFORMS = ["translate=0.25", "rotate=45", "scale=0.2", "noise=0.1", "dropout=0.01", "ng"]
PERIOD = 2 * math.pi / 30  # the first sine layer's phase period


def canonical_signs(arch, flat: torch.Tensor, reads: str) -> dict[int, torch.Tensor]:
    """Per layer [B, n]: the sign the canonical form gives each neuron, in the neurons' original order."""
    g = canonical_elements(arch, flat, reads)
    return {layer: torch.zeros_like(g.scales[layer]).scatter_(1, perm, g.scales[layer])
            for layer, perm in g.perms.items()}


def first_layer_signs(flat: torch.Tensor, tau: float | None) -> torch.Tensor:
    """[B, 32] first-layer signs: the wrapped bias's (tau None), or the hybrid rule's."""
    w, b = flat[:, :64].reshape(-1, 32, 2), flat[:, 64:96]
    b = b - PERIOD * torch.floor(b / PERIOD + 0.5)
    by_bias = torch.where(b < 0, -1.0, 1.0).double()
    if tau is None:
        return by_bias
    entries = torch.cat([w, b[..., None]], -1)
    largest = torch.where(entries.gather(-1, entries.abs().argmax(-1, keepdim=True))[..., 0] < 0, -1.0, 1.0)
    return torch.where(b.abs() > tau * w.norm(dim=-1), by_bias, largest.double())


def main() -> None:
    """Print the share of neurons whose sign changes, per transform and rule."""
    zoo = Zoo.open("assets/zoos/mnist5k-inr")
    nets = [zoo.network(i) for i in range(256)]
    arch = nets[0].architecture
    flat = torch.stack([n.flat().detach() for n in nets]).double()
    if not torch.equal(flat[0, :96].float(), torch.cat([nets[0].params["seq.0.weight"].flatten(),
                                                       nets[0].params["seq.0.bias"]])):
        raise SystemExit("unexpected parameter layout: the first 96 entries are not the first layer's")
    base = {reads: canonical_signs(arch, flat, reads) for reads in CANONICAL_RULES}
    rules = {"bias": None, "hybrid 0.354": 0.354, "hybrid 0.5": 0.5, "hybrid 0.7": 0.7}
    first = {name: first_layer_signs(flat, tau) for name, tau in rules.items()}
    for spec in TRANSFORMS:
        moved = parse_augment(spec)(arch, flat, torch.Generator().manual_seed(0))
        parts = []
        for reads in CANONICAL_RULES:
            signs = canonical_signs(arch, moved, reads)
            changed = [f"layer {L} {(signs[L] != base[reads][L]).double().mean():.1%}" for L in signs]
            parts.append(f"{reads}: " + ", ".join(changed))
        canon = "; ".join(parts)
        other = ", ".join(f"{name} {(first_layer_signs(moved, tau) != first[name]).double().mean():.1%}"
                          for name, tau in rules.items())
        print(f"{spec:<15} canonical form, {canon}; first layer, {other}")


if __name__ == "__main__":
    main()
