"""Task generators, one module per family; ``build_task`` maps a config to an instance."""

from __future__ import annotations

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.registry import TASKS, build_task, register

__all__ = ["TASKS", "Example", "Task", "TaskConfigError", "build_task", "register"]

# Importing the family modules registers their tasks.
from lengen.tasks import arithmetic as _arithmetic  # noqa: F401
from lengen.tasks import copy as _copy  # noqa: F401
from lengen.tasks import modular as _modular  # noqa: F401
from lengen.tasks import passkey as _passkey  # noqa: F401
from lengen.tasks import sorting as _sorting  # noqa: F401
