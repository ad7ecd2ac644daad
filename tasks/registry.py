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
    if name not in TASKS:
        raise TaskConfigError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name](cfg)
