"""New fits of a finished image-INR zoo's images, from fresh init seeds: more training views, or held-out refits.

    python -m core zoo extend runs/c/mnist5k-k2 --views 2 --seed 7 --out runs/c/mnist5k-k4
    python -m core zoo refit assets/zoos/mnist5k-inr --split test --views 2 --seed 10 --out runs/mnist5k-test-refit

`zoo build inr --inrs-per-image K` fits every view from scratch, so going from K = 2 to K = 4 that way refits the
INRs already fitted. `add_inr_views` fits only the new ones (through `build_inr_zoo`: resumable, parallel, with a
progress bar; its work directory `OUT.views` is what an interrupted run resumes from, its files removed once OUT is
written) and writes a new zoo: the source zoo's networks unchanged, then the new ones. A rerun with the same options
reopens a finished OUT without fitting; a finished OUT of other options is refused before any fitting. Splits are
the source's: every new INR is of a training image, so validation and test keep one INR per image and no image
changes split. New INR j starts from init seed `seed · 1,000,000 + j` (the table's `seed` column); a seed whose
range the source uses is refused. The fitting recipe is the source's (`inr_recipe`: zoos built before recipes were
recorded get the `siren` init they were built with), and the manifest records it and the extension
(`generator.options.extended_from`). Shared-init zoos are refused: every view of an image would start from the same
init and fit to the same network.

`refit_held_out` fits new INRs of the validation or test images instead and writes them alone, all in that split:
a second sample of the held-out networks, to tell a model's gain from the luck of one set of test INRs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from core.io.atomic import atomic_path
from core.zoo.images import ZooError, load_images
from core.zoo.inr import build_inr_zoo, inr_recipe
from core.zoo.store import Zoo, ZooBuilder

HELD_OUT_SPLITS = ("val", "test")
_COLUMNS = ["index", "group", "label", "psnr", "steps", "seed", "image_index"]  # stored per network


def _check_source(src: Path) -> tuple[Zoo, dict[str, Any], dict[str, Any]]:
    """The source zoo, its fitting recipe and its build options; ZooError unless new views of it can be fitted."""
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
    return zoo, recipe, opts


def _fit_views(zoo: Zoo, recipe: dict[str, Any], opts: dict[str, Any], images: np.ndarray, views: int, seed: int,
               work: Path, workers: int | None, progress: bool, batch_size: int | None) -> tuple[Any, Zoo]:
    """Fit `views` new INRs of each source image in `images` (sorted indices) with the zoo's recipe, from init seeds
    `seed · 1,000,000 + j`, in the resumable work directory `work`: (the new INRs' table, its `image_index` column
    in source-image indices; the fitted work zoo)."""
    if views < 1:
        raise ZooError(f"views must be positive, got {views}")
    if not len(images):
        raise ZooError(f"{zoo.dir} has no images in that split")
    used_seeds = set(int(s) for s in zoo.table["seed"])
    new_seeds = {seed * 1_000_000 + j for j in range(len(images) * views)}
    if used_seeds & new_seeds:
        raise ZooError(f"--seed {seed} reuses init seeds of {zoo.dir}; choose another")
    x, y = load_images(opts["images"])
    work.mkdir(parents=True, exist_ok=True)
    npz = work / "images.npz"
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
    return new, fitted


def _split_images(zoo: Zoo, split: str) -> np.ndarray:
    """Sorted source-image indices of one split of a zoo."""
    table = zoo.table
    return np.unique(table.loc[table["split"] == split, "image_index"].to_numpy())


def _builder(out: Path, zoo: Zoo, options: dict[str, Any]) -> ZooBuilder:
    """The resumable writer of the zoo at `out`, with the source's architectures and provenance; ZooError if `out`
    holds another zoo."""
    return ZooBuilder(out, generator="inr", options=options, architectures=zoo.architectures,
                      source=zoo.manifest.get("source"))


def _remove_work(work: Path) -> None:
    """Delete what `_fit_views` wrote into `work`, then `work` itself unless something else is in it."""
    shutil.rmtree(work / "zoo", ignore_errors=True)
    (work / "images.npz").unlink(missing_ok=True)
    if not any(work.iterdir()):
        work.rmdir()


def _write_views_zoo(zoo: Zoo, recipe: dict[str, Any], opts: dict[str, Any], split: str, views: int, seed: int,
                     out: Path, options: dict[str, Any], keep_source: bool, workers: int | None, progress: bool,
                     batch_size: int | None) -> Zoo:
    """Fit `views` new INRs of each `split` image of `zoo` and write the zoo `out` (manifest options `options`): the
    source's networks and splits, then the new ones in `split`, if `keep_source`, else the new ones alone.

    A finished `out` is reopened without fitting, and refused before any fitting if it holds another zoo. The work
    directory `OUT.views` is what an interrupted run resumes from; its files go once `out` is written.
    """
    if (out / "manifest.json").exists():
        _builder(out, zoo, options)   # ZooError unless these options built it
        return Zoo.open(out)
    work = out.with_name(out.name + ".views")
    new, fitted = _fit_views(zoo, recipe, opts, _split_images(zoo, split), views, seed, work, workers, progress,
                             batch_size)
    builder = _builder(out, zoo, options)
    if not builder.complete:          # another process may have finished it meanwhile
        kept = zoo.table if keep_source else zoo.table.iloc[:0]
        n_kept = len(kept)
        if n_kept:
            _, kept_flat = zoo.flat(np.arange(n_kept))
            builder.write_chunk(0, {"siren": (list(range(n_kept)), kept_flat)}, kept[_COLUMNS].to_dict("records"))
        _, new_flat = fitted.flat(np.arange(len(new)))
        new["index"] = np.arange(n_kept, n_kept + len(new))
        builder.write_chunk(int(n_kept > 0), {"siren": (new["index"].tolist(), new_flat)},
                            new[_COLUMNS].to_dict("records"))
        splits = {int(i): str(s) for i, s in zip(kept["index"], kept["split"])}
        splits.update({int(i): split for i in new["index"]})
        # an older source's recipe is the one derived from it, now recorded (by the build of the new views)
        builder.finish(splits, extra={"recipe": zoo.manifest.get("recipe") or fitted.manifest["recipe"]})
    _remove_work(work)   # only after the zoo is written: until then it is what a rerun resumes from
    return Zoo.open(out)


def add_inr_views(src: str | os.PathLike, out: str | os.PathLike, views: int, seed: int, workers: int | None = None,
                  progress: bool = True, batch_size: int | None = None) -> Zoo:
    """Write the zoo `out`: the image-INR zoo at `src` plus `views` new INRs of each of its training images.

    `batch_size`: INRs fitted at once (None: `fit_batch_size`'s default for the image size), not the source's.
    """
    src, out = Path(src), Path(out)
    zoo, recipe, opts = _check_source(src)
    # the source's options, its training-view count raised, and where the zoo came from
    options = {**opts, "inrs_per_image": int(opts.get("inrs_per_image", 1)) + views,
               "extended_from": {"zoo": str(src), "views": views, "seed": seed, "source_options": opts}}
    return _write_views_zoo(zoo, recipe, opts, "train", views, seed, out, options, True, workers, progress,
                            batch_size)


def refit_held_out(src: str | os.PathLike, out: str | os.PathLike, split: str, views: int, seed: int,
                   workers: int | None = None, progress: bool = True, batch_size: int | None = None) -> Zoo:
    """Write the zoo `out`: `views` new INRs of each `split` (val or test) image of the image-INR zoo at `src`, every
    one in that split, fitted with `src`'s recipe from fresh init seeds.

    A model trained on `src` has never seen these images, and these INRs are not the ones its validation score
    (early stopping) or its test score was measured on: `evaluate RUN --zoo OUT --split SPLIT` measures how it
    does on other fits of its held-out images, with `views` times as many networks.
    """
    if split not in HELD_OUT_SPLITS:
        raise ZooError(f"split must be one of {', '.join(HELD_OUT_SPLITS)}, got {split!r}; for more training views "
                       "use `zoo extend`")
    src, out = Path(src), Path(out)
    zoo, recipe, opts = _check_source(src)
    options = {**opts, "inrs_per_image": views,
               "refit_of": {"zoo": str(src), "split": split, "views": views, "seed": seed, "source_options": opts}}
    return _write_views_zoo(zoo, recipe, opts, split, views, seed, out, options, False, workers, progress,
                            batch_size)
