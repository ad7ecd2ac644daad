"""A checkpoint is a pickle: a crafted one must never run code, on any path that loads one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from lengen.results import RESULTS_FILE
from tests.conftest import assert_one_error_line, run_lengen


class _Payload:
    """Unpickling this object would create the marker file (that is the attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _craft(ckpt: Path, marker: Path) -> None:
    """A real checkpoint plus one object whose unpickling runs code."""
    state = torch.load(ckpt, weights_only=True)
    state["innocent_looking_extra"] = _Payload(marker)
    torch.save(state, ckpt)


def _one_error_line(proc: subprocess.CompletedProcess, path: Path) -> None:
    assert_one_error_line(proc, str(path), "refusing")


@pytest.mark.parametrize("name", ["best", "last"])
def test_eval_refuses_crafted_checkpoint(run_copy, tmp_path, name):
    run, _ = run_copy
    marker = tmp_path / "pwned"
    ckpt = run / "checkpoints" / f"{name}.ckpt"
    _craft(ckpt, marker)
    proc = run_lengen("eval", f"run_dir={run}", f"eval.checkpoint={name}")
    _one_error_line(proc, ckpt)
    assert not marker.exists()


def test_train_resume_refuses_crafted_last_checkpoint(run_copy, tmp_path):
    run, args = run_copy
    marker = tmp_path / "pwned"
    (run / RESULTS_FILE).unlink()  # as if killed before evaluation: the rerun resumes from last.ckpt
    _craft(run / "checkpoints" / "last.ckpt", marker)
    _one_error_line(run_lengen(*args), run / "checkpoints" / "last.ckpt")
    assert not marker.exists()


def test_train_reevaluation_refuses_crafted_best_checkpoint(run_copy, tmp_path):
    run, args = run_copy
    marker = tmp_path / "pwned"
    (run / RESULTS_FILE).unlink()  # last.ckpt is at max_steps: the rerun goes straight to evaluation
    _craft(run / "checkpoints" / "best.ckpt", marker)
    _one_error_line(run_lengen(*args), run / "checkpoints" / "best.ckpt")
    assert not marker.exists()
