"""Damaged artefacts, environment faults and a concurrent second writer: one line, never a traceback."""

from __future__ import annotations

import errno
import json
import time

import pytest

from lengen.results import CONFIG_FILE, RESULTS_FILE
from tests.conftest import assert_one_error_line, run_lengen, spawn_lengen, tiny_overrides

# -- damaged artefacts ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_last_checkpoint_names_file_and_fix(run_copy, damage):
    run, args = run_copy
    (run / RESULTS_FILE).unlink()  # unfinished: the rerun resumes from last.ckpt
    last = run / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(b"" if damage == "empty" else data[: len(data) // 3])
    assert_one_error_line(run_lengen(*args), str(last), "move it aside")


def test_unreadable_results_names_file_and_fix(run_copy):
    run, args = run_copy
    (run / RESULTS_FILE).write_bytes(b"PAR1 not really parquet")
    assert_one_error_line(run_lengen(*args), str(run / RESULTS_FILE), "move it aside")


def test_invalid_config_yaml_names_file_and_fix(run_copy):
    run, args = run_copy
    (run / CONFIG_FILE).write_text("task: [unclosed\n  : :")
    assert_one_error_line(run_lengen(*args), str(run / CONFIG_FILE), "move it aside")
    assert_one_error_line(run_lengen("eval", f"run_dir={run}"), str(run / CONFIG_FILE))


def test_missing_config_of_finished_run_is_rewritten(finished_run, run_copy):
    run, args = run_copy
    before = (run / CONFIG_FILE).read_text().replace(str(finished_run[0].parents[4]), str(run.parents[4]))
    (run / CONFIG_FILE).unlink()
    proc = run_lengen(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / CONFIG_FILE).read_text() == before


# -- environment faults -----------------------------------------------------------------------------


def test_runs_root_that_is_a_file(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    args = [a if not a.startswith("runs_root=") else f"runs_root={blocker}" for a in tiny_overrides(tmp_path)]
    assert_one_error_line(run_lengen("train", "+pe=nope", *args), str(blocker))


def test_cache_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    assert_one_error_line(run_lengen("train", "+pe=nope", *tiny_overrides(tmp_path)), str(blocker))


@pytest.mark.parametrize(("code", "needle"), [(errno.EROFS, "Read-only"), (errno.ENOSPC, "No space"),
                                              (errno.EACCES, "Permission denied")])
def test_unwritable_runs_root(tmp_path, lengen_main, capsys, monkeypatch, code, needle):
    """Read-only file system, full disk, no permission (simulated: CI runs as root, where chmod
    does not stop writes): the first write into the run dir fails with one line."""
    import os

    import lengen.io

    def refuse(*a, **k):
        raise OSError(code, os.strerror(code), str(tmp_path / "runs"))

    monkeypatch.setattr(lengen.io.tempfile, "mkstemp", refuse)
    assert lengen_main("train", "+pe=nope", *tiny_overrides(tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lengen: error:") and needle in err[0], err
    assert not list((tmp_path / "runs").rglob(RESULTS_FILE))


# -- one writer per run dir ---------------------------------------------------------------------------


def test_same_run_started_twice_trains_once(tmp_path):
    """The second start is refused while the first trains (which is long enough never to finish
    first: it is stopped with SIGINT afterwards and releases its lock)."""
    import signal

    args = ["train", "+pe=nope", *tiny_overrides(tmp_path, **{"trainer.max_steps": 100000,
                                                               "trainer.val_every": 50000})]
    first = spawn_lengen(*args)
    run_dir = None
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:  # wait until the first one is training
        found = list((tmp_path / "runs").rglob("progress.json"))
        if found and json.loads(found[0].read_text() or "{}").get("step", 0) >= 2:
            run_dir = found[0].parent
            break
        time.sleep(0.2)
    assert run_dir is not None, "the first run never started training"
    second = run_lengen(*args)
    assert_one_error_line(second, str(run_dir), "in use by pid")
    assert first.poll() is None, "the first run must still be training"
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 128 + signal.SIGINT, out[-2000:]
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and not (run_dir / RESULTS_FILE).exists()
    assert not (run_dir / ".lock").exists()


def test_w_and_b_unreachable_falls_back_to_offline(tmp_path):
    """Online mode with a server that cannot be reached: offline within the timeout, rows intact."""
    env = {"WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "x" * 40, "WANDB_MODE": ""}
    args = [a for a in tiny_overrides(tmp_path) if not a.startswith("logger=")]
    start = time.time()
    proc = run_lengen("train", "+pe=nope", *args, "logger=wandb", "logger.mode=online", "logger.init_timeout=5",
                   env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "offline instead" in proc.stderr
    (run,) = [p.parent for p in (tmp_path / "runs").rglob(RESULTS_FILE)]
    assert list((run / "wandb").glob("offline-run-*"))
    assert time.time() - start < 200
