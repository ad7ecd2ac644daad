"""Interrupt a real ``lengen train`` process and rerun it: it resumes from ``last.ckpt`` and ends
with exactly the result rows of an uninterrupted run with the same seed. The signal is sent once
``progress.json`` shows training under way with most steps still to go (no race with the end of
training), and the test checks it really landed before ``max_steps``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lengen.progress import ProgressFile, earlier_sessions, read_progress
from tests.conftest import spawn_lengen, tiny_overrides, wait_for_progress

MAX_STEPS = 240
STEPS = {"trainer.max_steps": MAX_STEPS, "trainer.val_every": 20, "data.n_train": 2000}
#: the signal goes out at this step; MAX_STEPS - CUT_AT steps (~3 s here) remain, so it lands mid-training
CUT_AT = 3


def lengen(root: Path) -> subprocess.Popen:
    return spawn_lengen("train", "+pe=t5", *tiny_overrides(root, **STEPS))


def results(root: Path) -> pd.DataFrame:
    (path,) = (root / "runs").rglob("results.parquet")
    return pd.read_parquet(path).drop(columns=["run_id"])


def progress_path(root: Path) -> Path | None:
    return next((root / "runs").rglob("progress.json"), None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("ref")
    ref = lengen(root)
    out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out
    end = read_progress(progress_path(root))
    assert (end["step"], end["max_steps"], end["sessions"]) == (MAX_STEPS, MAX_STEPS, 1)
    return results(root)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_resumes_to_identical_results(tmp_path, sig, reference):
    root = tmp_path / "cut"
    proc = lengen(root)
    wait_for_progress(proc, lambda: progress_path(root), CUT_AT)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, out
    assert "Rerun the same command to resume" in out
    stopped = int(re.search(r"interrupted by \w+ at step (\d+)", out).group(1))
    assert CUT_AT <= stopped < MAX_STEPS, out  # the signal really landed mid-training
    first = read_progress(progress_path(root))
    assert first["step"] == stopped
    assert not list((root / "runs").rglob("results.parquet"))

    again = lengen(root)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert "resuming from" in out
    pd.testing.assert_frame_equal(results(root), reference)
    end = read_progress(progress_path(root))  # the budget counts both sessions' wall time
    assert end["sessions"] == 2  # the first session's time is carried over exactly, not re-measured
    assert end["seconds_before"] == pytest.approx(first["seconds_before"] + first["seconds"], abs=1e-3)
    assert end["seconds_before"] > 0
    timing = yaml.safe_load((progress_path(root).parent / "meta.yaml").read_text())["timing"]
    assert timing["sessions"] == 2 and timing["train_seconds"] >= end["seconds_before"]


class FakeTrainer:
    """The attributes of ``lightning.Trainer`` that :class:`ProgressFile` reads."""

    def __init__(self, max_steps: int) -> None:
        self.global_step, self.max_steps, self.is_global_zero = 0, max_steps, True


def test_progress_file_is_written_every_n_steps_and_at_the_ends(tmp_path):
    run_dir = tmp_path / "run"
    cb, trainer = ProgressFile(run_dir / "progress.json", every=2), FakeTrainer(max_steps=5)
    assert read_progress(run_dir) is None
    cb.on_train_start(trainer, None)
    seen = [read_progress(run_dir)]
    for step in range(1, 6):
        trainer.global_step = step
        cb.on_train_batch_end(trainer, None, None, None, step - 1)
        seen.append(read_progress(run_dir))
    assert [r["step"] for r in seen] == [0, 0, 2, 2, 4, 4]
    cb.on_train_end(trainer, None)
    end = read_progress(run_dir / "progress.json")
    assert {k: end[k] for k in ("step", "max_steps", "seconds_before", "sessions")} == {
        "step": 5, "max_steps": 5, "seconds_before": 0.0, "sessions": 1}
    assert end["seconds"] >= 0.0
    trainer.global_step = 3  # an exception (interrupt) records where training stopped
    cb.on_exception(trainer, None, RuntimeError("stop"))
    assert read_progress(run_dir)["step"] == 3
    assert [p.name for p in run_dir.iterdir()] == ["progress.json"]  # atomic: no temporaries left
    trainer.is_global_zero = False
    trainer.global_step = 4
    cb.on_train_end(trainer, None)
    assert read_progress(run_dir)["step"] == 3  # only rank 0 writes
    with pytest.raises(ValueError):
        ProgressFile(run_dir / "p.json", every=0)


def test_a_resumed_run_adds_its_earlier_sessions_wall_time(tmp_path):
    path = tmp_path / "progress.json"
    path.write_text(json.dumps({"step": 40, "max_steps": 100, "seconds": 30.0, "seconds_before": 12.5,
                                "sessions": 2}))
    cb, trainer = ProgressFile(path), FakeTrainer(max_steps=100)
    trainer.global_step = 40  # resumed from a checkpoint at step 40: a third session
    cb.on_train_start(trainer, None)
    assert {k: read_progress(path)[k] for k in ("step", "seconds_before", "sessions")} == {
        "step": 40, "seconds_before": 42.5, "sessions": 3}
    fresh = ProgressFile(path)
    trainer.global_step = 0  # a fresh start (no checkpoint) does not inherit a stale record
    fresh.on_train_start(trainer, None)
    assert {k: read_progress(path)[k] for k in ("seconds_before", "sessions")} == {"seconds_before": 0.0,
                                                                                    "sessions": 1}
    assert earlier_sessions({"step": 3, "max_steps": 5}) == (0.0, 1)  # a record from older lengen
    assert earlier_sessions(None) == (0.0, 0)
