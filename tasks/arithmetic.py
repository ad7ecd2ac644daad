"""Multi-digit arithmetic: addition and multiplication, with scratchpads and number formats.

Numbers are written one digit per symbol. ``length`` is the digits of the *longer* operand
(addition) or of the first operand (multiplication); the other operand's digits are drawn
independently and both are recorded as ``len_a``/``len_b`` so results can be read per operand
length. For addition the long operand is ``a`` or ``b`` at random, so every evaluation length
beyond ``train_max`` has at least one operand longer than any seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lengen.tasks.base import Example, TaskConfigError
from lengen.tasks.number_format import DIGIT_SET, digits_of, number_format, split_on
from lengen.tasks.options import check_lengths, digit_range, int_option
from lengen.tasks.registry import register
from lengen.tasks.scratchpad import StepTask
from lengen.tasks.symbols import DIGITS

Steps = list[dict[str, tuple[str, ...]]]


def addition_steps(a: str, b: str) -> Steps:
    """One step per digit position, units first: digits in, digit sum with carry, digit out, carry."""
    la, lb = len(a), len(b)
    ra, rb = a[::-1], b[::-1]
    carry = 0
    steps: Steps = []
    for k in range(max(la, lb)):
        x = ra[k] if k < la else "0"
        y = rb[k] if k < lb else "0"
        s = int(x) + int(y) + carry
        rest_a, rest_b = a[: max(la - k - 1, 0)], b[: max(lb - k - 1, 0)]
        steps.append({
            "i": (x, y),
            "c": (x, "+", y, "+", str(carry)),
            "o": (str(s % 10),),
            "v": (str(s // 10),),
            "r": (*rest_a, "+", *rest_b) if rest_a or rest_b else (),
        })
        carry = s // 10
    return steps


def multiplication_steps(a: str, b: str) -> Steps:
    """One step per digit of ``b``, units first: the partial product (shifted) and the running sum."""
    av, acc = int(a), 0
    steps: Steps = []
    lb = len(b)
    for j in range(lb):
        d = b[lb - 1 - j]
        partial = av * int(d) * 10**j
        acc += partial
        steps.append({
            "i": (d,),
            "c": (*a, "*", d, *("0" * j)),
            "o": tuple(str(partial)),
            "v": tuple(str(acc)),
            "r": tuple(b[: lb - 1 - j]),
        })
    return steps


class _BinaryOp(StepTask):
    op = "+"
    group_keys = ("len_a", "len_b")

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.fmt = number_format(self.cfg)
        check_lengths(self.cfg, 1, "digits of an operand")

    def base_symbols(self) -> tuple[str, ...]:
        return (*DIGITS, self.op, *self.fmt.symbols)

    def answer_width(self) -> int:
        return 0

    def result(self, a: str, b: str) -> str:
        raise NotImplementedError

    def steps(self, a: str, b: str) -> Steps:
        raise NotImplementedError

    def _target(self, a: str, b: str) -> tuple[Sequence[dict] | None, list[str]]:
        answer = self.fmt.write_answer(self.result(a, b), self.answer_width())
        return (self.steps(a, b) if self.with_steps else None), answer

    def _example(self, rng: np.random.Generator, a: str, b: str, length: int) -> Example:
        prompt = [*self.fmt.write_operand(a, rng), self.op, *self.fmt.write_operand(b, rng)]
        steps, answer = self._target(a, b)
        return self.make(prompt, steps, answer, length, {"len_a": len(a), "len_b": len(b)})

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        parts = split_on(prompt, self.op)
        if len(parts) != 2 or not any(s in DIGIT_SET for s in parts[0]) or not any(s in DIGIT_SET for s in parts[1]):
            raise ValueError(f"not a {self.name} prompt: {' '.join(prompt)}")
        a, b = self.fmt.read_operand(parts[0]), self.fmt.read_operand(parts[1])
        return self.finish(*self._target(a, b))


@register
class Addition(_BinaryOp):
    """``a + b``; ``length`` = digits of the longer operand, the other drawn in [min_digits, length]."""

    name = "addition"
    op = "+"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.min_digits = int_option(self.cfg, "min_digits", 1, lo=1)
        mode = self.cfg.get("operand_lengths", "independent")
        if mode not in ("independent", "equal"):
            raise TaskConfigError(f"task.operand_lengths={mode!r}; allowed: independent, equal")
        self.equal = mode == "equal"

    def answer_width(self) -> int:
        return self.fmt.pad_width + 1 if self.fmt.pad_width else 0

    def result(self, a: str, b: str) -> str:
        return str(int(a) + int(b))

    def steps(self, a: str, b: str) -> Steps:
        return addition_steps(a, b)

    def example(self, rng: np.random.Generator, length: int) -> Example:
        if self.equal or length <= self.min_digits:
            other = length
        else:
            other = int(rng.integers(self.min_digits, length + 1))
        long_first = bool(rng.integers(0, 2))
        la, lb = (length, other) if long_first else (other, length)
        return self._example(rng, digits_of(rng, la), digits_of(rng, lb), length)


@register
class Multiplication(_BinaryOp):
    """``a * b``; ``length`` = digits of ``a``, digits of ``b`` drawn in [b_min_digits, b_max_digits]."""

    name = "multiplication"
    op = "*"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.b_min, self.b_max = digit_range(self.cfg, "b_min_digits", "b_max_digits", 1, 3)

    def answer_width(self) -> int:
        return 2 * self.fmt.pad_width

    def result(self, a: str, b: str) -> str:
        return str(int(a) * int(b))

    def steps(self, a: str, b: str) -> Steps:
        return multiplication_steps(a, b)

    def example(self, rng: np.random.Generator, length: int) -> Example:
        lb = int(rng.integers(self.b_min, self.b_max + 1))
        return self._example(rng, digits_of(rng, length), digits_of(rng, lb), length)
