"""Add training views to a finished image-INR zoo: more INRs of every training image, from fresh init seeds.

    python -m core zoo extend runs/c/mnist5k-k2 --views 2 --seed 7 --out runs/c/mnist5k-k4

`zoo build inr --inrs-per-image K` fits every view from scratch, so going from K = 2 to K = 4 that way refits the
INRs already fitted. `add_inr_views` fits only the new ones (through `build_inr_zoo`: resumable, parallel, with a
progress bar; its work directory is `OUT.views`, kept for resuming) and writes a new zoo: the source zoo's networks
unchanged, then the new ones. Splits are the source's: every new INR is of a training image, so validation and test
keep one INR per image and no image changes split. New INR j starts from init seed `seed · 1,000,000 + j` (the
table's `seed` column); a seed whose range the source uses is refused. The fitting recipe is the source's
(`inr_recipe`: zoos built before recipes were recorded get the `siren` init they were built with), and the manifest
records it and the extension (`generator.options.extended_from`). Shared-init zoos are refused: every view of an
image would start from the same init and fit to the same network.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.io.atomic import atomic_path
from core.zoo.images import ZooError, load_images
from core.zoo.inr import build_inr_zoo, inr_recipe
from core.zoo.store import Zoo, ZooBuilder


def add_inr_views(src: str | os.PathLike, out: str | os.PathLike, views: int, seed: int, workers: int | None = None,
                  progress: bool = True, batch_size: int | None = None) -> Zoo:
    """Write the zoo `out`: the image-INR zoo at `src` plus `views` new INRs of each of its training images.

    `batch_size`: INRs fitted at once (None: `fit_batch_size`'s default for the image size), not the source's.
    """
    src, out = Path(src), Path(out)
    if views < 1:
        raise ZooError(f"views must be positive, got {views}")
    zoo = Zoo.open(src)
    if set(zoo.architectures) != {"siren"}:
        raise ZooError(f"{src} is not a one-architecture image-INR zoo")
    recipe = inr_recipe(zoo.manifest)  # ZooError unless `zoo build inr` made it
    if recipe["init"] == "shared":
        raise ZooError(f"{src} is a shared-init zoo: a new view of an image would start from the same init as its "
                       "INR there and fit to the same network")
    opts = zoo.manifest["generator"].get("options") or {}
    if "images" not in opts:
        raise ZooError(f"{src}'s manifest does not say which images it was fitted to (generator.options.images)")
    if recipe["steps"] is None:  # only an older, recipe-less manifest can lack it
        raise ZooError(f"{src}'s manifest does not record its fitting step budget (generator.options.steps)")
    table = zoo.table
    train = table[table["split"] == "train"]
    images = np.unique(train["image_index"].to_numpy())            # source image indices, sorted
    used_seeds = set(int(s) for s in table["seed"])
    new_seeds = {seed * 1_000_000 + j for j in range(len(images) * views)}
    if used_seeds & new_seeds:
        raise ZooError(f"--seed {seed} reuses init seeds of {src}; choose another")
    x, y = load_images(opts["images"])
    work = out.with_name(out.name + ".views")
    work.mkdir(parents=True, exist_ok=True)
    npz = work / "train-images.npz"
    if not npz.exists():  # written atomically: an interrupted run must not leave a truncated file to resume from
        with atomic_path(npz) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, images=x[images].numpy(), labels=y[images].numpy())
    # the chunking follows the source (older manifests may lack it), its batch size does not: that changes only the
    # speed, and a source's recorded one can be slow today (the bundled zoo's 256: 1.4× slower than the default)
    batching = {"chunk_size": opts["chunk_size"]} if "chunk_size" in opts else {}
    fitted = build_inr_zoo(work / "zoo", images=str(npz), inrs_per_image=views, hidden=recipe["hidden"],
                           w0=recipe["w0"], steps=recipe["steps"], target_psnr=recipe["target_psnr"], seed=seed,
                           lr=recipe["lr"], offset=recipe["offset"], init=recipe["init"], workers=workers,
                           split=(1.0, 0.0, 0.0), progress=progress, batch_size=batch_size, **batching)
    new = fitted.table.copy()
    new["image_index"] = images[new["image_index"].to_numpy()]     # npz row → source image index
    if not np.array_equal(new["label"].to_numpy(), y.numpy()[new["image_index"].to_numpy()]):
        raise ZooError("labels of the new views do not match their source images")
    n_src = len(table)
    # the source's options, its training-view count raised, and where the zoo came from
    options = {**opts, "inrs_per_image": int(opts.get("inrs_per_image", 1)) + views,
               "extended_from": {"zoo": str(src), "views": views, "seed": seed, "source_options": opts}}
    builder = ZooBuilder(out, generator="inr", options=options, architectures=zoo.architectures,
                         source=zoo.manifest.get("source"))
    if not builder.complete:
        keep = ["index", "group", "label", "psnr", "steps", "seed", "image_index"]
        _, src_flat = zoo.flat(np.arange(n_src))
        rows = table[keep].to_dict("records")
        builder.write_chunk(0, {"siren": (list(range(n_src)), src_flat)}, rows)
        _, new_flat = fitted.flat(np.arange(len(new)))
        new["index"] = np.arange(n_src, n_src + len(new))
        builder.write_chunk(1, {"siren": (new["index"].tolist(), new_flat)}, new[keep].to_dict("records"))
        splits = {int(i): str(s) for i, s in zip(table["index"], table["split"])}
        splits.update({int(i): "train" for i in new["index"]})
        # an older source's recipe is the one derived above, now recorded (by the build of the new views)
        builder.finish(splits, extra={"recipe": zoo.manifest.get("recipe") or fitted.manifest["recipe"]})
    return Zoo.open(out)
