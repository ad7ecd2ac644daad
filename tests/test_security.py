"""A checkpoint is a pickle: a crafted one must never run code, on any path that loads one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lengen.results import RESULTS_FILE
from tests.conftest import tiny_overrides


class _Payload:
    """Unpickling this object would create the marker file (that is the attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _lengen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lengen.cli", *args], capture_output=True, text=True)


def _craft(ckpt: Path, marker: Path) -> None:
    """A real checkpoint plus one object whose unpickling runs code."""
    state = torch.load(ckpt, weights_only=True)
    state["innocent_looking_extra"] = _Payload(marker)
    torch.save(state, ckpt)


def _one_error_line(proc: subprocess.CompletedProcess, path: Path) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("lengen: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert str(path) in errors[0] and "refusing" in errors[0], errors[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("sec")
    args = ["train", "+pe=nope", *tiny_overrides(root)]
    proc = _lengen(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p.parent for p in (root / "runs").rglob(RESULTS_FILE)]
    return run, args


@pytest.fixture
def victim(finished, tmp_path) -> tuple[Path, list[str]]:
    """A private copy of the finished run (each attack gets a clean one)."""
    run, args = finished
    runs_root = tmp_path / "runs"
    copy = runs_root / run.relative_to(run.parents[4])
    shutil.copytree(run, copy)
    args = [a if not a.startswith("runs_root=") else f"runs_root={runs_root}" for a in args]
    return copy, args


@pytest.mark.parametrize("name", ["best", "last"])
def test_eval_refuses_crafted_checkpoint(victim, tmp_path, name):
    run, _ = victim
    marker = tmp_path / "pwned"
    ckpt = run / "checkpoints" / f"{name}.ckpt"
    _craft(ckpt, marker)
    proc = _lengen("eval", f"run_dir={run}", f"eval.checkpoint={name}")
    _one_error_line(proc, ckpt)
    assert not marker.exists()


def test_train_resume_refuses_crafted_last_checkpoint(victim, tmp_path):
    run, args = victim
    marker = tmp_path / "pwned"
    (run / RESULTS_FILE).unlink()  # as if killed before evaluation: the rerun resumes from last.ckpt
    _craft(run / "checkpoints" / "last.ckpt", marker)
    _one_error_line(_lengen(*args), run / "checkpoints" / "last.ckpt")
    assert not marker.exists()


def test_train_reevaluation_refuses_crafted_best_checkpoint(victim, tmp_path):
    run, args = victim
    marker = tmp_path / "pwned"
    (run / RESULTS_FILE).unlink()  # last.ckpt is at max_steps: the rerun goes straight to evaluation
    _craft(run / "checkpoints" / "best.ckpt", marker)
    _one_error_line(_lengen(*args), run / "checkpoints" / "best.ckpt")
    assert not marker.exists()
