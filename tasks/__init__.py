"""Task generators, one module per family; ``build_task`` maps a config to an instance.

A family module registers its classes with ``@register``; the registry imports every module of
this package on first use, so a new task is one module here plus one ``conf/task/<name>.yaml``.
"""

from __future__ import annotations

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.registry import TASKS, build_task, register

__all__ = ["TASKS", "Example", "Task", "TaskConfigError", "build_task", "register"]
