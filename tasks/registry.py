"""Name -> task class registry; a family module registers its classes with ``@register``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lengen.tasks.base import Task, TaskConfigError

TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    TASKS[cls.name] = cls
    return cls


def build_task(cfg: Mapping[str, Any]) -> Task:
    """Instantiate the task named by ``cfg['name']``."""
    name = cfg.get("name")
    if name not in TASKS:
        raise TaskConfigError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](cfg)
