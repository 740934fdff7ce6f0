"""The project's set-up promises: README commands, Dockerfile and CI agree with each other."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> dict[str, str]:
    """The two commands in README's 'Quick start' block, keyed by their comment."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", text, re.S)
    assert block, "README.md needs a '## Quick start' section with a bash block"
    commands, label = {}, None
    for line in block.group(1).splitlines():
        if line.startswith("#"):
            label = line.lower()
        elif line.strip():
            commands["app" if "app" in label else "test"] = line.strip()
    return commands


def test_readme_has_exactly_two_setup_commands():
    commands = _readme_commands()
    assert set(commands) == {"app", "test"}
    assert "streamlit run app/main.py" in commands["app"]
    assert "pip install -r requirements.txt" in commands["app"]


def test_ci_runs_the_readme_test_command():
    test_cmd = _readme_commands()["test"]
    assert test_cmd == "bash .ci/run"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -r requirements-dev.txt && ruff check . && python -m pytest" in ci
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()


def test_dockerfile_matches_readme():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", docker, re.M)
    assert "pip install --no-cache-dir -r requirements.txt" in docker
    cmd = re.search(r"^CMD (\[.*\])", docker, re.M)
    assert cmd, "Dockerfile needs an exec-form CMD"
    import json

    argv = json.loads(cmd.group(1))
    app_cmd = shlex.split(_readme_commands()["app"].split("&&")[-1])
    assert argv[: len(app_cmd)] == app_cmd, (argv, app_cmd)
    assert "--server.port=8501" in argv
    assert "EXPOSE 8501" in docker


def test_torch_pinned_for_the_cpu_wheel():
    reqs = (ROOT / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in reqs
    for name in ("torch-geometric", "streamlit", "plotly", "networkx", "umap-learn", "safetensors"):
        assert any(r.startswith(name) for r in reqs), name


def test_core_never_imports_app_or_streamlit():
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        src = path.read_text()
        if re.search(r"^\s*(import|from)\s+(streamlit|app)\b", src, re.M):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_cli_help_lists_commands_without_importing_torch():
    """`python -m core --help` (and a command's parser up to its deferred options) imports no torch, PyG or
    scikit-learn: those cost seconds of start-up that listing the commands does not need."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("bench", "inspect", "train", "evaluate", "predict", "zoo", "check", "compare", "l2o"):
        assert f"    {command}" in out.stdout, command
    probe = ("import sys; from core.cli import build_parser; build_parser().format_help(); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torch_geometric', 'sklearn', 'scipy'}))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
