"""Sorting: single-digit lists (``sort``) and lists of multi-digit numbers (``sort_multi``).

``length`` = number of items. The scratchpad follows selection sort, one step per output item:
the list before the step (i), the position of its smallest item (c), that item (o), how many
items are sorted so far (v) and the list left over (r).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lengen.tasks.base import Example
from lengen.tasks.number_format import number_format, split_on
from lengen.tasks.options import check_lengths, digit_range, reject_options
from lengen.tasks.registry import register
from lengen.tasks.scratchpad import StepTask
from lengen.tasks.symbols import DIGITS

SEP = ","
Steps = list[dict[str, tuple[str, ...]]]


def selection_steps(items: Sequence[str], render) -> Steps:
    """Selection-sort steps over digit strings (ties: first occurrence, so the sort is stable)."""
    remaining = list(items)
    steps: Steps = []
    for k in range(len(items)):
        before = render(remaining)
        j = min(range(len(remaining)), key=lambda i: int(remaining[i]))
        x = remaining.pop(j)
        steps.append({"i": before, "c": tuple(str(j)), "o": tuple(x), "v": tuple(str(k + 1)), "r": render(remaining)})
    return steps


@register
class Sort(StepTask):
    """Sort a list of single digits, written without separators."""

    name = "sort"

    def __init__(self, cfg) -> None:
        if cfg.get("format"):
            reject_options({"format": cfg.get("format")}, self.name)
        super().__init__(cfg)
        check_lengths(self.cfg, 1, "items")

    def base_symbols(self) -> tuple[str, ...]:
        return DIGITS

    @staticmethod
    def _render(items: Sequence[str]) -> tuple[str, ...]:
        return tuple(items)

    def _target(self, items: Sequence[str]) -> tuple[Steps | None, list[str]]:
        steps = selection_steps(items, self._render) if self.with_steps else None
        return steps, sorted(items)

    def example(self, rng: np.random.Generator, length: int) -> Example:
        items = [DIGITS[i] for i in rng.integers(0, 10, size=length).tolist()]
        return self.make(items, *self._target(items), length)

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        return self.finish(*self._target(list(prompt)))


@register
class SortMulti(StepTask):
    """Sort numbers of ``min_digits``..``max_digits`` digits, separated by commas; number formats apply."""

    name = "sort_multi"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.fmt = number_format(self.cfg)
        self.min_digits, self.max_digits = digit_range(self.cfg, "min_digits", "max_digits", 1, 3)
        check_lengths(self.cfg, 1, "items")

    def base_symbols(self) -> tuple[str, ...]:
        return (*DIGITS, SEP, *self.fmt.symbols)

    @staticmethod
    def _render(items: Sequence[str]) -> tuple[str, ...]:
        out: list[str] = []
        for k, x in enumerate(items):
            if k:
                out.append(SEP)
            out.extend(x)
        return tuple(out)

    def _target(self, items: Sequence[str]) -> tuple[Steps | None, list[str]]:
        steps = selection_steps(items, self._render) if self.with_steps else None
        answer: list[str] = []
        for k, x in enumerate(sorted(items, key=int)):
            if k:
                answer.append(SEP)
            answer.extend(self.fmt.write_answer(x, self.fmt.pad_width))
        return steps, answer

    def example(self, rng: np.random.Generator, length: int) -> Example:
        # One vectorised draw per example (sizes, digits, replacement leading digits): ~2x faster than per item.
        sizes = rng.integers(self.min_digits, self.max_digits + 1, size=length).tolist()
        digits = rng.integers(0, 10, size=(length, self.max_digits)).tolist()
        leads = rng.integers(1, 10, size=length).tolist()
        items = []
        for n, row, lead in zip(sizes, digits, leads):
            if n > 1 and row[0] == 0:
                row[0] = lead
            items.append("".join(DIGITS[d] for d in row[:n]))
        prompt: list[str] = []
        for k, x in enumerate(items):
            if k:
                prompt.append(SEP)
            prompt.extend(self.fmt.write_operand(x, rng))
        return self.make(prompt, *self._target(items), length)

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        items = [self.fmt.read_operand(chunk) for chunk in split_on(prompt, SEP)]
        return self.finish(*self._target(items))
