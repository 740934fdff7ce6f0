"""Does today's fitter reproduce an INR zoo's stored networks from their seeds? (docs/benchmarks/inr_learning.md,
"ng-t with canonical inputs …"). Usage: python docs/benchmarks/refit_reproduces_zoo.py [ZOO] [SPLIT] [N]
(defaults: assets/zoos/mnist5k-inr, test, 100).

It refits the first N INRs of a split from their stored init seeds with the zoo's recorded recipe and prints how far
the refitted parameters are from the stored ones. Agreement to rounding means a refit zoo (`zoo refit`, other seeds)
samples the same distribution of networks as the zoo's own split, not one shifted by a changed fitter."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.zoo import fit_inrs, load_images  # noqa: E402
from core.zoo.inr import inr_recipe  # noqa: E402
from core.zoo.store import Zoo  # noqa: E402


def main(zoo_dir: str = "assets/zoos/mnist5k-inr", split: str = "test", n: str = "100") -> None:
    """Refit N stored INRs of one split from their seeds and print the parameter and PSNR differences."""
    zoo = Zoo.open(zoo_dir)
    recipe = inr_recipe(zoo.manifest)
    rows = zoo.table[zoo.table["split"] == split].head(int(n))
    images, _ = load_images(zoo.manifest["generator"]["options"]["images"])
    flat, psnr, _ = fit_inrs(images[torch.tensor(rows["image_index"].to_numpy())], hidden=recipe["hidden"],
                             w0=recipe["w0"], offset=recipe["offset"], steps=recipe["steps"], lr=recipe["lr"],
                             target_psnr=recipe["target_psnr"], seeds=rows["seed"].tolist(), init=recipe["init"])
    _, stored = zoo.flat(rows["index"].to_numpy())
    diff = (flat - stored).abs()
    print(f"{len(rows)} {split} INRs of {zoo_dir}: largest |difference| {float(diff.max()):.2e}, median of the "
          f"per-INR largest {float(diff.max(1).values.median()):.2e}, relative L2 "
          f"{float((flat - stored).norm() / stored.norm()):.2e}; mean PSNR refitted {float(psnr.mean()):.3f} dB, "
          f"stored {float(rows['psnr'].mean()):.3f} dB")


if __name__ == "__main__":
    main(*sys.argv[1:])
