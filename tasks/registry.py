"""The task registry: a family module registers its classes with ``@register`` (discovered on use)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lengen.registry import Registry
from lengen.tasks.base import Task, TaskConfigError

TASKS: Registry[type[Task]] = Registry("task", "lengen.tasks")
register = TASKS.register


def build_task(cfg: Mapping[str, Any]) -> Task:
    """Instantiate the task named by ``cfg['name']``."""
    name = cfg.get("name")
    if not isinstance(name, str) or name not in TASKS:
        raise TaskConfigError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    try:
        return TASKS[name](cfg)
    except TaskConfigError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:  # an option of a wrong type
        raise TaskConfigError(f"task={name}: an option has a value of the wrong type or shape "
                              f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
