"""The zoo directory format, its resumable writer and its reader.

A zoo is a directory:
    manifest.json              format, version, generator + options, source data, architectures
                               (group → Architecture.to_dict()), seeds, splits (split → network indices)
    params-<group>.safetensors tensor "params" [n_group, P] (float32), tensor "index" [n_group]
                               (network index of each row), one file per architecture group
    table.csv                  one row per network: index, group, group_row, split, label / psnr / steps /
                               seed / image_index (INRs), accuracies, losses and hyperparameters (CNNs)
While a build runs, finished chunks live in `chunks/chunk-<k>.safetensors` (parameters per group plus the
chunk's table rows in the metadata) and `progress.json` records the build's options; a restarted build
with the same options (the batch size may differ: it changes the speed only) skips the chunks on disk.
Finishing consolidates the chunks into the files above, writes manifest.json last and removes the chunks.
Every file is written atomically.

Sharded builds (`zoo build … --shard I/N`, or one shard per torchrun process) split the chunks round-robin:
shard I builds the chunks k with k mod N = I, then writes `shard-I-of-N.json` (what finishing needs) instead
of finishing. `merge_shards` gathers the N shards' chunks (one shared directory, or one directory per shard)
and finishes exactly as a one-process build does, so the merged zoo is identical to it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from core.errors import WeightSpaceError
from core.io.atomic import atomic_path, write_text
from core.io.read import check_value_sizes
from core.network.spec import Architecture, Network
from core.zoo.images import ZooError

FORMAT = "weight-space-explorer.zoo"
VERSION = 1
SPLITS = ("train", "val", "test")


def split_assignment(keys: Sequence[Any], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """Deterministic split name per item; items with equal keys (e.g. the same source image) share a split."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ZooError(f"split fractions must be three non-negative numbers, got {tuple(fractions)}")
    keys = np.asarray(keys)
    unique = np.unique(keys)
    order = np.random.default_rng(seed).permutation(len(unique))
    total = float(sum(fractions))
    n_train = int(round(len(unique) * fractions[0] / total))
    n_val = int(round(len(unique) * fractions[1] / total))
    names = np.empty(len(unique), dtype=object)
    names[order[:n_train]] = "train"
    names[order[n_train:n_train + n_val]] = "val"
    names[order[n_train + n_val:]] = "test"
    return names[np.searchsorted(unique, keys)]


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


# build options that change the speed, never the networks: a build resumes (or counts as done) whatever they are
SPEED_ONLY_OPTIONS = frozenset({"batch_size"})


def _same_build(a: Any, b: Any) -> bool:
    """Whether two {generator, options} fingerprints describe the same networks (SPEED_ONLY_OPTIONS aside)."""
    def key(fp: Any) -> Any:
        if not isinstance(fp, dict) or not isinstance(fp.get("options"), dict):
            return fp
        return {**fp, "options": {k: v for k, v in fp["options"].items() if k not in SPEED_ONLY_OPTIONS}}
    return key(a) == key(b)


class ZooBuilder:
    """Resumable writer: `done(k)` / `write_chunk(k, …)` per chunk, then `finish(…)`."""

    def __init__(self, out_dir: str | os.PathLike, *, generator: str, options: dict[str, Any],
                 architectures: dict[str, Architecture], source: dict[str, Any] | None = None, overwrite: bool = False,
                 shard: tuple[int, int] | None = None):
        self.dir = Path(out_dir)
        self.shard = check_shard(shard)
        if shard is not None and overwrite:
            raise ZooError("--overwrite would delete the other shards' chunks; remove the directory first")
        self.generator, self.options = generator, json.loads(_dumps(options))
        self.architectures = architectures
        self.source = source or {}
        self.chunk_dir = self.dir / "chunks"
        fingerprint = {"generator": generator, "options": self.options}
        progress = self.dir / "progress.json"
        if overwrite and self.dir.exists():
            finished = [self.dir / "manifest.json", self.dir / "table.csv", *self.dir.glob("params-*.safetensors")]
            for p in [*finished, progress]:
                if p.exists():
                    p.unlink()
            shutil.rmtree(self.chunk_dir, ignore_errors=True)
        if (self.dir / "manifest.json").exists():
            old = _read_json(self.dir / "manifest.json")
            generator = old.get("generator") if isinstance(old.get("generator"), dict) else {}
            if _same_build({"generator": generator.get("name"), "options": generator.get("options")}, fingerprint):
                self.complete = True
                return
            raise ZooError(f"{self.dir} already holds a different zoo; choose another directory or overwrite it")
        self.complete = False
        if progress.exists():
            if not _same_build(_read_json(progress).get("fingerprint"), json.loads(_dumps(fingerprint))):
                raise ZooError(f"{self.dir} holds an unfinished build with other options; use the same options to "
                               "resume it, or another directory")
        elif self.dir.exists() and any(not _build_file(p, self.shard is not None) for p in self.dir.iterdir()):
            raise ZooError(f"{self.dir} is not empty and holds no zoo build; choose an empty or new directory")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.chunk_dir.mkdir(exist_ok=True)
        write_text(progress, _dumps({"fingerprint": fingerprint, "note": "unfinished zoo build; rerun to resume"}))

    def _chunk_path(self, k: int) -> Path:
        return self.chunk_dir / f"chunk-{k:05d}.safetensors"

    def done(self, k: int) -> bool:
        """Whether chunk k needs no work here: on disk already, or another shard's."""
        if self.shard is not None and k % self.shard[1] != self.shard[0]:
            return True
        return self.complete or self._chunk_path(k).exists()

    def write_chunk(self, k: int, groups: dict[str, tuple[Sequence[int], torch.Tensor]],
                    rows: list[dict[str, Any]]) -> None:
        """Write chunk k atomically: per group (network indices, flat [m, P]) and its table rows."""
        from safetensors.torch import save_file

        tensors: dict[str, torch.Tensor] = {}
        for group, (indices, flat) in groups.items():
            tensors[f"params.{group}"] = flat.detach().to(torch.float32).contiguous().cpu()
            tensors[f"index.{group}"] = torch.as_tensor(list(indices), dtype=torch.int64)
        with atomic_path(self._chunk_path(k)) as tmp:
            save_file(tensors, str(tmp), metadata={"rows": _dumps(rows)})

    def finish(self, splits_by_index: dict[int, str], extra: dict[str, Any] | None = None) -> Path:
        """Consolidate the chunks into the final files; returns the zoo directory. A shard instead records what
        finishing needs in `shard-I-of-N.json` (see `merge_shards`)."""
        from safetensors import safe_open
        from safetensors.torch import save_file

        if self.complete:
            return self.dir
        if self.shard is not None:
            i, n = self.shard
            record = {"fingerprint": {"generator": self.generator, "options": self.options}, "shard": [i, n],
                      "architectures": {g: a.to_dict() for g, a in self.architectures.items()},
                      "source": self.source, "splits": sorted(splits_by_index.items()), "extra": extra or {}}
            # key order kept (no sort): the merged manifest reads exactly as a one-process build's
            write_text(self.dir / _shard_name(i, n), json.dumps(record, default=_json_default))
            return self.dir
        per_group: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        rows: list[dict[str, Any]] = []
        for path in sorted(self.chunk_dir.glob("chunk-*.safetensors")):
            with safe_open(str(path), "pt") as fh:
                rows += json.loads(fh.metadata()["rows"])
                for key in fh.keys():
                    if key.startswith("params."):
                        group = key[len("params."):]
                        per_group.setdefault(group, []).append((fh.get_tensor(f"index.{group}"), fh.get_tensor(key)))
        table = pd.DataFrame(rows)
        if table.empty:
            raise ZooError("the build produced no networks")
        table = table.sort_values("index").reset_index(drop=True)
        if len(table) != len(splits_by_index):
            raise ZooError(f"{self.dir}: the chunks hold {len(table)} networks, the build has {len(splits_by_index)}; "
                           "rerun the build (or the missing shards) to resume")
        if not np.array_equal(table["index"].to_numpy(), np.arange(len(table))):
            raise ZooError(f"{self.dir}: chunks do not cover networks 0…{len(table) - 1} exactly; rebuild")
        group_row = np.zeros(len(table), dtype=np.int64)
        for group, parts in per_group.items():
            index = torch.cat([p[0] for p in parts])
            flat = torch.cat([p[1] for p in parts])
            order = torch.argsort(index)
            index, flat = index[order], flat[order]
            group_row[index.numpy()] = np.arange(len(index))
            with atomic_path(self.dir / f"params-{group}.safetensors") as tmp:
                save_file({"params": flat.contiguous(), "index": index.contiguous()}, str(tmp))
        table["group_row"] = group_row
        table["split"] = [splits_by_index[i] for i in table["index"]]
        front = ["index", "group", "group_row", "split"]
        table = table[front + [c for c in table.columns if c not in front]]
        with atomic_path(self.dir / "table.csv") as tmp:
            table.to_csv(tmp, index=False)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "generator": {"name": self.generator, "options": self.options},
            "source": self.source,
            "count": len(table),
            "architectures": {g: a.to_dict() for g, a in self.architectures.items() if g in per_group},
            "group_counts": {g: int(sum(len(p[0]) for p in parts)) for g, parts in per_group.items()},
            "seeds": table["seed"].tolist() if "seed" in table else None,
            "splits": {s: table.loc[table["split"] == s, "index"].tolist() for s in SPLITS},
            **(extra or {}),
        }
        write_text(self.dir / "manifest.json", json.dumps(manifest, default=_json_default, indent=1))
        shutil.rmtree(self.chunk_dir, ignore_errors=True)
        (self.dir / "progress.json").unlink(missing_ok=True)
        for record in self.dir.glob("shard-*-of-*.json"):
            record.unlink()
        self.complete = True
        return self.dir


def check_shard(shard: tuple[int, int] | None) -> tuple[int, int] | None:
    """(I, N) with 0 ≤ I < N, or None; ZooError otherwise."""
    if shard is None:
        return None
    i, n = (int(v) for v in shard)
    if n < 1 or not 0 <= i < n:
        raise ZooError(f"shard {i}/{n}: need 0 ≤ I < N")
    return i, n


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (shard I of N, counted from 0) → (I, N)."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ZooError(f"--shard expects I/N such as 0/4, got {text!r}") from None
    return check_shard((i, n))


def _shard_name(i: int, n: int) -> str:
    return f"shard-{i}-of-{n}.json"


def _build_file(path: Path, sharded: bool) -> bool:
    """Whether a directory entry may precede progress.json: the build's own files when shards start at once."""
    if path.name == ".DS_Store":
        return True
    return sharded and (path.name in ("chunks", "progress.json") or path.name.startswith(".progress.json.")
                        or path.name.startswith("shard-"))


def merge_shards(out_dir: str | os.PathLike, shard_dirs: Sequence[str | os.PathLike] = ()) -> Path:
    """Finish a sharded build: check that the N shards (in `shard_dirs`, default `out_dir` itself) are complete
    and were built with the same options, gather their chunks into `out_dir` and consolidate them."""
    out = Path(out_dir)
    sources = [Path(d) for d in shard_dirs] or [out]
    records: dict[int, tuple[Path, dict[str, Any]]] = {}
    for d in sources:
        found = sorted(d.glob("shard-*-of-*.json"))
        if not found:
            hint = " (already merged)" if (d / "manifest.json").exists() else ""
            raise ZooError(f"{d}: holds no finished shard (shard-I-of-N.json){hint}")
        for path in found:
            record = _read_json(path)
            i = int(record["shard"][0])
            if i in records and records[i][0] != d:
                raise ZooError(f"shard {i} appears in both {records[i][0]} and {d}")
            records[i] = (d, record)
    reference = records[min(records)][1]
    n = int(reference["shard"][1])
    same = ("architectures", "source", "splits", "extra")
    for i, (d, record) in records.items():
        if (int(record["shard"][1]) != n or any(record[k] != reference[k] for k in same)
                or not _same_build(record["fingerprint"], reference["fingerprint"])):
            raise ZooError(f"{d / _shard_name(i, int(record['shard'][1]))} belongs to another build than "
                           f"{_shard_name(min(records), n)}: same options and shard count needed")
    missing = sorted(set(range(n)) - set(records))
    if missing:
        raise ZooError(f"shards {', '.join(f'{i}/{n}' for i in missing)} are missing or unfinished; build them first")
    fingerprint = reference["fingerprint"]
    # shards may differ in speed-only options (each machine its own batch size): those that do are recorded as null
    options = dict(fingerprint["options"])
    for k in SPEED_ONLY_OPTIONS & options.keys():
        if any(r["fingerprint"]["options"].get(k) != options[k] for _, r in records.values()):
            options[k] = None
    architectures = {g: Architecture.from_dict(a) for g, a in reference["architectures"].items()}
    builder = ZooBuilder(out, generator=fingerprint["generator"], options=options,
                         architectures=architectures, source=reference["source"])
    if builder.complete:
        raise ZooError(f"{out} already holds the finished zoo")
    for d in dict.fromkeys(d for d, _ in records.values()):
        if d.resolve() != out.resolve():
            for chunk in sorted((d / "chunks").glob("chunk-*.safetensors")):
                with atomic_path(builder.chunk_dir / chunk.name) as tmp:
                    shutil.copyfile(chunk, tmp)
    return builder.finish({int(i): s for i, s in reference["splits"]}, extra=reference["extra"])


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a zoo file; size and nesting bounded, one-line ZooError when unreadable."""
    from core.io.read import loads_json

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ZooError(f"{path}: unreadable ({exc.strerror or exc})") from None
    value = loads_json(raw, str(path), error=ZooError)
    if not isinstance(value, dict):
        raise ZooError(f"{path}: holds a JSON {type(value).__name__}, not an object")
    return value


# The manifest's schema: what the reader relies on. Other keys (recipes, notes) are allowed and kept.
_COUNT = {"type": "integer", "minimum": 0}
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "version", "architectures", "splits"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"type": "integer", "minimum": 1},
        "generator": {"type": "object", "properties": {"name": {"type": "string"}, "options": {"type": "object"}}},
        "source": {"type": "object"},
        "count": _COUNT,
        "architectures": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "required": ["input_shape", "ops"],
            "properties": {"input_shape": {"type": "array", "minItems": 1, "maxItems": 4,
                                           "items": {"type": "integer", "minimum": 1}},
                           "ops": {"type": "array", "items": {"type": "object", "required": ["kind"]}}}}},
        "group_counts": {"type": "object", "additionalProperties": _COUNT},
        "seeds": {"type": ["array", "null"]},
        "splits": {"type": "object", "additionalProperties": {"type": "array", "items": _COUNT}},
    },
}
TABLE_COLUMNS = ("index", "group", "group_row", "split")


def validate_manifest(manifest: dict[str, Any], where: str) -> None:
    """Check a manifest against MANIFEST_SCHEMA; ZooError naming the first violation (one line)."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(MANIFEST_SCHEMA).iter_errors(manifest))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "the top level"
        message = " ".join(error.message.split())
        raise ZooError(f"{where}: manifest.json is malformed at {at}: {message[:200]}")


def _read_table(d: Path, manifest: dict[str, Any], archs: dict[str, Architecture]) -> pd.DataFrame:
    """table.csv, checked: required columns, one row per network in order, known groups, integer rows in range."""
    try:
        table = pd.read_csv(d / "table.csv")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        binary = isinstance(exc, UnicodeDecodeError)
        reason = "not text (binary content)" if binary else " ".join(str(exc).split())[:200]
        raise ZooError(f"{d}: unreadable table.csv ({reason})") from None
    missing = [c for c in TABLE_COLUMNS if c not in table]
    if missing:
        raise ZooError(f"{d}: table.csv lacks the column(s) {', '.join(missing)}")
    if table.empty:
        raise ZooError(f"{d}: table.csv lists no networks")
    for column in ("index", "group_row"):
        if not pd.api.types.is_integer_dtype(table[column]):
            raise ZooError(f"{d}: table.csv column {column} must hold integers (it holds {table[column].dtype})")
    if not np.array_equal(table["index"].to_numpy(), np.arange(len(table))):
        raise ZooError(f"{d}: table.csv column index must count 0…{len(table) - 1} in order")
    if "count" in manifest and manifest["count"] != len(table):
        raise ZooError(f"{d}: manifest.json says {manifest['count']} networks, table.csv has {len(table)} rows")
    table["group"] = table["group"].astype(str)
    unknown = set(table["group"]) - set(archs)
    if unknown:
        raise ZooError(f"{d}: table names groups without an architecture: {sorted(unknown)}")
    counts = manifest.get("group_counts", {})
    for group, rows in table.groupby("group")["group_row"]:
        limit = counts.get(group)
        if rows.min() < 0 or (limit is not None and rows.max() >= limit):
            raise ZooError(f"{d}: table.csv group_row of group {group} out of range 0…{(limit or 1) - 1}")
    for split, members in manifest["splits"].items():
        if members and max(members) >= len(table):
            raise ZooError(f"{d}: split {split} names network {max(members)}, but the zoo has {len(table)}")
    return table


def write_zoo(out_dir: str | os.PathLike, *, generator: str, options: dict[str, Any],
              architectures: dict[str, Architecture], groups: dict[str, tuple[Sequence[int], torch.Tensor]],
              rows: list[dict[str, Any]],
              splits_by_index: dict[int, str], source: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write a whole zoo in one go (importers): one chunk, then finish."""
    builder = ZooBuilder(out_dir, generator=generator, options=options, architectures=architectures, source=source,
                         overwrite=overwrite)
    if not builder.complete:
        builder.write_chunk(0, groups, rows)
    return builder.finish(splits_by_index)


class Zoo:
    """A zoo directory opened for reading; parameters are memory-mapped per group on first use."""

    def __init__(self, directory: Path, manifest: dict[str, Any], table: pd.DataFrame,
                 architectures: dict[str, Architecture]):
        self.dir = directory
        self.manifest = manifest
        self.table = table
        self.architectures = architectures
        self._params: dict[str, torch.Tensor] = {}

    @classmethod
    def open(cls, directory: str | os.PathLike) -> "Zoo":
        """Open a finished zoo directory (raises ZooError when it is not one)."""
        d = Path(directory)
        if not (d / "manifest.json").is_file():
            hint = " (an unfinished build: rerun its command to resume)" if (d / "progress.json").exists() else ""
            raise ZooError(f"{d}: not a zoo directory (no manifest.json){hint}")
        manifest = _read_json(d / "manifest.json")
        if manifest.get("format") != FORMAT:
            raise ZooError(f"{d}: manifest.json is not a zoo manifest")
        version = manifest.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise ZooError(f"{d}: zoo format version {version} is newer than this library ({VERSION})")
        validate_manifest(manifest, str(d))
        archs = {}
        for group, described in manifest["architectures"].items():
            try:
                archs[str(group)] = Architecture.from_dict(described)
                check_value_sizes(archs[str(group)], f"architecture {group}")  # before any probe or graph is sized
            except WeightSpaceError as exc:
                raise ZooError(f"{d}: architecture {group} in manifest.json: {exc}") from None
        table = _read_table(d, manifest, archs)
        return cls(d, manifest, table, archs)

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return f"Zoo({str(self.dir)!r}, {len(self)} networks, groups {list(self.architectures)})"

    def group_params(self, group: str) -> torch.Tensor:
        """All parameters of one group [n_group, P] (memory-mapped safetensors, loaded once)."""
        if group not in self._params:
            from safetensors import safe_open

            path = self.dir / f"params-{group}.safetensors"
            if not path.is_file():
                raise ZooError(f"{self.dir}: missing {path.name}")
            arch = self.architectures[group]
            rows = self.manifest.get("group_counts", {}).get(group, int((self.table["group"] == group).sum()))
            _check_shard(path, rows, arch.num_parameters)
            try:
                with safe_open(str(path), "pt") as fh:
                    flat = fh.get_tensor("params")
            except Exception as exc:  # safetensors raises its own error types for a corrupt file
                raise ZooError(f"{path}: unreadable parameter shard ({type(exc).__name__})") from None
            used = self.table.loc[self.table["group"] == group, "group_row"]
            if len(used) and used.max() >= flat.shape[0]:
                raise ZooError(f"{path}: holds {flat.shape[0]} networks, table.csv uses row {used.max()}")
            self._params[group] = flat
        return self._params[group]

    def _rows(self, indices: Iterable[int] | None) -> pd.DataFrame:
        if indices is None:
            return self.table
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ZooError(f"network index out of range 0…{len(self) - 1}")
        return self.table.iloc[idx]

    def flat(self, indices: Iterable[int] | None = None) -> tuple[Architecture, torch.Tensor]:
        """(architecture, flat [k, P]) of networks that share one architecture group."""
        rows = self._rows(indices)
        groups = rows["group"].unique()
        if len(groups) != 1:
            raise ZooError(f"flat() needs networks of one architecture group; these span {list(groups)}")
        group = str(groups[0])
        params = self.group_params(group)
        rows_of_group = torch.from_numpy(rows["group_row"].to_numpy(dtype=np.int64, copy=True))
        return self.architectures[group], params[rows_of_group]

    def first_of_each_group(self) -> list[tuple[Architecture, torch.Tensor]]:
        """(architecture, flat [1, P]) of the first network of every architecture group: for checks before training."""
        groups = self.table["group"].to_numpy()
        return [self.flat(np.flatnonzero(groups == group)[:1]) for group in self.architectures]

    def network(self, i: int) -> Network:
        """Network i, with its table row as metadata."""
        arch, flat = self.flat([int(i)])
        meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in self.table.iloc[int(i)].to_dict().items()}
        return Network.from_flat(arch, flat[0], meta)

    def split_indices(self, split: str) -> np.ndarray:
        """Network indices of split `train`, `val` or `test` (as stored in the manifest)."""
        splits = self.manifest.get("splits", {})
        if split not in splits:
            raise ZooError(f"unknown split {split!r}; this zoo has {', '.join(splits)}")
        return np.asarray(splits[split], dtype=np.int64)

    def labels(self, column: str = "label", indices: Iterable[int] | None = None) -> np.ndarray:
        """Values of a table column (all networks, or `indices`)."""
        if column not in self.table:
            raise ZooError(f"the zoo table has no column {column!r}; it has {', '.join(self.table.columns)}")
        return self._rows(indices)[column].to_numpy()

    def graphs(self, indices: Iterable[int] | None = None, split: str | None = None) -> list:
        """NeuralGraphs of the chosen networks (in the given order), converted vectorised per group."""
        from core.graph import to_graphs

        if split is not None:
            if indices is not None:
                raise ZooError("pass indices or split, not both")
            indices = self.split_indices(split)
        idx = np.arange(len(self)) if indices is None else np.asarray(list(indices), dtype=np.int64).reshape(-1)
        rows = self._rows(idx)
        out: list = [None] * len(idx)
        groups = rows["group"].to_numpy()
        for group in dict.fromkeys(groups):
            where = np.flatnonzero(groups == group)
            arch, flat = self.flat(idx[where])
            for pos, g in zip(where, to_graphs(arch, flat).to_data_list()):
                g.index = int(idx[pos])
                out[pos] = g
        return out


def _check_shard(path: Path, rows: int, num_parameters: int) -> None:
    """A params shard's header: readable, not truncated, and "params" of shape [rows, num_parameters]."""
    from core.errors import CheckpointError
    from core.io.read import check_safetensors_header

    try:
        header = check_safetensors_header(path, weights=False)  # a shard also holds the int64 "index"
    except CheckpointError as exc:
        raise ZooError(f"{path.parent}: parameter shard {exc}") from None
    shape = header.get("params", {}).get("shape") if isinstance(header.get("params"), dict) else None
    if shape != [rows, num_parameters]:
        raise ZooError(f"{path}: params has shape {shape}, the manifest and architecture need "
                       f"[{rows}, {num_parameters}]")


class ZooGraphDataset(torch.utils.data.Dataset):
    """NeuralGraphs of one split with `.y` from a table column (graphs built vectorised on first use)."""

    def __init__(self, zoo: Zoo | str | os.PathLike, split: str | None = "train", target_column: str = "label",
                 dtype: torch.dtype | None = None):
        self.zoo = zoo if isinstance(zoo, Zoo) else Zoo.open(zoo)
        self.indices = self.zoo.split_indices(split) if split is not None else np.arange(len(self.zoo))
        self.target_column = target_column
        values = self.zoo.labels(target_column, self.indices)
        if np.issubdtype(values.dtype, np.integer):
            self.targets = torch.as_tensor(np.array(values, dtype=np.int64), dtype=torch.long)
        elif np.issubdtype(values.dtype, np.number) and np.isfinite(values.astype(np.float64)).all():
            self.targets = torch.as_tensor(values.astype(np.float64), dtype=torch.float32)
        else:
            raise ZooError(f"{self.zoo.dir}: table.csv column {target_column} must hold finite numbers "
                           f"(it holds {values.dtype} values such as {values[:1].tolist()})")
        self.dtype = dtype
        self._graphs: list | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _all(self) -> list:
        if self._graphs is None:
            graphs = self.zoo.graphs(self.indices)
            for g, y in zip(graphs, self.targets):
                g.y = y.reshape(1)
                if self.dtype is not None:
                    g.x, g.edge_attr = g.x.to(self.dtype), g.edge_attr.to(self.dtype)
            self._graphs = graphs
        return self._graphs

    def __getitem__(self, k: int):
        return self._all()[k]
