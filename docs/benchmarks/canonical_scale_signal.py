"""How much of a CNN zoo's generalisation signal sits in its layers' scales, raw and in canonical form?
(docs/benchmarks/tasks.md, "Canonical inputs (`train --canonical`) for generalisation prediction").
Usage: python docs/benchmarks/canonical_scale_signal.py [ZOO] [RULE]   (defaults: assets/zoos/cnn-mnist, incoming)

Per activation group of the zoo it prints the Kendall τ between each parameter tensor's L2 norm and the networks'
test accuracy, for the stored parameters and for their canonical forms (float64)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.symmetry.canonical import canonicalize_flat  # noqa: E402
from core.zoo.store import Zoo  # noqa: E402


def main(zoo_dir: str = "assets/zoos/cnn-mnist", rule: str = "incoming") -> None:
    """Print τ(norm, test accuracy) per parameter tensor, raw and canonical, for each group of the zoo."""
    zoo = Zoo.open(zoo_dir)
    table = zoo.table
    for group in zoo.architectures:
        rows = table[table["group"] == group]
        arch, flat = zoo.flat(rows["index"].to_numpy())
        canonical = canonicalize_flat(arch, flat.double(), rule)
        accuracy = rows["test_accuracy"].to_numpy()
        sizes = [int(np.prod(shape)) for _, shape in arch.parameter_shapes()]
        offsets = np.cumsum([0] + sizes)
        print(f"{group}: {len(rows)} networks")
        for (name, _), start, stop in zip(arch.parameter_shapes(), offsets[:-1], offsets[1:]):
            raw = flat[:, start:stop].double().norm(dim=1).numpy()
            canon = canonical[:, start:stop].norm(dim=1).numpy()
            print(f"  {name:20s} τ(norm, accuracy) raw {kendalltau(raw, accuracy)[0]:+.3f}  "
                  f"canonical {kendalltau(canon, accuracy)[0]:+.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
