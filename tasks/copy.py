"""Copy family: the target is a fixed rearrangement of random input symbols.

Length = number of input symbols. Variants differ only in how the target is derived from the
prompt, so each is one small ``solve`` on top of a shared random-symbol prompt. ``symbols`` is an
int N (the first N letters; above 52, numbered symbols ``s0``..) or an explicit list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.options import check_lengths, reject_options
from lengen.tasks.registry import register
from lengen.tasks.symbols import LETTERS, symbol_vocabulary

#: largest vocabulary an int ``symbols`` may ask for.
MAX_SYMBOLS = 10_000


def copy_vocabulary(spec) -> tuple[str, ...]:
    """Letters for small N; numbered symbols for large N (``repeat`` needs many to avoid running out of instances)."""
    if isinstance(spec, int) and not isinstance(spec, bool) and len(LETTERS) < spec <= MAX_SYMBOLS:
        return tuple(f"s{i}" for i in range(spec))
    if isinstance(spec, int) and spec > MAX_SYMBOLS:
        raise TaskConfigError(f"task.symbols={spec} is out of range; use 1..{MAX_SYMBOLS} or a list of symbols")
    return symbol_vocabulary(spec)


class _SymbolSequenceTask(Task):
    """Prompt = ``length`` symbols drawn uniformly with replacement from the vocabulary."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        reject_options(self.cfg, self.name)
        self._symbols = copy_vocabulary(self.cfg.get("symbols", 16))
        check_lengths(self.cfg, 1, "input symbols")

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    def draw_prompt(self, rng: np.random.Generator, length: int) -> tuple[str, ...]:
        idx = rng.integers(0, len(self._symbols), size=length)
        sym = self._symbols
        return tuple(sym[i] for i in idx.tolist())

    def example(self, rng: np.random.Generator, length: int) -> Example:
        prompt = self.draw_prompt(rng, length)
        return Example(prompt=prompt, target=self.solve(prompt), length=length)


@register
class Copy(_SymbolSequenceTask):
    name = "copy"

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        return tuple(prompt)


@register
class Reverse(_SymbolSequenceTask):
    name = "reverse"

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        return tuple(reversed(prompt))


@register
class Repeat(_SymbolSequenceTask):
    """Copy a single symbol repeated ``length`` times: only the count has to generalise.

    There are only ``symbols`` instances per length, and test/validation prompts are excluded
    from training, so the config uses a large vocabulary (numbered symbols).
    """

    name = "repeat"

    def draw_prompt(self, rng: np.random.Generator, length: int) -> tuple[str, ...]:
        return (self._symbols[int(rng.integers(0, len(self._symbols)))],) * length

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        return tuple(prompt)


@register
class CopyTwice(_SymbolSequenceTask):
    name = "copy_twice"

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        return (*prompt, *prompt)


@register
class ReverseCopy(_SymbolSequenceTask):
    """Reverse, then copy: the target is the reversed input followed by the input."""

    name = "reverse_copy"

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        return (*reversed(prompt), *prompt)


@register
class Replace(_SymbolSequenceTask):
    """Copy with every ``replace_from`` symbol written as ``replace_to``."""

    name = "replace"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        vocab = self._symbols
        self.src = str(self.cfg.get("replace_from") or vocab[0])
        self.dst = str(self.cfg.get("replace_to") or (vocab[1] if len(vocab) > 1 else "*"))
        if self.src not in vocab:
            shown = ", ".join(vocab[:8]) + (", ..." if len(vocab) > 8 else "")
            raise TaskConfigError(f"task.replace_from={self.src!r} is not in the vocabulary; allowed: {shown}")
        if self.dst == self.src:
            raise TaskConfigError(f"task.replace_to={self.dst!r} equals task.replace_from; pick a different symbol")
        if self.dst.startswith("<"):
            raise TaskConfigError(f"task.replace_to={self.dst!r} looks like a special token; pick a plain symbol")
        self._inputs = vocab
        if self.dst not in vocab:
            self._symbols = (*vocab, self.dst)

    def draw_prompt(self, rng: np.random.Generator, length: int) -> tuple[str, ...]:
        idx = rng.integers(0, len(self._inputs), size=length)
        sym = self._inputs
        return tuple(sym[i] for i in idx.tolist())

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        src, dst = self.src, self.dst
        return tuple(dst if s == src else s for s in prompt)
