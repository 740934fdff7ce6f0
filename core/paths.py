"""Where the repository and its bundled assets are, for the code that opens bundled files by default."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "assets"  # zoos/, models/, examples/, embeddings/
BUNDLED_ZOOS = ASSETS / "zoos"
BUNDLED_MODELS = ASSETS / "models"
BUNDLED_EXAMPLES = ASSETS / "examples"
