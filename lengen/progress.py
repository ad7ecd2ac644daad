"""``<run dir>/progress.json``: how far training is, for anyone watching from outside the process.

:class:`ProgressFile` is a Lightning callback that rewrites a tiny JSON object
``{"step": global_step, "max_steps": max_steps}`` after every ``every``-th optimizer step (and once
when training starts, ends or stops on an exception; rank 0 only), atomically
(``lengen.io.atomic_text``), so a reader never sees a half-written file. Tests use it to send a
signal while training is certainly under way; a sweep monitor can use it to show progress.
:func:`read_progress` reads it back (``None`` while absent).
"""

from __future__ import annotations

import json
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


class ProgressFile(L.Callback):
    """Write ``{"step": ..., "max_steps": ...}`` to ``path`` every ``every`` optimizer steps."""

    def __init__(self, path: str | Path, every: int = 1) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path, self.every = Path(path), int(every)
        self._written: int | None = None

    def write(self, trainer: L.Trainer) -> None:
        step = int(trainer.global_step)
        if step == self._written or not trainer.is_global_zero:
            return
        atomic_text(self.path, json.dumps({"step": step, "max_steps": int(trainer.max_steps)}) + "\n")
        self._written = step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)  # step 0, or the step a resumed run starts from

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self.write(trainer)  # an interrupted run records the step it stopped at
