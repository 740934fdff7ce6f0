"""The data flow of `core` is one-way: every module imports only from its own package or from lower layers.

    errors / paths → device / options → network → graph / io / spectral → models / symmetry / zoo → data → tasks
                → training → runs → explore / l2o / examples → cli / bench  (→ app, outside core)

Imports are read with `ast` (also those inside functions and under TYPE_CHECKING), so a lazy import does
not hide an upward dependency. The checker itself is tested on a small fake tree so that it can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. Packages of one layer may not import each other, except in the last one: the command line
# and the benchmarks it runs are one layer of entry points.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "paths"),  # the error types every layer raises; where the repository and its assets are
    ("device", "options"),  # device / precision choice; typed command-line option specs
    ("network",),  # the network IR: architecture + parameters, executing them
    ("graph", "io", "baselines", "spectral"),  # neural graphs; checkpoints; weight-statistics baseline; ESD / α
    ("models", "symmetry", "summary", "zoo"),  # metanetworks; group actions and checks; summaries; zoos
    ("data", "viz"),  # batches of graphs for tasks and training; figures
    ("tasks",),
    ("training",),
    ("runs",),  # run directories: train / load / apply
    ("explore", "l2o", "examples", "compare"),  # applications of runs and models
    ("embedding_cache",),  # explore's zoo embeddings kept on disk
    ("cli", "bench", "__main__"),  # entry points
]


def _unit(module: str) -> str | None:
    """The layer unit of a dotted module name inside `core` (its sub-package or top-level module), else None."""
    parts = module.split(".")
    if parts[0] != "core":
        return None
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import in a file, relative imports resolved."""
    out = []
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if node.module is None or target == "core":  # `from core import x` / `from . import x`: x are modules
                out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, target))
    return out


def layering_violations(root: Path, layers: list[tuple[str, ...]]) -> list[str]:
    """Every import in `root/core` that goes upward, sideways between packages of one layer (but the last),
    or involves a unit placed in no layer; `core/__init__.py` (the lazy public facade) is exempt."""
    rank = {unit: i for i, names in enumerate(layers) for unit in names}
    entry = len(layers) - 1
    problems = []
    for path in sorted((root / "core").rglob("*.py")):
        rel = path.relative_to(root)
        if rel == Path("core/__init__.py"):
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        source = _unit(module)
        if source not in rank:
            problems.append(f"{rel}: core.{source} is in no layer of the layering test")
            continue
        for line, target_module in _imports(path, module):
            target = _unit(target_module)
            if target is None or target == source:
                continue
            where = f"{rel}:{line}: core.{source} imports {target_module}"
            if target not in rank:
                problems.append(f"{where} (core.{target} is in no layer)")
            elif rank[target] > rank[source]:
                problems.append(f"{where} (an upward import)")
            elif rank[target] == rank[source] and rank[source] != entry:
                problems.append(f"{where} (a sideways import within one layer)")
    return problems


def test_core_imports_only_downward() -> None:
    assert layering_violations(ROOT, LAYERS) == []


def test_every_layer_unit_exists() -> None:
    """The layer list names real packages / modules (a renamed one must be renamed here too)."""
    missing = [u for names in LAYERS for u in names
               if not (ROOT / "core" / u).is_dir() and not (ROOT / "core" / f"{u}.py").is_file()]
    assert missing == []


def _fake_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return tmp_path


FAKE_LAYERS = [("low",), ("mid", "peer"), ("top", "entry")]


def test_checker_accepts_downward_imports(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path, {
        "core/__init__.py": "import core.top\n",  # the facade is exempt
        "core/low.py": "import os\n",
        "core/mid/__init__.py": "from core.low import x\nfrom . import helpers\n",
        "core/mid/helpers.py": "from ..low import y\nfrom .other import z\n",
        "core/peer.py": "import core.low\n",
        "core/top.py": "from core.mid.helpers import h\nfrom core import peer\nfrom core.entry import e\n",
        "core/entry.py": "from core.top import t\n",
    })
    assert layering_violations(root, FAKE_LAYERS) == []


def test_checker_finds_upward_sideways_and_unplaced_imports(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path, {
        "core/low.py": "def f():\n    from core.mid import x  # lazy, still upward\n",
        "core/mid/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..top import T\n",
        "core/peer.py": "import core.mid.helpers\n",
        "core/top.py": "from core import stray\n",
        "core/stray.py": "",
    })
    problems = layering_violations(root, FAKE_LAYERS)
    assert any(p.startswith("core/low.py:2: core.low imports core.mid") and "upward" in p for p in problems)
    assert any(p.startswith("core/mid/__init__.py:3: core.mid imports core.top") and "upward" in p for p in problems)
    assert any(p.startswith("core/peer.py:1: core.peer imports core.mid.helpers") and "sideways" in p for p in problems)
    assert any("core.top imports core.stray" in p and "in no layer" in p for p in problems)
    assert any(p == "core/stray.py: core.stray is in no layer of the layering test" for p in problems)
    assert len(problems) == 5, problems
