"""A checkpoint write that dies halfway leaves the previous checkpoint intact and no temp file."""

from __future__ import annotations

import pytest
import torch

from lengen import checkpoint_io
from lengen.checkpoint_io import AtomicCheckpointIO


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    assert io.load_checkpoint(path)["step"] == 1

    def dies_halfway(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"\x80partial")
        raise KeyboardInterrupt  # a signal in the middle of the write

    monkeypatch.setattr(checkpoint_io.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]

    io.save_checkpoint({"step": 3}, path)
    assert io.load_checkpoint(path)["step"] == 3
