"""Checkpoints written beside their target and renamed into place.

Lightning's default writer goes through an fsspec transaction whose temp file lives in the system
temp dir; when that is another filesystem (a node-local /tmp, run dirs on shared storage) the final
move is a copy, and a job killed during it leaves a truncated ``last.ckpt`` that the next attempt
cannot resume from. A temp file in the same directory plus ``os.replace`` is atomic on POSIX.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
