"""How user-facing failures end a command: one line on stderr and a distinct exit status.

This module imports nothing heavy (no torch, Lightning, Hydra), so every layer -- tasks, config,
the CLI dispatcher -- can raise these errors without paying for the training stack.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2


class ConfigError(ValueError):
    """Bad user input (a config value, an argument, a damaged file); printed as one line, exit 2."""


class RunInterrupted(Exception):
    """Raised after the interrupt checkpoint is safely on disk."""

    def __init__(self, signum: int, step: int, ckpt: Path) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; saved {ckpt}")
        self.signum, self.step, self.ckpt = signum, step, ckpt


def fail(message: str, status: int = EXIT_BAD_INPUT) -> NoReturn:
    print(f"lengen: error: {message}", file=sys.stderr)
    sys.exit(status)


def guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn``; turn bad input and interrupts into a message and exit status."""
    try:
        return fn(*args, **kwargs)
    except ConfigError as e:
        fail(" ".join(str(e).split()))
    except OSError as e:  # read-only or missing folders, a file where a folder should be, a full disk
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        fail(f"cannot write or read{where}: {e.strerror or e}; check that the path is a writable folder "
             f"with free space (runs go to runs_root=..., data to data.cache_dir=...)")
    except RunInterrupted as e:
        print(f"lengen: {e}. Rerun the same command to resume.", file=sys.stderr)
        sys.exit(128 + int(e.signum))
