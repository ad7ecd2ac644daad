"""Multi-digit arithmetic: addition and multiplication, with scratchpads and number formats.

Numbers are written one digit per symbol. ``length`` is the digits of the *longer* operand
(addition) or of the first operand (multiplication); the other operand's digits are drawn
independently and both are recorded as ``len_a``/``len_b`` so results can be read per operand
length. For addition the long operand is ``a`` or ``b`` at random, so every evaluation length
beyond ``train_max`` has at least one operand longer than any seen in training.

``task.positions=coupled`` (addition) gives every token a position id of its own (Cho et al. 2024,
position coupling): digits of equal significance share one id across both operands and the
answer, which needs zero-padded operands and a reversed answer (``task.format``). Ids are written
with the plain start (as evaluation uses them); training moves each example to a random start
``s ~ U[1, positions_max - digits)``, drawn per step by the training loop.
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


POSITIONS = ("default", "coupled")


class _BinaryOp(StepTask):
    op = "+"
    group_keys = ("len_a", "len_b")
    #: whether ``task.positions=coupled`` is defined for this operation
    couples = False

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.fmt = number_format(self.cfg, two_operands=True)
        check_lengths(self.cfg, 1, "digits of an operand")
        self.coupled = self._coupling_option()
        if self.coupled:
            self.positions_max = self._positions_max()

    def _coupling_option(self) -> bool:
        mode = self.cfg.get("positions", "default")
        if mode not in POSITIONS:
            raise TaskConfigError(f"task.positions={mode!r}; allowed: {', '.join(POSITIONS)}")
        if mode == "default":
            return False
        if not self.couples:
            raise TaskConfigError(f"task.positions=coupled is defined for addition; task {self.name} allows: default")
        f = self.fmt
        need = [("task.format.reverse_answer=true", f.reverse_answer),
                ("zero-padded operands (task.format.pad_operands=true or pad_width)", f.pad_operands or f.pad_width),
                ("task.format.index_hints=false", not f.index_hints),
                ("task.format.random_spaces=0", not f.random_spaces),
                ("task.scratchpad=none", not self.with_steps)]
        missing = [what for what, ok in need if not ok]
        if missing:
            raise TaskConfigError(f"task.positions=coupled needs {', '.join(missing)}")
        return True

    def _positions_max(self) -> int:
        """Largest training id (a random start keeps every id <= it); default: the longest length + 2."""
        lengths = [int(self.cfg[k]) for k in ("train_max", "eval_max") if self.cfg.get(k) is not None]
        lengths += [int(x) for k in ("train_lengths", "eval_lengths") for x in (self.cfg.get(k) or ())]
        widest = max([*lengths, self.fmt.pad_width, 1])
        train = [int(x) for x in (self.cfg.get("train_lengths") or ())] or [int(self.cfg.get("train_max") or 1)]
        least = max(*train, self.fmt.pad_width) + 2
        return int_option(self.cfg, "positions_max", widest + 2, lo=least)

    def position_ids(self, prompt: Sequence[str], target: Sequence[str]) -> tuple[list[int], int] | None:
        """Coupled ids of ``<bos> prompt <sep> target <eos>`` (None unless ``task.positions=coupled``) and
        how many starts training may draw. Significance ``k`` gets id ``end - 1 - k`` with ``end = W + 2``
        (``W`` digits per operand); ``<bos>`` is 0, the operator, ``<sep>`` and ``<eos>`` get ``end``."""
        if not self.coupled:
            return None
        a, b = split_on(prompt, self.op)
        width = max(len(a), len(b))
        end = width + 2

        def operand(symbols: Sequence[str]) -> list[int]:
            n = len(symbols)
            return [end - 1 - (i if self.fmt.reverse_operands else n - 1 - i) for i in range(n)]

        ids = [0, *operand(a), end, *operand(b), end, *(end - 1 - i for i in range(len(target))), end]
        return ids, max(self.positions_max - width - 1, 1)

    def base_symbols(self) -> tuple[str, ...]:
        return (*DIGITS, self.op, *self.fmt.symbols)

    def operand_width(self, a: str, b: str) -> int:
        """Digits each operand is zero-padded to under ``pad_operands`` (0 = no per-example padding)."""
        return max(len(a), len(b)) if self.fmt.pad_operands else 0

    def answer_width(self, a: str, b: str) -> int:
        return 0

    def result(self, a: str, b: str) -> str:
        raise NotImplementedError

    def steps(self, a: str, b: str) -> Steps:
        raise NotImplementedError

    def _target(self, a: str, b: str) -> tuple[Sequence[dict] | None, list[str]]:
        answer = self.fmt.write_answer(self.result(a, b), self.answer_width(a, b))
        return (self.steps(a, b) if self.with_steps else None), answer

    def _example(self, rng: np.random.Generator, a: str, b: str, length: int) -> Example:
        width = self.operand_width(a, b)
        prompt = [*self.fmt.write_operand(a, rng, width), self.op, *self.fmt.write_operand(b, rng, width)]
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
    couples = True

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.min_digits = int_option(self.cfg, "min_digits", 1, lo=1)
        mode = self.cfg.get("operand_lengths", "independent")
        if mode not in ("independent", "equal"):
            raise TaskConfigError(f"task.operand_lengths={mode!r}; allowed: independent, equal")
        self.equal = mode == "equal"

    def answer_width(self, a: str, b: str) -> int:
        width = self.operand_width(a, b) or self.fmt.pad_width
        return width + 1 if width else 0

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

    def answer_width(self, a: str, b: str) -> int:
        return len(a) + len(b) if self.fmt.pad_operands else 2 * self.fmt.pad_width

    def result(self, a: str, b: str) -> str:
        return str(int(a) * int(b))

    def steps(self, a: str, b: str) -> Steps:
        return multiplication_steps(a, b)

    def example(self, rng: np.random.Generator, length: int) -> Example:
        lb = int(rng.integers(self.b_min, self.b_max + 1))
        return self._example(rng, digits_of(rng, length), digits_of(rng, lb), length)
