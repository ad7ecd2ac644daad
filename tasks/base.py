"""The task interface every generator implements.

A task knows its symbols and makes one example of a given *length* (its natural size: symbols,
digits, list items, context tokens). Everything else -- splits, caching, tokenising, batching --
lives in ``lengen.data`` and is shared by all tasks, so adding a task is one module plus one
``conf/task/<name>.yaml`` (the registry imports every module of ``lengen.tasks`` on first use).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lengen.errors import ConfigError


class TaskConfigError(ConfigError):
    """A task config that cannot produce data (empty range, unknown part, ...)."""


@dataclass(frozen=True)
class Example:
    """One instance: prompt and target as symbol sequences.

    ``answer_len`` is how many trailing target symbols form the final answer (the rest is a
    scratchpad), so evaluation can score the final answer and the whole target separately.
    ``extra`` holds additional integer/float grouping keys reported per row (``depth``,
    ``len_a``/``len_b`` of two operands, ...).
    """

    prompt: tuple[str, ...]
    target: tuple[str, ...]
    length: int
    answer_len: int | None = None
    extra: Mapping[str, float | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", tuple(self.prompt))
        object.__setattr__(self, "target", tuple(self.target))
        if self.answer_len is None:
            object.__setattr__(self, "answer_len", len(self.target))

    @property
    def answer(self) -> tuple[str, ...]:
        return self.target[len(self.target) - self.answer_len :]


class Task(ABC):
    """Base class: subclasses set ``name`` and implement ``symbols``, ``example`` and ``solve``.

    ``cfg`` is the task's config mapping (the ``task`` group of the Hydra config, as a plain
    dict). Subclasses validate it in ``__init__`` and raise :class:`TaskConfigError` with one
    line naming the bad value and what is allowed.
    """

    name: str = ""
    #: names of ``Example.extra`` keys that results are grouped by (besides the length).
    group_keys: tuple[str, ...] = ()

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = dict(cfg)

    @property
    @abstractmethod
    def symbols(self) -> Sequence[str]:
        """Every symbol a prompt or target may contain, in a fixed order (the vocabulary)."""

    @abstractmethod
    def example(self, rng: np.random.Generator, length: int) -> Example:
        """Draw one example of the given length using only ``rng`` for randomness."""

    @abstractmethod
    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        """Oracle: the correct target for a prompt (tests check ``example`` against it)."""

    def min_length(self) -> int:
        """Smallest length this task can make (1 unless a subclass says otherwise)."""
        return 1

    def answer_from(self, generated: Sequence[str]) -> tuple[str, ...]:
        """The final answer inside a *generated* target (scratchpad tasks: after the answer marker).

        Evaluation compares it with ``Example.answer`` to score the answer separately from the steps.
        """
        return tuple(generated)

    def score_steps(self, predicted: Sequence[str], gold: Sequence[str]) -> dict:
        """Per-step correctness of a predicted target against the gold one ({} for tasks without steps).

        Scratchpad tasks return ``steps_total``, ``steps_correct`` and ``first_wrong_step`` (-1 when all
        steps are right), so a wrong answer can be traced to the step where it went wrong.
        """
        return {}
