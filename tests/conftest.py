"""Shared fixtures: every run goes to a temporary runs root and data cache, with tiny models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def tiny_overrides(root: Path, **extra: object) -> list[str]:
    """Overrides for a run that trains in seconds on a CPU."""
    base = {
        "runs_root": str(root / "runs"),
        "data.cache_dir": str(root / "cache"),
        "logger": "none",
        "trainer.enable_progress_bar": "false",
        "model.d_model": 32,
        "model.n_heads": 2,
        "model.n_layers": 2,
        "model.d_ff": 64,
        "trainer.max_steps": 30,
        "trainer.val_every": 15,
        "trainer.batch_size": 16,
        "data.n_train": 400,
        "data.n_val_per_length": 4,
        "eval.n_per_length": 4,
        "task.train_min": 2,
        "task.train_max": 6,
        "task.eval_max": 10,
    }
    base.update({k: v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture
def lengen_main(monkeypatch):
    """Call ``lengen`` in-process; returns (exit status, stderr text)."""
    from lengen import cli

    def run(*args: str, capsys=None) -> int:
        monkeypatch.setattr(sys, "argv", ["lengen", *args])
        try:
            return cli.main(list(args))
        except SystemExit as e:
            return int(e.code or 0)

    return run


def spawn_lengen(*args: str) -> subprocess.Popen:
    """``lengen ARGS`` as a real child process (for signals and kills), output merged and unbuffered."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "lengen.cli", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
