"""Stop cleanly on SIGINT/SIGTERM: finish the current optimizer step, save ``last.ckpt``, exit.

A signal only sets a flag; the checkpoint is written between steps, so it is never a half-updated
model, and rerunning the same command resumes from it exactly.
"""

from __future__ import annotations

import signal
from pathlib import Path

import lightning as L

from lengen.errors import RunInterrupted


class GracefulInterrupt(L.Callback):
    def __init__(self, last_ckpt: Path) -> None:
        self.last_ckpt = Path(last_ckpt)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        self.signum = signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handler)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def stop_signal(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int | None:
        """The signal to stop on after this step, or None to go on (one process: the one it received)."""
        return self.signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        signum = self.stop_signal(trainer, pl_module)
        if signum is None:
            return
        trainer.save_checkpoint(self.last_ckpt, weights_only=False)  # atomic: lengen.checkpoint_io.AtomicCheckpointIO
        self._restore()
        raise RunInterrupted(signum, trainer.global_step, self.last_ckpt)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()
