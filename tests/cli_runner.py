"""Run `python -m core ARGS…` inside the test process: the same `core.cli.main` the module entry point calls, with
stdout and stderr captured, minus the seconds a fresh interpreter spends importing torch, PyG and scikit-learn
(3–6 s on the Xeon host, 10–13 s on the AMD Zen 3 host).

Tests that need a real process (signals, `python -m core` itself, torchrun) start one; the rest use `run_cli`."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CliResult:
    """What a finished command left: its exit status and everything it printed (the fields of CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """`python -m core *args` run in this process from the repository root, as a user's shell would run it."""
    from core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors and --help end the interpreter with a status
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


def run_cli_ok(*args: str) -> CliResult:
    """`run_cli` that must succeed; the assertion shows the end of what it printed on stderr."""
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    return result
