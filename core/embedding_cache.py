"""An on-disk cache of zoo embeddings: a zoo is embedded once per (zoo, embedder), not once per server start.

An entry is keyed by the SHA-256 of the zoo's files and the run's files. Model code can change while both stay
the same, so each read also recomputes a few networks' embeddings and compares them with the entry (a spot
check); an entry that no longer matches is recomputed, never shown. Entries are read from the user's cache
(`$WSE_CACHE_DIR`, default `~/.cache/weight-space-explorer/embeddings`) and from the bundled, read-only
`assets/embeddings`; new ones go to the user's cache, written atomically, the `MAX_ENTRIES` most recently used
kept. A cache that cannot be read or written only costs the time to embed again: it never fails a request.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from core.explore import ZooEmbedding, embed_rows, embed_zoo
from core.io.atomic import atomic_path
from core.paths import ASSETS

CACHE_VERSION = 2  # bump when an entry's layout or meaning changes
MAX_ENTRIES = 32
SPOT_CHECKS = 4  # networks recomputed on each read
MAX_DIM = 4096  # the widest embedding an entry may hold (bounds the memory a read may take)
BUNDLED = ASSETS / "embeddings"
_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) → sha256, so a server hashes a file once


def user_cache_dir() -> Path | None:
    """Where new entries go: `$WSE_CACHE_DIR` ("off": nowhere), else ~/.cache/weight-space-explorer/embeddings."""
    chosen = os.environ.get("WSE_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "none") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "weight-space-explorer" / "embeddings"


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        with open(path, "rb") as fh:
            _digests[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _digests[key]


def entry_key(zoo, run=None) -> str:
    """The cache key of (zoo, run): SHA-256 over the zoo's manifest, table and parameter files and the run's
    config and weights (run=None: the weight statistics)."""
    files = [zoo.dir / "manifest.json", zoo.dir / "table.csv",
             *(zoo.dir / f"params-{group}.safetensors" for group in sorted(zoo.architectures))]
    if run is not None:
        files += [run.path / "config.json", run.path / "weights.safetensors"]
    h = hashlib.sha256(f"wse-embedding-cache {CACHE_VERSION}".encode())
    for f in files:
        h.update(f"{f.name}:{_file_digest(f) if f.is_file() else 'missing'};".encode())
    return h.hexdigest()[:32]


def _read(path: Path, zoo_rows: int) -> ZooEmbedding | None:
    """An entry, or None when it is missing, unreadable, too large or inconsistent (never unpickles:
    allow_pickle=False; the archive's unpacked size is checked before anything is unpacked)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if sum(info.file_size for info in archive.infolist()) > zoo_rows * (4 * MAX_DIM + 8) + (1 << 20):
                return None  # more than any embedding of this zoo: a damaged or hostile file
        with np.load(path, allow_pickle=False) as npz:
            vectors, rows, left_out = npz["vectors"], npz["rows"], [str(s) for s in npz["left_out"]]
    except Exception:  # noqa: BLE001 — any damage to a cache file only means: embed again
        return None
    if (vectors.ndim != 2 or rows.ndim != 1 or len(rows) != len(vectors) or vectors.dtype != np.float32
            or rows.dtype.kind not in "iu" or (len(rows) and (rows.min() < 0 or rows.max() >= zoo_rows))
            or not np.isfinite(vectors).all()):
        return None
    return ZooEmbedding(vectors, rows.astype(np.int64), left_out)


def _spot_rows(rows: np.ndarray) -> np.ndarray:
    """Up to SPOT_CHECKS of the entry's rows, spread evenly from the first to the last."""
    if not len(rows):
        return rows
    return rows[np.linspace(0, len(rows) - 1, min(SPOT_CHECKS, len(rows))).round().astype(int)]


def _still_valid(entry: ZooEmbedding, zoo, run) -> bool:
    """Whether today's code reproduces the entry on a few of its networks (float32 batching tolerance)."""
    spot = _spot_rows(entry.rows)
    if not len(spot):
        return True
    try:
        fresh = embed_rows(zoo, spot, run)
    except Exception:  # noqa: BLE001 — whatever fails here will fail (and be reported) when embedding afresh
        return False
    stored = entry.vectors[np.searchsorted(entry.rows, spot)]
    return fresh.shape == stored.shape and np.allclose(fresh, stored, rtol=1e-3, atol=1e-4)


def save_entry(path: Path, entry: ZooEmbedding) -> None:
    """Write one entry atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, vectors=entry.vectors.astype(np.float32), rows=entry.rows.astype(np.int64),
                     left_out=np.asarray(entry.left_out, dtype=str))


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[MAX_ENTRIES:]:
        old.unlink(missing_ok=True)


def cached_embed_zoo(zoo, run=None, progress: Callable[[float], None] | None = None,
                     cache_dirs: list[Path] | None = None) -> tuple[ZooEmbedding, str]:
    """`embed_zoo(zoo, run)` through the cache; returns the embedding and where it came from ("computed",
    "cache" or "bundled cache"). `cache_dirs` replaces [user cache, assets/embeddings]; the first one is written."""
    if cache_dirs is None:
        cache_dirs = [d for d in (user_cache_dir(), BUNDLED) if d is not None]
    key = entry_key(zoo, run)
    for directory in cache_dirs:
        path = directory / f"{key}.npz"
        if not path.is_file():
            continue
        entry = _read(path, len(zoo.table))
        if entry is not None and _still_valid(entry, zoo, run):
            if directory != BUNDLED:
                with contextlib.suppress(OSError):
                    os.utime(path)  # most recently used: kept by _prune
            if progress:
                progress(1.0)
            return entry, "bundled cache" if directory == BUNDLED else "cache"
    entry = embed_zoo(zoo, run, progress=progress)
    if cache_dirs and cache_dirs[0] != BUNDLED:
        with contextlib.suppress(OSError):  # a read-only or full disk: the embedding is still returned
            save_entry(cache_dirs[0] / f"{key}.npz", entry)
            _prune(cache_dirs[0])
    return entry, "computed"


def entry_path(directory: str | os.PathLike, zoo, run=None) -> Path:
    """Where (zoo, run)'s entry lives in `directory` (e.g. the bundled assets/embeddings)."""
    return Path(directory) / f"{entry_key(zoo, run)}.npz"
