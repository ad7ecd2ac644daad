"""Running-state tasks over single digits: summation mod 10, parity, polynomial evaluation mod 10.

Each answer is one digit that depends on every input symbol, so a model must carry a state along
the whole input; the scratchpad writes that state out one step per item. ``length`` = number of
items (digits, bits or polynomial terms).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lengen.tasks.base import Example
from lengen.tasks.number_format import split_on
from lengen.tasks.options import check_lengths, reject_options
from lengen.tasks.registry import register
from lengen.tasks.scratchpad import StepTask
from lengen.tasks.symbols import DIGITS

Steps = list[dict[str, tuple[str, ...]]]


class _RunningTask(StepTask):
    """Prompt = ``length`` items from ``alphabet``; state ``s`` updated item by item (no ``v`` part)."""

    parts = ("i", "c", "o", "r")
    alphabet: tuple[str, ...] = DIGITS
    modulus = 10

    def __init__(self, cfg) -> None:
        if cfg.get("format"):
            reject_options({"format": cfg.get("format")}, self.name)
        super().__init__(cfg)
        check_lengths(self.cfg, 1, "items")

    def base_symbols(self) -> tuple[str, ...]:
        return (*DIGITS, "+")

    def _target(self, items: Sequence[str]) -> tuple[Steps | None, tuple[str, ...]]:
        s = 0
        steps: Steps | None = [] if self.with_steps else None
        for k, x in enumerate(items):
            new = (s + int(x)) % self.modulus
            if steps is not None:
                steps.append({"i": (x,), "c": (str(s), "+", x), "o": (str(new),), "r": tuple(items[k + 1 :])})
            s = new
        return steps, (str(s),)

    def example(self, rng: np.random.Generator, length: int) -> Example:
        idx = rng.integers(0, len(self.alphabet), size=length)
        items = tuple(self.alphabet[i] for i in idx.tolist())
        steps, answer = self._target(items)
        return self.make(items, steps, answer, length)

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        return self.finish(*self._target(tuple(prompt)))


@register
class Summation(_RunningTask):
    """Sum of the digits mod 10."""

    name = "summation"


@register
class Parity(_RunningTask):
    """Parity of the number of ones in a bit string (the running sum mod 2)."""

    name = "parity"
    alphabet = ("0", "1")
    modulus = 2

    def base_symbols(self) -> tuple[str, ...]:
        return ("0", "1", "+")


@register
class Polynomial(StepTask):
    """``c0 x ^ 0 + c1 x ^ 1 + ... @ x`` evaluated mod 10; ``length`` = number of terms.

    Steps, one per term: the term (i), coefficient times ``x^k mod 10`` (c), the term's value (o),
    the running sum (v) and the terms still to go (r).
    """

    name = "polynomial"

    def __init__(self, cfg) -> None:
        if cfg.get("format"):
            reject_options({"format": cfg.get("format")}, self.name)
        super().__init__(cfg)
        check_lengths(self.cfg, 1, "terms")

    def base_symbols(self) -> tuple[str, ...]:
        return (*DIGITS, "x", "^", "+", "*", "@")

    @staticmethod
    def term(c: str, k: int) -> tuple[str, ...]:
        return (c, "x", "^", *str(k))

    def _terms(self, coeffs: Sequence[str], start: int = 0) -> list[str]:
        out: list[str] = []
        for k in range(start, len(coeffs)):
            if k > start:
                out.append("+")
            out.extend(self.term(coeffs[k], k))
        return out

    def _target(self, coeffs: Sequence[str], x: str) -> tuple[Steps | None, tuple[str, ...]]:
        xv, s, power = int(x), 0, 1
        steps: Steps | None = [] if self.with_steps else None
        for k, c in enumerate(coeffs):
            t = int(c) * power % 10
            s = (s + t) % 10
            if steps is not None:
                steps.append({
                    "i": self.term(c, k),
                    "c": (c, "*", str(power)),
                    "o": (str(t),),
                    "v": (str(s),),
                    "r": tuple(self._terms(coeffs, k + 1)),
                })
            power = power * xv % 10
        return steps, (str(s),)

    def example(self, rng: np.random.Generator, length: int) -> Example:
        draws = rng.integers(0, 10, size=length + 1).tolist()
        coeffs, x = [str(d) for d in draws[:length]], str(draws[length])
        prompt = [*self._terms(coeffs), "@", x]
        return self.make(prompt, *self._target(coeffs, x), length)

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        body, x = split_on(prompt, "@")
        coeffs = [term[0] for term in split_on(body, "+")]
        return self.finish(*self._target(coeffs, x[0]))
