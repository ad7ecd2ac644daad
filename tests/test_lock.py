"""One writer per run dir: real processes race for the lock, stale locks are taken over, live
and foreign ones are refused with one line, and release never removes someone else's lock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lengen import lock as lock_mod
from lengen.errors import ConfigError
from lengen.lock import LOCK_FILE, LockInfo, RunLock, RunLocked, read_lock

ROUNDS = 20


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(run_dir: Path, **fields) -> LockInfo:
    info = dataclasses.replace(LockInfo.mine(["lengen", "train", "+pe=nope"]), **fields)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_FILE).write_text(info.to_json())
    return info


def _hours_ago(h: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=h)).astimezone().isoformat(timespec="seconds")


# -- racing processes -----------------------------------------------------------------------------


def _racer(root: str, rounds: int, stale: bool, barrier, results) -> None:
    """Each round: wait for the other racer, try to lock the round's dir, report, hold until both
    have tried (so the loser meets a live owner), release, go on."""
    for i in range(rounds):
        barrier.wait()
        lk = RunLock(Path(root) / f"r{i}" / ("stale" if stale else "fresh"), note=lambda msg: None)
        try:
            lk.acquire()
            results.put((i, os.getpid(), "won", lk.took_over is not None))
        except RunLocked as e:
            results.put((i, os.getpid(), "locked", str(e)))
        except BaseException as e:
            results.put((i, os.getpid(), "error", repr(e)))
        barrier.wait()
        lk.release()


@pytest.mark.parametrize("stale", [False, True], ids=["free-dir", "stale-lock"])
def test_two_processes_race_exactly_one_wins(tmp_path, stale):
    if stale:  # every round's dir starts with the lock of a dead process: both race to take it over
        dead = _dead_pid()
        for i in range(ROUNDS):
            _write_lock(tmp_path / f"r{i}" / "stale", pid=dead, proc_start=None)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(str(tmp_path), ROUNDS, stale, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for i in range(ROUNDS):
        outcomes = sorted(r[2] for r in got if r[0] == i)
        assert outcomes == ["locked", "won"], [r for r in got if r[0] == i]
        winner = next(r for r in got if r[0] == i and r[2] == "won")
        loser = next(r for r in got if r[0] == i and r[2] == "locked")
        if not stale:
            assert winner[3] is False
        assert f"in use by pid {winner[1]} on {socket.gethostname()}" in loser[3]
        assert not (tmp_path / f"r{i}" / ("stale" if stale else "fresh") / LOCK_FILE).exists()  # released
    # With a stale lock the winner is mostly its taker; or a plain acquirer that got in between the
    # taker's removal of the stale file and its own create (the taker then meets a live owner).
    assert not stale or any(r[3] is True for r in got if r[2] == "won")


# -- one process ----------------------------------------------------------------------------------


def test_lock_file_content_and_release(tmp_path):
    run_dir = tmp_path / "runs" / "a" / "seed1"
    with RunLock(run_dir, command=["lengen", "train", "+pe=nope"]) as lk:
        assert lk.held
        data = json.loads((run_dir / LOCK_FILE).read_text())
        assert data["pid"] == os.getpid()
        assert data["host"] == socket.gethostname()
        assert data["command"] == "lengen train +pe=nope"
        assert dt.datetime.fromisoformat(data["started"]).tzinfo is not None
        assert read_lock(run_dir).token == lk.info.token
        assert lk.acquire() is lk  # already held: no-op
    assert not (run_dir / LOCK_FILE).exists()
    assert [p.name for p in run_dir.iterdir()] == []  # no temp files left
    assert read_lock(run_dir) is None
    RunLock(run_dir).acquire().release()  # free again


def test_live_owner_on_this_host_refused(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(tmp_path, pid=sleeper.pid, proc_start=lock_mod._proc_start(sleeper.pid), started=_hours_ago(0.5))
        with pytest.raises(RunLocked) as e:
            RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"run dir {tmp_path} is in use by pid {sleeper.pid} on {socket.gethostname()} since ")
    assert "(30m 0s ago)" in msg or "(29m 59s ago)" in msg or "(30m 1s ago)" in msg
    assert msg.endswith(f"wait for it or, if that process is gone, remove {tmp_path / LOCK_FILE}")
    assert isinstance(e.value, ConfigError)


def test_stale_lock_of_dead_pid_taken_over(tmp_path):
    dead = _dead_pid()
    old = _write_lock(tmp_path, pid=dead, proc_start=None, started=_hours_ago(3))
    notes: list[str] = []
    with RunLock(tmp_path, note=notes.append) as lk:
        assert lk.took_over == old
        assert read_lock(tmp_path).pid == os.getpid()
    assert len(notes) == 1
    assert f"pid {dead} on {socket.gethostname()}" in notes[0] and "gone" in notes[0] and "3h 0m ago" in notes[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock.takeover"]


def test_reused_pid_and_reboot_count_as_stale(tmp_path):
    # A live pid that started at another time than the recorded owner: the pid was reused.
    _write_lock(tmp_path / "reused", pid=os.getppid(), proc_start=-1)
    assert RunLock(tmp_path / "reused", note=lambda m: None).acquire().took_over is not None
    # A lock written before this machine last booted.
    _write_lock(tmp_path / "reboot", pid=os.getppid(), boot_id="an-earlier-boot")
    notes: list[str] = []
    assert RunLock(tmp_path / "reboot", note=notes.append).acquire().took_over is not None
    assert "rebooted" in notes[0]


def test_lock_from_another_host_never_taken_over(tmp_path):
    _write_lock(tmp_path, pid=_dead_pid(), host="gpu-node-17", started=_hours_ago(2), boot_id="x")
    with pytest.raises(RunLocked) as e:
        RunLock(tmp_path).acquire()
    msg = str(e.value)
    assert "on gpu-node-17 since" in msg and "(2h 0m ago)" in msg
    assert f"remove {tmp_path / LOCK_FILE}" in msg
    assert read_lock(tmp_path).host == "gpu-node-17"  # untouched


def test_slurm_requeue_takes_over_its_previous_attempt(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    _write_lock(tmp_path / "same-attempt", host="gpu-node-17", slurm_job_id="4242", slurm_restart_count=1)
    with pytest.raises(RunLocked):  # another task of the same attempt: alive as far as we know
        RunLock(tmp_path / "same-attempt").acquire()
    _write_lock(tmp_path / "other-job", host="gpu-node-17", slurm_job_id="999", slurm_restart_count=0)
    with pytest.raises(RunLocked):
        RunLock(tmp_path / "other-job").acquire()
    _write_lock(tmp_path / "requeued", host="gpu-node-17", slurm_job_id="4242", slurm_restart_count=0)
    notes: list[str] = []
    with RunLock(tmp_path / "requeued", note=notes.append) as lk:
        assert lk.took_over.host == "gpu-node-17"
    assert "SLURM job 4242" in notes[0]


def test_own_pid_in_lock_is_not_stale(tmp_path):
    held = RunLock(tmp_path).acquire()
    with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    held.release()


@pytest.mark.parametrize("content", ["", "garbage{", "[1, 2]", '{"pid": "x"}', '{"pid": 1}', "\xff\xfe"])
def test_garbled_lock_file_reported_with_fix(tmp_path, monkeypatch, content):
    monkeypatch.setattr(lock_mod, "UNREADABLE_GRACE_S", 0.1)
    (tmp_path / LOCK_FILE).write_text(content, encoding="latin-1")
    with pytest.raises(RunLocked) as e:  # a sweep skips this run dir like a locked one
        RunLock(tmp_path).acquire()
    msg = str(e.value)
    assert "\n" not in msg
    assert f"unreadable lock file {tmp_path / LOCK_FILE}" in msg
    assert f"remove {tmp_path / LOCK_FILE}" in msg
    assert (tmp_path / LOCK_FILE).read_text(encoding="latin-1") == content  # left for a human to judge


def test_release_leaves_someone_elses_lock(tmp_path):
    lk = RunLock(tmp_path).acquire()
    theirs = _write_lock(tmp_path, pid=_dead_pid(), host="elsewhere")  # replaced behind our back
    lk.release()
    assert read_lock(tmp_path) == theirs
    assert not lk.held
    (tmp_path / LOCK_FILE).unlink()
    lk.release()  # not held, file gone: nothing to do


def test_release_in_forked_child_is_a_no_op(tmp_path):
    lk = RunLock(tmp_path).acquire()
    pid = os.fork()
    if pid == 0:  # the child (a DataLoader worker, say) must not drop the parent's lock
        lk.release()
        os._exit(0 if (tmp_path / LOCK_FILE).exists() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lk.held and read_lock(tmp_path).token == lk.info.token
    lk.release()
    assert read_lock(tmp_path) is None


def test_unwritable_run_dir_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create run dir"):
        RunLock(tmp_path / "file" / "run").acquire()
