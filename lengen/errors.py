"""How user-facing failures end a command: one line on stderr and a distinct exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from lengen.config import ConfigError
from lengen.interrupt import RunInterrupted
from lengen.tasks import TaskConfigError

EXIT_BAD_INPUT = 2


def fail(message: str, status: int = EXIT_BAD_INPUT) -> None:
    print(f"lengen: error: {message}", file=sys.stderr)
    sys.exit(status)


def guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn``; turn bad input and interrupts into a message and exit status."""
    try:
        return fn(*args, **kwargs)
    except (ConfigError, TaskConfigError) as e:
        fail(str(e))
    except RunInterrupted as e:
        print(f"lengen: {e}. Rerun the same command to resume.", file=sys.stderr)
        sys.exit(128 + int(e.signum))
