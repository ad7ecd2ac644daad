"""PCFG SET (Hupkes et al. 2020, "Compositionality decomposed"): compositions of string functions.

Ten functions -- unary ``copy reverse shift echo swap_first_last repeat`` and binary ``append
prepend remove_first remove_second`` -- applied to strings of 2-5 letters from an alphabet of 520
(``A1`` .. ``Z20``), written in prefix notation without brackets, arguments of a binary function
separated by ``,`` (the corpus format)::

    prompt  append swap_first_last D5 L2 C7 , repeat F13 G4
    target  C7 L2 D5 F13 G4 F13 G4

``length`` = the number of functions, the quantity of the productivity split (train on at most 8
functions, test on more; the published test set has 9-35). A composition is drawn from the
generator's PCFG (github.com/MathijsMul/pcfg-set, ``generate.py``: a function is unary with
probability ``p_unary``, a function's argument is again a function with probability ``p_function``,
string lengths uniform in 2-5, no repeated string argument within an example) *conditioned* on
exactly ``length`` function calls, sampled exactly by dynamic programming over tree sizes. The
corpus capped the written input at 300 characters; here ``max_target`` (default 1000) redraws the
rare composition whose output would be longer (a nest of ``repeat`` doubles it each time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.options import check_lengths, int_option, reject_options
from lengen.tasks.registry import register

Strings = list[str]
UNARY: dict[str, Callable[[Strings], Strings]] = {
    "copy": lambda s: s,
    "reverse": lambda s: s[::-1],
    "shift": lambda s: s[1:] + s[:1],
    "echo": lambda s: s + s[-1:],
    "swap_first_last": lambda s: [s[-1], *s[1:-1], s[0]],
    "repeat": lambda s: s + s,
}
BINARY: dict[str, Callable[[Strings, Strings], Strings]] = {
    "append": lambda a, b: a + b,
    "prepend": lambda a, b: b + a,
    "remove_first": lambda a, b: b,
    "remove_second": lambda a, b: a,
}
UNARY_NAMES, BINARY_NAMES = tuple(UNARY), tuple(BINARY)
LETTERS: tuple[str, ...] = tuple(f"{c}{i}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for i in range(1, 21))
COMMA = ","
STRING_LENGTHS = (2, 3, 4, 5)


def _probability(cfg, key: str, default: float) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise TaskConfigError(f"task.{key}={value!r} must be a probability strictly between 0 and 1")
    return float(value)


@cache
def _tables(p_unary: float, p_function: float, n_max: int) -> tuple[list[float], list[float]]:
    """``F[n]``: weight of a function tree with n calls; ``C[n]``: of an argument slot holding n calls."""
    f = [0.0] * (n_max + 1)
    c = [0.0] * (n_max + 1)
    c[0] = 1.0 - p_function
    for n in range(1, n_max + 1):
        binary = sum(c[k] * c[n - 1 - k] for k in range(n))
        f[n] = p_unary * c[n - 1] + (1.0 - p_unary) * binary
        c[n] = p_function * f[n]
    return f, c


@register
class Pcfg(Task):
    name = "pcfg"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        reject_options(self.cfg, self.name)
        self.p_unary = _probability(self.cfg, "p_unary", 0.75)
        self.p_function = _probability(self.cfg, "p_function", 0.25)
        self.max_target = int_option(self.cfg, "max_target", 1000, lo=10)
        check_lengths(self.cfg, 1, "function calls")

    @property
    def symbols(self) -> Sequence[str]:
        return (*UNARY, *BINARY, COMMA, *LETTERS)

    # -- drawing -----------------------------------------------------------------------------------------
    @staticmethod
    def _pick(rng: np.random.Generator, weights: Sequence[float]) -> int:
        """Index ``i`` with probability ``weights[i] / sum(weights)``."""
        u = float(rng.random()) * sum(weights)
        for i, w in enumerate(weights):
            u -= w
            if u < 0:
                return i
        return max(i for i, w in enumerate(weights) if w > 0)

    def _function(self, rng: np.random.Generator, n: int, used: set[tuple[str, ...]]) -> list:
        _, c = _tables(self.p_unary, self.p_function, max(n, 1))
        splits = [c[k] * c[n - 1 - k] for k in range(n)]  # binary: k calls in the first argument
        if self._pick(rng, [self.p_unary * c[n - 1], (1.0 - self.p_unary) * sum(splits)]) == 0:
            name = UNARY_NAMES[int(rng.integers(0, len(UNARY_NAMES)))]
            return [name, self._slot(rng, n - 1, used)]
        k = self._pick(rng, splits)
        name = BINARY_NAMES[int(rng.integers(0, len(BINARY_NAMES)))]
        return [name, self._slot(rng, k, used), self._slot(rng, n - 1 - k, used)]

    def _slot(self, rng: np.random.Generator, n: int, used: set[tuple[str, ...]]) -> list | tuple[str, ...]:
        if n:
            return self._function(rng, n, used)
        while True:  # a fresh string argument (the generator never repeats one)
            size = STRING_LENGTHS[int(rng.integers(0, len(STRING_LENGTHS)))]
            s = tuple(LETTERS[i] for i in rng.integers(0, len(LETTERS), size=size).tolist())
            if s not in used:
                used.add(s)
                return s

    @staticmethod
    def _write(tree) -> list[str]:
        if isinstance(tree, tuple):
            return list(tree)
        if len(tree) == 2:
            return [tree[0], *Pcfg._write(tree[1])]
        return [tree[0], *Pcfg._write(tree[1]), COMMA, *Pcfg._write(tree[2])]

    def example(self, rng: np.random.Generator, length: int) -> Example:
        if length < 1:
            raise TaskConfigError(f"pcfg length {length} is below 1 function call")
        for _ in range(1000):
            prompt = tuple(self._write(self._function(rng, length, set())))
            target = self.solve(prompt)
            if len(target) <= self.max_target:
                return Example(prompt=prompt, target=target, length=length)
        raise TaskConfigError(f"pcfg: no composition of {length} functions with an output of at most "
                              f"task.max_target={self.max_target} symbols in 1000 draws; raise task.max_target")

    # -- interpreting ------------------------------------------------------------------------------------
    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        toks = list(prompt)
        # Right to left with a stack: a string argument is pushed; a function pops its argument(s).
        # A maximal run of letters is one string; commas only separate a binary function's arguments.
        stack: list[Strings] = []
        i = len(toks)
        while i > 0:
            tok = toks[i - 1]
            if tok in UNARY:
                stack.append(UNARY[tok](stack.pop()))
                i -= 1
            elif tok in BINARY:
                first = stack.pop()
                stack.append(BINARY[tok](first, stack.pop()))
                i -= 1
            elif tok == COMMA:
                i -= 1
            else:
                j = i
                while j > 0 and toks[j - 1] not in UNARY and toks[j - 1] not in BINARY and toks[j - 1] != COMMA:
                    j -= 1
                stack.append(toks[j:i])
                i = j
        if len(stack) != 1:
            raise ValueError(f"not a PCFG SET expression: {' '.join(prompt)}")
        return tuple(stack[0])
