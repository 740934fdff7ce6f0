"""Small zoos built on the fly for tests."""

from __future__ import annotations

from pathlib import Path


def tiny_digits_inr_zoo(out: Path, count: int) -> Path:
    """A quick INR zoo: `count` SIRENs 2→8→8→1 of 8 × 8 digits, 20 fitting steps each."""
    from core.zoo import build_inr_zoo

    build_inr_zoo(out, images="digits", count=count, hidden=(8, 8), steps=20, target_psnr=None, workers=1,
                  progress=False)
    return out
