"""One writer per run directory: ``<run dir>/.lock`` names the process that owns the run.

Take a :class:`RunLock` before the first write into a run dir and hold it until the last::

    with RunLock(run_dir):
        ...  # config, checkpoints, results

The lock file appears whole or not at all (written beside, then hard-linked into place, which
fails if the name exists -- atomic on local and network file systems) and holds JSON: pid, host,
start time, command line, and what tells a dead owner from a live one. Another process finds it
and then:

- owner on this host and gone (no such pid, a reused pid, or an earlier boot): the lock is stale;
  it is taken over (one taker at a time, under an ``flock`` of ``.lock.takeover``) and said so;
- owner on this host and alive, or on another host: :class:`RunLocked`, one line naming the pid,
  host, start time and age and the fix (wait, or remove the file if that process is gone). A
  lock from another host is never taken over by guesswork: its pid means nothing here. The one
  exception is proof: the same SLURM job, requeued (``SLURM_RESTART_COUNT`` grew), whose
  previous attempt SLURM has ended before starting this one -- on whatever node it ran.

Release removes the file only while it is still this lock's (its random token).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lengen.errors import ConfigError

LOCK_FILE = ".lock"
TAKEOVER_FILE = ".lock.takeover"
#: how long a lock file that does not parse is reread before it counts as garbled (seconds)
UNREADABLE_GRACE_S = 1.0

__all__ = ["LOCK_FILE", "LockInfo", "RunLock", "RunLocked", "read_lock"]


class RunLocked(ConfigError):
    """The run dir belongs to another live (or unknowable) process."""


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _proc_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _env_int(name: str) -> int:
    try:
        return int(os.environ.get(name) or 0)
    except ValueError:
        return 0


def _shown(text: str, limit: int = 80) -> str:
    """A string from a lock file, safe to put in a one-line message."""
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).astimezone()


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m {s % 60}s"
    if s < 172800:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


@dataclass(frozen=True)
class LockInfo:
    pid: int
    host: str
    started: str  # ISO 8601 with offset
    command: str
    token: str
    boot_id: str | None = None
    proc_start: int | None = None
    slurm_job_id: str | None = None
    slurm_restart_count: int = 0

    @classmethod
    def mine(cls, command: Sequence[str] | None = None) -> LockInfo:
        pid = os.getpid()
        return cls(
            pid=pid,
            host=socket.gethostname(),
            started=_now().isoformat(timespec="seconds"),
            command=shlex.join(sys.argv if command is None else command)[:2000],
            token=uuid.uuid4().hex,
            boot_id=_boot_id(),
            proc_start=_proc_start(pid),
            slurm_job_id=os.environ.get("SLURM_JOB_ID"),
            slurm_restart_count=_env_int("SLURM_RESTART_COUNT"),
        )

    @classmethod
    def parse(cls, text: str) -> LockInfo:
        """A lock file's content; ValueError when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        kinds: dict[str, tuple[type, ...]] = {
            "pid": (int,), "host": (str,), "started": (str,), "command": (str,), "token": (str,),
            "boot_id": (str, type(None)), "proc_start": (int, type(None)),
            "slurm_job_id": (str, type(None)), "slurm_restart_count": (int,),
        }
        required = ("pid", "host", "started", "command", "token")
        for name, kind in kinds.items():
            if name not in data:
                if name in required:
                    raise ValueError(f"no {name!r} field")
            elif not isinstance(data[name], kind) or isinstance(data[name], bool):
                raise ValueError(f"bad {name} {data[name]!r}")
        if data["pid"] <= 0:
            raise ValueError(f"bad pid {data['pid']!r}")
        return cls(**{k: v for k, v in data.items() if k in kinds})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    def age_s(self) -> float | None:
        try:
            return (_now() - dt.datetime.fromisoformat(self.started)).total_seconds()
        except (TypeError, ValueError):
            return None

    def describe(self) -> str:
        age = self.age_s()
        since = f"pid {self.pid} on {_shown(self.host)} since {_shown(self.started)}"
        return since + (f" ({_ago(age)} ago)" if age is not None else "")


def _read(path: Path) -> LockInfo | None:
    """The lock at ``path``; ``None`` if there is none; :class:`RunLocked` if it cannot be read.

    A file just created by a writer without hard links (see :meth:`RunLock._create`) may be empty
    for an instant: an unparsable file is reread for up to a second before it counts as garbled.
    """
    deadline = time.monotonic() + UNREADABLE_GRACE_S
    while True:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            problem = f"{type(e).__name__}: {e}"
        else:
            try:
                return LockInfo.parse(text)
            except (ValueError, TypeError) as e:
                problem = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise RunLocked(
                f"run dir {path.parent} has an unreadable lock file {path} ({' '.join(problem.split())[:120]}); "
                f"if no lengen process is using {path.parent}, remove {path}"
            )
        time.sleep(0.05)


def read_lock(run_dir: str | os.PathLike) -> LockInfo | None:
    """Who holds ``run_dir`` (``None``: nobody); for status displays."""
    return _read(Path(run_dir) / LOCK_FILE)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, someone else's
        return True
    return True


def stale_reason(info: LockInfo) -> str | None:
    """Why the owner of ``info`` is certainly gone, or ``None`` when it may be alive."""
    me = LockInfo.mine()
    if info.slurm_job_id and info.slurm_job_id == me.slurm_job_id and info.slurm_restart_count < me.slurm_restart_count:
        return (
            f"it was taken by attempt {info.slurm_restart_count} of SLURM job {info.slurm_job_id}, "
            f"which SLURM ended before requeueing it as this attempt"
        )
    if info.host != me.host:
        return None
    if info.boot_id and me.boot_id and info.boot_id != me.boot_id:
        return "this machine has rebooted since"
    if info.pid == me.pid:
        return None  # this very process (a lock leaked by an earlier call): not stale
    if not _pid_alive(info.pid):
        return "that process is gone"
    if info.proc_start is not None:
        now = _proc_start(info.pid)
        if now is not None and now != info.proc_start:
            return "that process is gone (its pid now belongs to another process)"
    return None


class RunLock:
    """Exclusive ownership of one run directory (context manager, or ``acquire``/``release``).

    ``note`` receives the one-line notice printed when a stale lock is taken over (default:
    stderr). ``command`` is recorded for whoever finds the lock (default: ``sys.argv``).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        command: Sequence[str] | None = None,
        note: Callable[[str], Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.command = command
        self.note = note or (lambda msg: print(f"lengen: {msg}", file=sys.stderr))
        self.info: LockInfo | None = None
        self.took_over: LockInfo | None = None
        self._owner_pid: int | None = None

    @property
    def held(self) -> bool:
        return self.info is not None and self._owner_pid == os.getpid()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({str(self.run_dir)!r}, held={self.held})"

    def acquire(self) -> RunLock:
        """Own the run dir or raise :class:`RunLocked` (another owner, or an unreadable lock file)."""
        if self.held:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create run dir {self.run_dir}: {e.strerror or e}") from None
        info = LockInfo.mine(self.command)
        for _ in range(20):
            if self._create(info):
                self.info, self._owner_pid = info, os.getpid()
                return self
            other = _read(self.path)
            if other is None:
                continue  # released between our attempt and our look: try again
            reason = stale_reason(other)
            if reason is None:
                raise RunLocked(
                    f"run dir {self.run_dir} is in use by {other.describe()}; "
                    f"wait for it or, if that process is gone, remove {self.path}"
                )
            if self._take_over(other, info):
                self.info, self._owner_pid, self.took_over = info, os.getpid(), other
                self.note(f"took over the stale lock of {self.run_dir} held by {other.describe()}: {reason}")
                return self
        raise RunLocked(f"run dir {self.run_dir} keeps changing hands; if nothing else is using it, remove {self.path}")

    def _create(self, info: LockInfo) -> bool:
        """Put ``info`` at ``self.path`` whole and only if no lock is there; False if one is."""
        tmp = self.run_dir / f"{LOCK_FILE}.{info.token}.tmp"
        try:
            tmp.write_text(info.to_json(), encoding="utf-8")
            try:
                os.link(tmp, self.path)  # fails if the name exists: atomic, also over NFS
                return True
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
            return self._create_exclusive(info)  # a file system without hard links
        except OSError as e:
            raise ConfigError(f"cannot write the lock file {self.path}: {e.strerror or e}") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _create_exclusive(self, info: LockInfo) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(info.to_json())
            f.flush()
            os.fsync(f.fileno())
        return True

    def _take_over(self, stale: LockInfo, info: LockInfo) -> bool:
        """Replace the lock ``stale`` by ``info`` unless it changed meanwhile; one taker at a time."""
        import fcntl

        fd = os.open(self.run_dir / TAKEOVER_FILE, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = _read(self.path)
            if current is None or current.token != stale.token:
                return False  # released or already taken over: start again
            self.path.unlink()  # safe: takers are serialized and the dead owner cannot release
            return self._create(info)  # False if a plain acquirer got in first: start again
        finally:
            os.close(fd)  # releases the flock

    def release(self) -> None:
        """Remove the lock file if it is still this lock's; a no-op otherwise (and in forked children)."""
        if not self.held:
            return
        assert self.info is not None
        try:
            current = _read(self.path)
        except RunLocked:
            current = None
        if current is not None and current.token == self.info.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.info = self._owner_pid = None
