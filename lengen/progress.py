"""``<run dir>/progress.json``: how far training is, for anyone watching from outside the process.

:class:`ProgressFile` is a Lightning callback that rewrites a tiny JSON object
``{"step", "max_steps", "seconds", "seconds_before", "sessions"}`` after every ``every``-th optimizer
step (and once when training starts, ends or stops on an exception; rank 0 only), atomically
(``lengen.io.atomic_text``), so a reader never sees a half-written file. Tests use it to send a
signal while training is certainly under way; a sweep monitor can use it to show progress.
:func:`read_progress` reads it back (``None`` while absent).

``seconds`` is this session's training wall time (to the millisecond: a short session on a fast
machine must not round to zero); a run resumed from a checkpoint carries the
earlier sessions' total in ``seconds_before`` and counts them in ``sessions``, so a study's budget
(``meta.yaml`` ``timing``) is the time all its sessions spent, not only the last one's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L

from lengen.io import atomic_text

PROGRESS_FILE = "progress.json"


def read_progress(path: str | Path) -> dict[str, Any] | None:
    """The last progress record at ``path`` (a file or a run dir), or None if none was written yet."""
    path = Path(path)
    if path.is_dir():
        path = path / PROGRESS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def earlier_sessions(progress: dict[str, Any] | None) -> tuple[float, int]:
    """(seconds, sessions) spent on a run before the session that resumes it from `progress`."""
    if not progress:
        return 0.0, 0
    seconds = float(progress.get("seconds_before", 0.0)) + float(progress.get("seconds", 0.0))
    return seconds, int(progress.get("sessions", 1))


class ProgressFile(L.Callback):
    """Write the step, max steps and training wall time to ``path`` every ``every`` optimizer steps."""

    def __init__(self, path: str | Path, every: int = 1) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path, self.every = Path(path), int(every)
        self._written: int | None = None
        self._start, self._before, self._sessions = time.perf_counter(), 0.0, 1

    def write(self, trainer: L.Trainer) -> None:
        step = int(trainer.global_step)
        if step == self._written or not trainer.is_global_zero:
            return
        record = {"step": step, "max_steps": int(trainer.max_steps),
                  "seconds": round(time.perf_counter() - self._start, 3),
                  "seconds_before": round(self._before, 3), "sessions": self._sessions}
        atomic_text(self.path, json.dumps(record) + "\n")
        self._written = step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        if trainer.global_step > 0 and trainer.is_global_zero:  # resumed: earlier sessions count too
            before, sessions = earlier_sessions(read_progress(self.path))
            self._before, self._sessions = before, sessions + 1
        self.write(trainer)  # step 0, or the step a resumed run starts from

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self.write(trainer)  # an interrupted run records the step it stopped at
