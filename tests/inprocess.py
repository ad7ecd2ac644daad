"""``lengen`` run in the test process, for module-scoped fixtures (a function-scoped test can use the
``lengen_main`` fixture of ``tests/conftest.py``): the global state a run changes is restored, and
``sys.argv`` too (the CLI rewrites it so that Lightning's DDP can re-execute the command)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import global_state_restored


def run_lengen(*args: str) -> None:
    """``lengen ARGS`` in-process; fails the test unless it exits 0."""
    from lengen import cli

    old = sys.argv
    try:
        with global_state_restored():  # module-scoped: the per-test autouse restore does not cover it
            status = cli.main(list(args))
    finally:
        sys.argv = old
    assert status == 0, f"lengen {' '.join(args)} exited {status}"


def finished_run(root: Path) -> Path:
    """The one run directory under ``root/runs`` that holds results."""
    (path,) = (root / "runs").rglob("results.parquet")
    return path.parent
