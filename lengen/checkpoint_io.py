"""Checkpoints: written atomically beside their target, read without executing code.

Writing: Lightning's default writer goes through an fsspec transaction whose temp file lives in
the system temp dir; when that is another filesystem (a node-local /tmp, run dirs on shared
storage) the final move is a copy, and a job killed during it leaves a truncated ``last.ckpt``.
:func:`lengen.io.atomic_write` uses a unique temp file in the same directory plus ``os.replace``,
so two processes saving the same path never collide and a reader never sees a torn file.

Reading: a checkpoint is a pickle, and a pickle can run code. Run directories are shared (cluster
file systems, collaborators), so every load -- resume included -- uses ``weights_only=True``,
which admits tensors and plain containers only; anything else is refused with one line.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lengen.errors import ConfigError
from lengen.io import atomic_write


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint as plain data; ConfigError (one line, naming the file) if unsafe or damaged."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ConfigError(
            f"refusing to load {path}: it holds objects other than tensors and plain data "
            f"({_refused_global(str(e))}); it may be malicious -- delete it or move it aside"
        ) from None
    except Exception as e:  # truncated, empty, not a checkpoint at all: many error types
        first = _plain(str(e)).splitlines()[0][:120] if str(e).strip() else ""
        raise ConfigError(
            f"cannot read checkpoint {path} ({type(e).__name__}: {first}); "
            f"it is damaged -- move it aside to restart this run from scratch"
        ) from None


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()


def _refused_global(message: str) -> str:
    """The line of torch's refusal that names what was refused (e.g. ``GLOBAL builtins.open``)."""
    plain = _plain(message)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", plain) or re.search(r"GLOBAL (\S+)", plain)
    if found:
        return f"unsupported global {found.group(1)}"
    lines = [line.strip() for line in plain.splitlines() if line.strip()]
    return lines[0][:160] if lines else "unsupported object"


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path, map_location=map_location or "cpu")
