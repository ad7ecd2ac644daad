"""The formal-language tasks of "Neural Networks and the Chomsky Hierarchy" (Delétang et al., ICLR 2023).

Fifteen tasks in three levels, generated as in the benchmark's own code
(github.com/google-deepmind/neural_networks_chomsky_hierarchy, ``tasks/``):

- regular: ``even_pairs``, ``modular_arithmetic`` (no brackets), ``parity_check``, ``cycle_navigation``;
- deterministic context-free: ``modular_arithmetic_brackets``, ``reverse_string``, ``solve_equation``,
  ``stack_manipulation``;
- context-sensitive: ``duplicate_string``, ``missing_duplicate_string``, ``odds_first``,
  ``binary_addition``, ``binary_multiplication``, ``compute_sqrt``, ``bucket_sort``.

``length`` is the length of the input string, exactly as in the benchmark (which trains on lengths
1-40 and scores lengths 41-500), including its conventions at small or awkward lengths:
``modular_arithmetic`` at an even length writes ``length - 1`` symbols (its expressions have odd
length), ``binary_addition``/``binary_multiplication`` at lengths 1-2 write one number without an
operator, ``missing_duplicate_string`` at length 1 is ``1 -> 1``, ``solve_equation`` at lengths 1-2 is
all zeros ``-> 0``. The three tasks whose output length varies for a given input length end their
output with the benchmark's termination token ``$`` (scored like any output symbol); the others
have a fixed output length. Symbols: bits ``0 1``, digits, operators ``+ - * ( ) = x``; stack actions
``pop push0 push1``; cycle moves ``-1 0 +1``; ``_`` marks the missing symbol and ``#`` pads an odd
``missing_duplicate_string``.

Deviation noted: ``odds_first`` follows the paper's definition (``s1 s3 s5 ... s2 s4 ...``, 1-based);
the released code puts the 0-based odd indices first, the mirror image of the same task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.options import check_lengths, int_option, reject_options
from lengen.tasks.registry import register
from lengen.tasks.symbols import DIGITS

BITS: tuple[str, ...] = ("0", "1")
END = "$"
MISSING = "_"
PAD = "#"
STACK_ACTIONS: tuple[str, ...] = ("pop", "push0", "push1")
MOVES: tuple[str, ...] = ("-1", "0", "+1")


def bits_le(value: int, width: int = 0) -> tuple[str, ...]:
    """Little-endian binary of ``value``, zero-padded to ``width`` (``0`` is written ``0``)."""
    return tuple(format(value, "b").zfill(width)[::-1])


def value_le(bits: Sequence[str]) -> int:
    return int("".join(bits)[::-1], 2) if bits else 0


def positive(rng: np.random.Generator, bits: int) -> int:
    """Uniform in 1 .. 2**bits - 1, for any number of bits."""
    if bits < 62:
        return 1 + int(rng.integers(0, 2**bits - 1))
    while True:
        value = 0
        for chunk in rng.integers(0, 2, size=bits).tolist():
            value = 2 * value + chunk
        if value:
            return value


class _Chomsky(Task):
    """Shared plumbing: option checks, a prompt drawn by ``draw``, the target from ``solve``."""

    level = ""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        reject_options(self.cfg, self.name)
        self._symbols = self.make_symbols()
        check_lengths(self.cfg, 1, "input symbols")

    def make_symbols(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    def draw(self, rng: np.random.Generator, length: int) -> tuple[str, ...]:
        raise NotImplementedError

    def example(self, rng: np.random.Generator, length: int) -> Example:
        self.check_length(length)
        prompt = self.draw(rng, length)
        return Example(prompt=prompt, target=self.solve(prompt), length=length)

    def check_length(self, length: int) -> None:
        if length < 1:
            raise TaskConfigError(f"{self.name} length {length} is below the smallest length 1")


def _alphabet(cfg, key: str, default: int, lo: int = 2) -> tuple[str, ...]:
    return DIGITS[: int_option(cfg, key, default, lo=lo, hi=10)]


def _uniform(rng: np.random.Generator, alphabet: Sequence[str], n: int) -> tuple[str, ...]:
    return tuple(alphabet[i] for i in rng.integers(0, len(alphabet), size=n).tolist())


# -- regular ---------------------------------------------------------------------------------------------


class _String(_Chomsky):
    """A task over a uniformly drawn string of ``vocab_size`` symbols (binary by default)."""

    def make_symbols(self):
        return _alphabet(self.cfg, "vocab_size", 2)

    def draw(self, rng, length):
        return _uniform(rng, self._symbols, length)


@register
class EvenPairs(_Chomsky):
    """Is the number of ``01`` and ``10`` pairs in a bit string even (``0``) or odd (``1``)?"""

    name = "even_pairs"
    level = "regular"

    def make_symbols(self):
        return BITS

    def draw(self, rng, length):
        return _uniform(rng, BITS, length)

    def solve(self, prompt):
        unequal = sum(a != b for a, b in pairwise(prompt))
        return (str(unequal % 2),)


@register
class ParityCheck(_Chomsky):
    """Is the number of ``1`` in a bit string even (``0``) or odd (``1``)?"""

    name = "parity_check"
    level = "regular"

    def make_symbols(self):
        return BITS

    def draw(self, rng, length):
        return _uniform(rng, BITS, length)

    def solve(self, prompt):
        return (str(prompt.count("1") % 2),)


@register
class CycleNavigation(_Chomsky):
    """Moves ``-1 0 +1`` on a cycle of ``cycle_length`` states from state 0: the final state."""

    name = "cycle_navigation"
    level = "regular"

    def make_symbols(self):
        self.cycle = int_option(self.cfg, "cycle_length", 5, lo=2, hi=10)
        return tuple(dict.fromkeys((*MOVES, *DIGITS[: self.cycle])))

    def draw(self, rng, length):
        return _uniform(rng, MOVES, length)

    def solve(self, prompt):
        return (str(sum(int(m) for m in prompt) % self.cycle),)


class _Modular(_Chomsky):
    def make_symbols(self):
        self.modulus = int_option(self.cfg, "modulus", 5, lo=2, hi=10)
        self.residues = DIGITS[: self.modulus]
        return (*self.residues, *self.operator_symbols())

    def operator_symbols(self) -> tuple[str, ...]:
        raise NotImplementedError

    def evaluate(self, tokens: Sequence[str]) -> int:
        """Standard precedence (``*`` before ``+ -``, left to right), unary minus, brackets; mod ``modulus``."""
        pos = 0

        def expression() -> int:
            nonlocal pos
            value = term()
            while pos < len(tokens) and tokens[pos] in "+-":
                op = tokens[pos]
                pos += 1
                value = value + term() if op == "+" else value - term()
            return value

        def term() -> int:
            nonlocal pos
            value = factor()
            while pos < len(tokens) and tokens[pos] == "*":
                pos += 1
                value *= factor()
            return value

        def factor() -> int:
            nonlocal pos
            tok = tokens[pos]
            pos += 1
            if tok == "-":
                return -factor()
            if tok == "(":
                value = expression()
                pos += 1  # ")"
                return value
            return int(tok)

        value = expression()
        if pos != len(tokens):
            raise ValueError(f"not an expression: {' '.join(tokens)}")
        return value % self.modulus


@register
class ModularArithmetic(_Modular):
    """``d op d op ... d`` with ``op`` in ``operators`` (default ``+ - *``) evaluated mod ``modulus``.

    Expressions have odd length: an even ``length`` writes ``length - 1`` symbols, as in the benchmark.
    """

    name = "modular_arithmetic"
    level = "regular"

    def operator_symbols(self):
        ops = self.cfg.get("operators")
        ops = ("+", "-", "*") if ops is None else tuple(str(o) for o in ops)
        if not ops or len(set(ops)) != len(ops) or not set(ops) <= {"+", "-", "*"}:
            raise TaskConfigError(f"task.operators={list(ops)!r} must be distinct operators from +, -, *")
        self.operators = ops
        return ops

    def draw(self, rng, length):
        n = length if length % 2 else length - 1
        nums = rng.integers(0, self.modulus, size=n // 2 + 1).tolist()
        ops = rng.integers(0, len(self.operators), size=n // 2).tolist()
        out = [self.residues[nums[0]]]
        for o, x in zip(ops, nums[1:]):
            out += [self.operators[o], self.residues[x]]
        return tuple(out)

    def solve(self, prompt):
        return (str(self.evaluate(prompt)),)


# -- deterministic context-free --------------------------------------------------------------------------


def bracket_expression(rng: np.random.Generator, modulus: int, length: int, ops: Sequence[str]) -> list[str]:
    """The benchmark's recursive generator: exactly ``length`` symbols.

    1: ``d``; 2: ``-d``; 3: ``(d)``; 4: ``(-d)``; >= 5: ``(left op right)`` with the left part's length
    uniform in 1..length-4.
    """
    if length <= 4:
        d = str(int(rng.integers(0, modulus)))
        return {1: [d], 2: ["-", d], 3: ["(", d, ")"], 4: ["(", "-", d, ")"]}[length]
    left = int(rng.integers(1, length - 3))
    a = bracket_expression(rng, modulus, left, ops)
    b = bracket_expression(rng, modulus, length - left - 3, ops)
    return ["(", *a, ops[int(rng.integers(0, len(ops)))], *b, ")"]


@register
class ModularArithmeticBrackets(_Modular):
    """A bracketed expression over ``+ -`` (and ``*`` with ``mult``, the benchmark's setting) mod ``modulus``."""

    name = "modular_arithmetic_brackets"
    level = "dcf"

    def operator_symbols(self):
        mult = self.cfg.get("mult", True)
        if not isinstance(mult, bool):
            raise TaskConfigError(f"task.mult={mult!r} must be true or false")
        self.ops = ("+", "-", "*") if mult else ("+", "-")
        return (*self.ops, "(", ")")

    def draw(self, rng, length):
        return tuple(bracket_expression(rng, self.modulus, length, self.ops))

    def solve(self, prompt):
        return (str(self.evaluate(prompt)),)


@register
class SolveEquation(_Modular):
    """``expression = r`` with one digit replaced by ``x`` (``+ -`` only, so ``x`` is unique): the digit.

    The expression is a ``modular_arithmetic_brackets`` expression of ``length - 2`` symbols; below
    length 3 the benchmark writes ``length`` zeros with answer ``0``.
    """

    name = "solve_equation"
    level = "dcf"

    def operator_symbols(self):
        return ("+", "-", "(", ")", "x", "=")

    def example(self, rng, length):
        self.check_length(length)
        if length < 3:
            return Example(prompt=("0",) * length, target=("0",), length=length)
        expr = bracket_expression(rng, self.modulus, length - 2, ("+", "-"))
        value = self.evaluate(expr)
        idx = int(rng.integers(0, len(expr)))
        while expr[idx] not in self.residues:  # the benchmark walks right (cyclically) to a digit
            idx = (idx + 1) % len(expr)
        digit, expr[idx] = expr[idx], "x"
        return Example(prompt=(*expr, "=", str(value)), target=(digit,), length=length)

    def solve(self, prompt):
        if "x" not in prompt:
            return ("0",)
        lhs, rhs = prompt[:-2], int(prompt[-1])
        hits = [d for d in self.residues if self.evaluate([d if t == "x" else t for t in lhs]) == rhs]
        if len(hits) != 1:
            raise ValueError(f"equation without a unique solution: {' '.join(prompt)}")
        return (hits[0],)


@register
class ReverseString(_String):
    """The input string reversed (binary by default, ``vocab_size`` symbols)."""

    name = "reverse_string"
    level = "dcf"

    def solve(self, prompt):
        return tuple(reversed(prompt))


@register
class StackManipulation(_Chomsky):
    """A stack (bits, bottom to top) then ``pop``/``push0``/``push1`` actions: the final stack, top first, then ``$``.

    The stack has 1..length-1 bits (uniform), the rest are actions; ``pop`` on an empty stack does nothing.
    """

    name = "stack_manipulation"
    level = "dcf"

    def make_symbols(self):
        return (*BITS, *STACK_ACTIONS, END)

    def draw(self, rng, length):
        if length == 1:
            return _uniform(rng, BITS, 1)
        n_stack = int(rng.integers(1, length))
        return (*_uniform(rng, BITS, n_stack), *_uniform(rng, STACK_ACTIONS, length - n_stack))

    def solve(self, prompt):
        stack: list[str] = []
        for tok in prompt:
            if tok == "pop":
                if stack:
                    stack.pop()
            elif tok in ("push0", "push1"):
                stack.append(tok[-1])
            else:
                stack.append(tok)
        return (*reversed(stack), END)


# -- context-sensitive ---------------------------------------------------------------------------------------


@register
class DuplicateString(_String):
    """The input string written twice."""

    name = "duplicate_string"
    level = "cs"

    def solve(self, prompt):
        return (*prompt, *prompt)


@register
class MissingDuplicateString(_Chomsky):
    """A bit string written twice with one symbol replaced by ``_`` (odd lengths end in ``#``): the missing bit."""

    name = "missing_duplicate_string"
    level = "cs"

    def make_symbols(self):
        return (*BITS, MISSING, PAD)

    def draw(self, rng, length):
        if length == 1:
            return ("1",)
        half = _uniform(rng, BITS, length // 2)
        doubled = [*half, *half]
        doubled[int(rng.integers(0, len(doubled)))] = MISSING
        return (*doubled, *(PAD,) * (length % 2))

    def solve(self, prompt):
        if MISSING not in prompt:
            return ("1",)
        body = [t for t in prompt if t != PAD]
        i, half = body.index(MISSING), len(body) // 2
        return (body[i + half] if i < half else body[i - half],)


@register
class OddsFirst(_String):
    """The symbols at odd positions (1st, 3rd, ...) first, then those at even positions."""

    name = "odds_first"
    level = "cs"

    def solve(self, prompt):
        return (*prompt[0::2], *prompt[1::2])


class _BinaryOperation(_Chomsky):
    """Two little-endian binary numbers ``n op m`` of ``length - 1`` bits in all; the answer little-endian, then ``$``."""

    op = ""

    def make_symbols(self):
        return (*BITS, self.op, END)

    def draw(self, rng, length):
        if length <= 2:  # one number, no operator (the benchmark's convention)
            return bits_le(int(rng.integers(0, 2**length - 1)), length)
        len_n = int(rng.integers(1, length - 1))
        len_m = length - 1 - len_n
        n, m = positive(rng, len_n), positive(rng, len_m)
        return (*bits_le(n, len_n), self.op, *bits_le(m, len_m))

    def solve(self, prompt):
        if self.op not in prompt:
            return (*self.short(prompt), END)
        i = prompt.index(self.op)
        return (*bits_le(self.apply(value_le(prompt[:i]), value_le(prompt[i + 1 :]))), END)

    def short(self, prompt) -> tuple[str, ...]:
        raise NotImplementedError

    def apply(self, n: int, m: int) -> int:
        raise NotImplementedError


@register
class BinaryAddition(_BinaryOperation):
    """``n + m`` in little-endian binary (operands' high zeros kept), the sum without high zeros, then ``$``."""

    name = "binary_addition"
    level = "cs"
    op = "+"

    def short(self, prompt):
        return bits_le(value_le(prompt))

    def apply(self, n, m):
        return n + m


@register
class BinaryMultiplication(_BinaryOperation):
    """``n * m`` in little-endian binary, the product without high zeros, then ``$``."""

    name = "binary_multiplication"
    level = "cs"
    op = "*"

    def short(self, prompt):
        return ("0",) * (len(prompt) - 1)

    def apply(self, n, m):
        return n * m


@register
class ComputeSqrt(_Chomsky):
    """A big-endian binary number of ``length`` bits (1 .. 2^length - 1): floor of its square root in ceil(length/2) bits."""

    name = "compute_sqrt"
    level = "cs"

    def make_symbols(self):
        return BITS

    def draw(self, rng, length):
        value = positive(rng, length)
        return tuple(format(value, "b").zfill(length))

    def solve(self, prompt):
        root = math.isqrt(int("".join(prompt), 2))
        return tuple(format(root, "b").zfill(-(-len(prompt) // 2)))


@register
class BucketSort(_Chomsky):
    """Sort a string over ``vocab_size`` symbols (default 5)."""

    name = "bucket_sort"
    level = "cs"

    def make_symbols(self):
        return _alphabet(self.cfg, "vocab_size", 5)

    def draw(self, rng, length):
        return _uniform(rng, self._symbols, length)

    def solve(self, prompt):
        return tuple(sorted(prompt, key=self._symbols.index))
