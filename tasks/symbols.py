"""Symbol vocabularies shared by task families."""

from __future__ import annotations

import string
from collections.abc import Sequence

from lengen.tasks.base import TaskConfigError

DIGITS: tuple[str, ...] = tuple(string.digits)
LETTERS: tuple[str, ...] = tuple(string.ascii_lowercase) + tuple(string.ascii_uppercase)


def symbol_vocabulary(spec: int | Sequence[str], what: str = "task.symbols") -> tuple[str, ...]:
    """An int N means the first N letters (a-z, then A-Z); a list is taken as given."""
    if isinstance(spec, bool) or not isinstance(spec, (int, Sequence)) or isinstance(spec, str):
        raise TaskConfigError(f"{what}={spec!r} must be a number of symbols (1..{len(LETTERS)}) or a list of symbols")
    if isinstance(spec, int):
        if not 1 <= spec <= len(LETTERS):
            raise TaskConfigError(f"{what}={spec} is out of range; use 1..{len(LETTERS)} or a list of symbols")
        return LETTERS[:spec]
    symbols = tuple(str(s) for s in spec)
    if not symbols or len(set(symbols)) != len(symbols):
        raise TaskConfigError(f"{what}={list(symbols)} must be a non-empty list of distinct symbols")
    return symbols
