"""Interrupt a real ``lengen train`` process and rerun it: it resumes from ``last.ckpt`` and ends
with exactly the result rows of an uninterrupted run with the same seed."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import spawn_lengen, tiny_overrides

STEPS = {"trainer.max_steps": 240, "trainer.val_every": 20, "data.n_train": 2000}


def lengen(root: Path) -> subprocess.Popen:
    return spawn_lengen("train", "+pe=t5", *tiny_overrides(root, **STEPS))


def results(root: Path) -> pd.DataFrame:
    (path,) = (root / "runs").rglob("results.parquet")
    return pd.read_parquet(path).drop(columns=["run_id"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("ref")
    ref = lengen(root)
    out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out
    return results(root)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_resumes_to_identical_results(tmp_path, sig, reference):

    root = tmp_path / "cut"
    proc = lengen(root)
    deadline = time.monotonic() + 300
    while not list((root / "runs").rglob("last.ckpt")):  # training is under way
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, out
    assert "Rerun the same command to resume" in out
    assert not list((root / "runs").rglob("results.parquet"))

    again = lengen(root)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert "resuming from" in out
    pd.testing.assert_frame_equal(results(root), reference)
