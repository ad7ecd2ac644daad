"""RULER-style retrieval (Hsieh et al. 2024) on synthetic tokens: needles in a filler haystack.

Three of RULER's synthetic tasks, with its noise haystack (the repeated "the grass is green . the sky
is blue . ..." text that ``passkey`` uses) and single-symbol keys and variable names:

- ``niah_multikey`` (RULER MK-NIAH): ``keys`` needles ``the magic number for K is D D D D D D D .``
  with distinct keys; the question names one key and the target is its number;
- ``niah_multivalue`` (RULER MV-NIAH): ``values`` needles with the *same* key and different numbers;
  the target is every number, in the order they appear, separated by ``,``;
- ``variable_tracking`` (RULER VT): a chain ``var X1 = D D D D D .``, ``var X2 = var X1 .``, ... of
  ``hops`` assignments (plus ``chains - 1`` distractor chains with other values); the question names
  the value and the target is every variable of its chain, in chain order.

``length`` = prompt tokens (filler + needles + question), as for ``passkey``. Needles are inserted
between filler tokens. ``depth`` (a grouping key of the results, drawn from ``depths``) is the
fraction of the filler before the *first* needle the question is about -- ``round(depth * n_filler)``
filler tokens precede it; for ``niah_multivalue`` and ``variable_tracking`` the rest of the asked
needles follow at uniformly random places after it (so the answer spans depth..1), and distractor
needles go anywhere. Numbers have ``value_digits`` digits without a leading zero (RULER: 7 for
NIAH, 5 for VT).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.options import check_lengths, int_option, reject_options
from lengen.tasks.passkey import FILLER, depths_option
from lengen.tasks.registry import register
from lengen.tasks.symbols import DIGITS

NEEDLE_HEAD = ("the", "magic", "number", "for")  # ... KEY "is" DIGITS "."
ASK_ONE = ("what", "is", "the", "magic", "number", "for")  # ... KEY "?"
ASK_ALL = ("what", "are", "all", "the", "magic", "numbers", "for")  # ... KEY "?"
ASK_VARS = ("find", "all", "variables", "assigned", "the", "value")  # ... DIGITS "?"
IS, END, QMARK, COMMA, VAR, EQ = "is", ".", "?", ",", "var", "="


class _Haystack(Task):
    group_keys = ("depth",)
    default_digits = 7

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        reject_options(self.cfg, self.name)
        self.value_digits = int_option(self.cfg, "value_digits", self.default_digits, lo=1, hi=32)
        self.depths = depths_option(self.cfg)
        self.setup()
        check_lengths(self.cfg, self.min_length(), f"needles and question of {self.name}")

    def setup(self) -> None:
        """Read the task's own options (called before the length checks)."""

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    def number(self, rng: np.random.Generator) -> tuple[str, ...]:
        first = int(rng.integers(1, 10))
        return (DIGITS[first], *(DIGITS[d] for d in rng.integers(0, 10, size=self.value_digits - 1).tolist()))

    def distinct_numbers(self, rng: np.random.Generator, n: int) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        while len(out) < n:
            v = self.number(rng)
            if v not in out or 9 * 10 ** (self.value_digits - 1) < n:
                out.append(v)
        return out

    @staticmethod
    def pick(rng: np.random.Generator, pool: Sequence[str], n: int) -> list[str]:
        if n > len(pool):
            raise TaskConfigError(f"{n} distinct names needed but the pool has {len(pool)}")
        return [pool[i] for i in rng.permutation(len(pool))[:n].tolist()]

    def filler(self, rng: np.random.Generator, n: int) -> tuple[str, ...]:
        offset = int(rng.integers(0, len(FILLER)))
        reps = -(-(offset + n) // len(FILLER))
        return (FILLER * reps)[offset : offset + n]

    def haystack(self, rng: np.random.Generator, length: int, asked: list[tuple[str, ...]],
                 others: list[list[tuple[str, ...]]], question: tuple[str, ...]) -> tuple[tuple[str, ...], float]:
        """Filler with the asked needles (the first at the drawn depth, the rest after it, in order) and
        the other groups of needles (each group in order, anywhere), then the question."""
        need = sum(map(len, asked)) + sum(len(n) for g in others for n in g) + len(question)
        n_filler = length - need
        if n_filler < 0:
            raise TaskConfigError(f"{self.name} length {length} is below the smallest context {need} "
                                  f"(needles + question); use lengths >= {self.min_length()}")
        depth = self.depths[int(rng.integers(0, len(self.depths)))]
        at = round(depth * n_filler)
        gaps = [at, *sorted(rng.integers(at, n_filler + 1, size=len(asked) - 1).tolist())]
        priority = rng.permutation(len(others) + 1).tolist()
        inserts = [(g, priority[0], j, needle) for j, (g, needle) in enumerate(zip(gaps, asked))]
        for k, group in enumerate(others, start=1):
            group_gaps = sorted(rng.integers(0, n_filler + 1, size=len(group)).tolist())
            inserts += [(g, priority[k], j, needle) for j, (g, needle) in enumerate(zip(group_gaps, group))]
        inserts.sort(key=lambda t: t[:3])
        filler = self.filler(rng, n_filler)
        out: list[str] = []
        done = 0
        for g, _, _, needle in inserts:
            out += [*filler[done:g], *needle]
            done = g
        out += [*filler[done:], *question]
        return tuple(out), depth


def _key_pool(cfg, key: str, default: int, prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(int_option(cfg, key, default, lo=1, hi=10_000)))


def needle(key: str, value: Sequence[str]) -> tuple[str, ...]:
    return (*NEEDLE_HEAD, key, IS, *value, END)


def find_needles(prompt: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(key, number) of every needle, in order."""
    p, h, out = tuple(prompt), len(NEEDLE_HEAD), []
    for i in range(len(p) - h - 2):
        if p[i : i + h] == NEEDLE_HEAD and p[i + h + 1] == IS:
            j = i + h + 2
            while j < len(p) and p[j] in DIGITS:
                j += 1
            out.append((p[i + h], p[i + h + 2 : j]))
    return out


@register
class NiahMultikey(_Haystack):
    """Several needles with distinct keys; the question asks for one key's number."""

    name = "niah_multikey"

    def setup(self) -> None:
        self.n_keys = int_option(self.cfg, "keys", 4, lo=1)
        self.key_pool = _key_pool(self.cfg, "key_pool", 64, "k")
        if self.n_keys > len(self.key_pool):
            raise TaskConfigError(f"task.keys={self.n_keys} needs that many distinct keys; task.key_pool="
                                  f"{len(self.key_pool)}")
        self._symbols = tuple(dict.fromkeys((*FILLER, *DIGITS, *NEEDLE_HEAD, IS, END, *ASK_ONE, QMARK,
                                             *self.key_pool)))

    def min_length(self) -> int:
        return self.n_keys * (len(NEEDLE_HEAD) + 3 + self.value_digits) + len(ASK_ONE) + 2

    def example(self, rng: np.random.Generator, length: int) -> Example:
        keys = self.pick(rng, self.key_pool, self.n_keys)
        values = [self.number(rng) for _ in keys]
        question = (*ASK_ONE, keys[0], QMARK)
        others = [[needle(k, v)] for k, v in zip(keys[1:], values[1:])]
        prompt, depth = self.haystack(rng, length, [needle(keys[0], values[0])], others, question)
        return Example(prompt=prompt, target=values[0], length=length, extra={"depth": depth})

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        key = prompt[-2]
        hits = [v for k, v in find_needles(prompt) if k == key]
        if len(hits) != 1:
            raise ValueError(f"{len(hits)} needles for key {key}")
        return hits[0]


@register
class NiahMultivalue(_Haystack):
    """Several needles with the same key; the target is every number, in order, separated by ``,``."""

    name = "niah_multivalue"

    def setup(self) -> None:
        self.n_values = int_option(self.cfg, "values", 4, lo=1)
        self.key_pool = _key_pool(self.cfg, "key_pool", 64, "k")
        self._symbols = tuple(dict.fromkeys((*FILLER, *DIGITS, *NEEDLE_HEAD, IS, END, *ASK_ALL, QMARK, COMMA,
                                             *self.key_pool)))

    def min_length(self) -> int:
        return self.n_values * (len(NEEDLE_HEAD) + 3 + self.value_digits) + len(ASK_ALL) + 2

    def example(self, rng: np.random.Generator, length: int) -> Example:
        key = self.pick(rng, self.key_pool, 1)[0]
        values = self.distinct_numbers(rng, self.n_values)
        prompt, depth = self.haystack(rng, length, [needle(key, v) for v in values], [], (*ASK_ALL, key, QMARK))
        return Example(prompt=prompt, target=self.solve(prompt), length=length, extra={"depth": depth})

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        key = prompt[-2]
        out: list[str] = []
        for k, v in find_needles(prompt):
            if k == key:
                out += [COMMA] * bool(out) + list(v)
        return tuple(out)


@register
class VariableTracking(_Haystack):
    """Chains of assignments ``var X = number .`` / ``var Y = var X .``: every variable holding the asked value."""

    name = "variable_tracking"
    default_digits = 5

    def setup(self) -> None:
        self.hops = int_option(self.cfg, "hops", 4, lo=1)
        self.chains = int_option(self.cfg, "chains", 1, lo=1)
        self.names = _key_pool(self.cfg, "variables", 64, "X")
        if self.chains * (self.hops + 1) > len(self.names):
            raise TaskConfigError(f"task.chains={self.chains} x (task.hops={self.hops} + 1) variables needed; "
                                  f"task.variables={len(self.names)}")
        self._symbols = tuple(dict.fromkeys((*FILLER, *DIGITS, VAR, EQ, END, *ASK_VARS, QMARK, *self.names)))

    def min_length(self) -> int:
        chain = (3 + self.value_digits + 1) + self.hops * 6
        return self.chains * chain + len(ASK_VARS) + self.value_digits + 1

    def example(self, rng: np.random.Generator, length: int) -> Example:
        names = self.pick(rng, self.names, self.chains * (self.hops + 1))
        values = self.distinct_numbers(rng, self.chains)
        groups = []
        for c in range(self.chains):
            chain = names[c * (self.hops + 1) : (c + 1) * (self.hops + 1)]
            group = [(VAR, chain[0], EQ, *values[c], END)]
            group += [(VAR, chain[j + 1], EQ, VAR, chain[j], END) for j in range(self.hops)]
            groups.append(group)
        question = (*ASK_VARS, *values[0], QMARK)
        prompt, depth = self.haystack(rng, length, groups[0], groups[1:], question)
        return Example(prompt=prompt, target=tuple(names[: self.hops + 1]), length=length, extra={"depth": depth})

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        p = tuple(prompt)
        value = p[len(p) - 1 - self.value_digits : -1]
        held: list[str] = []
        for i in range(len(p) - 3):
            if p[i] != VAR or p[i + 2] != EQ:
                continue
            starts = not held and p[i + 3 : i + 4 + self.value_digits] == (*value, END)
            follows = bool(held) and p[i + 3] == VAR and p[i + 4] in held
            if starts or follows:
                held.append(p[i + 1])
        return tuple(held)
