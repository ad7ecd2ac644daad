"""Passkey retrieval: a key hidden at a controlled depth inside repeated filler.

The prompt is ``length`` symbols: filler text with the needle ``the pass key is K . remember it .``
inserted after ``round(depth * n_filler)`` filler symbols, then the question ``what is the pass
key ?``. The target is the key. ``depth`` (fraction of the filler before the needle: 0 = start,
1 = right before the question) is drawn from ``depths`` and reported as a grouping key, so
accuracy reads per (context length, depth) as in the Landmark / LM-Infinite / YaRN evaluations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.number_format import DIGIT_SET
from lengen.tasks.options import check_lengths, int_option, reject_options
from lengen.tasks.registry import register
from lengen.tasks.symbols import DIGITS

FILLER: tuple[str, ...] = (
    "the", "grass", "is", "green", ".", "the", "sky", "is", "blue", ".",
    "the", "sun", "is", "yellow", ".", "here", "we", "go", ".", "there", "and", "back", "again", ".",
)
NEEDLE_HEAD: tuple[str, ...] = ("the", "pass", "key", "is")
NEEDLE_TAIL: tuple[str, ...] = (".", "remember", "it", ".")
QUESTION: tuple[str, ...] = ("what", "is", "the", "pass", "key", "?")
DEFAULT_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def depths_option(cfg) -> tuple[float, ...]:
    """``task.depths``: a number or a non-empty list of numbers in [0, 1] (default 0, .25, .5, .75, 1)."""
    depths = cfg.get("depths")
    depths = DEFAULT_DEPTHS if depths is None else depths
    if isinstance(depths, (int, float)):
        depths = [depths]
    if not depths:
        raise TaskConfigError("task.depths=[] is empty; give depths in [0, 1], e.g. [0.0, 0.5, 1.0]")
    for d in depths:
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d <= 1.0:
            raise TaskConfigError(f"task.depths contains {d!r}; a depth must be a number in [0, 1]")
    return tuple(float(d) for d in depths)


@register
class Passkey(Task):
    name = "passkey"
    group_keys = ("depth",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        reject_options(self.cfg, self.name)
        self.key_digits = int_option(self.cfg, "key_digits", 5, lo=1, hi=64)
        self.depths = depths_option(self.cfg)
        self._symbols = tuple(dict.fromkeys((*DIGITS, *FILLER, *NEEDLE_HEAD, *NEEDLE_TAIL, *QUESTION)))
        check_lengths(self.cfg, self.min_length(), f"needle + question with key_digits={self.key_digits}")

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    def min_length(self) -> int:
        return len(NEEDLE_HEAD) + self.key_digits + len(NEEDLE_TAIL) + len(QUESTION)

    def example(self, rng: np.random.Generator, length: int) -> Example:
        n_filler = length - self.min_length()
        if n_filler < 0:
            raise TaskConfigError(
                f"passkey length {length} is below the smallest context {self.min_length()} "
                f"(needle + question with key_digits={self.key_digits}); use lengths >= {self.min_length()}"
            )
        depth = self.depths[int(rng.integers(0, len(self.depths)))]
        offset = int(rng.integers(0, len(FILLER)))
        key = tuple(DIGITS[d] for d in rng.integers(0, 10, size=self.key_digits).tolist())
        reps = -(-(offset + n_filler) // len(FILLER))
        filler = (FILLER * reps)[offset : offset + n_filler]
        at = round(depth * n_filler)
        prompt = (*filler[:at], *NEEDLE_HEAD, *key, *NEEDLE_TAIL, *filler[at:], *QUESTION)
        return Example(prompt=prompt, target=key, length=length, extra={"depth": depth})

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        p, h = tuple(prompt), len(NEEDLE_HEAD)
        for i in range(len(p) - h):
            if p[i + h] in DIGIT_SET and p[i : i + h] == NEEDLE_HEAD:
                j = i + h
                while j < len(p) and p[j] in DIGIT_SET:
                    j += 1
                return p[i + h : j]
        raise ValueError("no pass key in the prompt")
