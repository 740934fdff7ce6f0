"""Image helpers: grey images in [0, 1] as PNG strips (original | edited | target)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[H, W] float image → uint8 array, clipped to [0, 1]."""
    return (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


def png_strip(images: list[torch.Tensor], scale: int = 8, gap: int = 4) -> bytes:
    """Images side by side (nearest-neighbour upscaled by `scale`), separated by white gaps, as PNG bytes."""
    tiles = [np.kron(to_uint8(im), np.ones((scale, scale), dtype=np.uint8)) for im in images]
    h = max(t.shape[0] for t in tiles)
    parts = []
    for i, t in enumerate(tiles):
        if i:
            parts.append(np.full((h, gap), 255, dtype=np.uint8))
        parts.append(t)
    buf = io.BytesIO()
    Image.fromarray(np.concatenate(parts, axis=1)).save(buf, format="PNG")
    return buf.getvalue()


def difference_image(before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(|after − before| scaled so its largest value is white, that largest value): where an edit changed pixels."""
    diff = (after.detach().float() - before.detach().float()).abs()
    peak = float(diff.max()) if diff.numel() else 0.0
    return (diff / peak if peak > 0 else diff), peak
