"""The DDP stop agreement (``lengen.trainer.AgreedInterrupt``) under the one race a real run hits.

A signal handler in Python runs when the blocking C call it interrupted returns. Under DDP that call
is usually the per-step all-reduce of the stop flag, so the signal lands *during* the agreement: this
rank contributed 0, the reduced value is 0, and the handler sets the flag right after. The flag must
survive that step and be agreed on at the next one (CI once saw a SIGTERM lost this way: the run
trained to ``max_steps`` and exited 0). Here ``torch.distributed`` is replaced by a stand-in that
fires the handler inside ``all_reduce``, so the race happens every time, not one run in many.
"""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest
import torch

from lengen.errors import RunInterrupted
from lengen.trainer import AgreedInterrupt

MODULE = SimpleNamespace(device=torch.device("cpu"))  # what the agreement reads of the LightningModule


class FakeTrainer:
    world_size, global_step = 2, 7

    def __init__(self) -> None:
        self.saved: list[str] = []

    def save_checkpoint(self, path, weights_only=False) -> None:
        self.saved.append(str(path))


@pytest.fixture
def distributed(monkeypatch):
    """A two-rank all-reduce where the other rank never signals; ``during`` runs inside each call."""
    calls = SimpleNamespace(during=None, n=0)

    def all_reduce(tensor, op=None):
        calls.n += 1
        if calls.during is not None:
            calls.during()
            calls.during = None

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    return calls


def test_a_signal_landing_during_the_all_reduce_stops_at_the_next_step(tmp_path, distributed):
    cb, trainer, module = AgreedInterrupt(tmp_path / "last.ckpt"), FakeTrainer(), MODULE
    distributed.during = lambda: cb._handler(signal.SIGTERM, None)

    cb.on_train_batch_end(trainer, module, None, None, 0)  # agreed 0: both ranks go on, nobody saves alone
    assert trainer.saved == [] and cb.signum == signal.SIGTERM

    with pytest.raises(RunInterrupted, match=r"interrupted by SIGTERM at step 7"):
        cb.on_train_batch_end(trainer, module, None, None, 1)
    assert trainer.saved == [str(tmp_path / "last.ckpt")] and distributed.n == 2


def test_no_signal_no_stop(tmp_path, distributed):
    cb, trainer = AgreedInterrupt(tmp_path / "last.ckpt"), FakeTrainer()
    for i in range(3):
        cb.on_train_batch_end(trainer, MODULE, None, None, i)
    assert trainer.saved == [] and distributed.n == 3
