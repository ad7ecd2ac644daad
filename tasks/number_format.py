"""Number descriptions: how a number's digits are laid out in a sequence.

The positional description of numbers changes what a Transformer can extrapolate (Shen et al.
2023; Zhou et al. 2024), so it is a config option of every multi-digit task rather than a new
task: reversed digits (operands and/or answer, least significant first), zero padding to a fixed
width or, per example, of the shorter operand to the longer one (``pad_operands``, what position
coupling needs), random spaces between operand digits, and index hints (each digit preceded by a marker of
its place, ``h0`` for units, ``h1`` for tens, ...). Options compose with each other and with
scratchpads; writing is invertible, so a task's oracle reads its own prompts back.

Random spaces only go into operands (drawn from the example's rng, so data stay deterministic);
answers are always written the same way, so the target is a function of the prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lengen.tasks.base import TaskConfigError

SPACE = "_"
DIGIT_SET = frozenset("0123456789")
#: how many places index hints can mark (the hint symbols are in the vocabulary, so it is fixed).
HINT_PLACES = 128
HINTS: tuple[str, ...] = tuple(f"h{k}" for k in range(HINT_PLACES))

FORMAT_DEFAULTS: dict[str, Any] = {
    "reverse_operands": False,
    "reverse_answer": False,
    "pad_width": 0,
    "random_spaces": 0.0,
    "index_hints": False,
    "pad_operands": False,
}


@dataclass(frozen=True)
class NumberFormat:
    reverse_operands: bool = False
    reverse_answer: bool = False
    pad_width: int = 0
    random_spaces: float = 0.0
    index_hints: bool = False
    #: zero-pad both operands to the longer one's digits (per example) and the answer to the most
    #: digits the operation can give; tasks with two operands only (see :func:`number_format`).
    pad_operands: bool = False

    @classmethod
    def from_cfg(cls, spec: Mapping[str, Any] | None) -> NumberFormat:
        """Validate ``task.format``; each bad value stops with one line naming it."""
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise TaskConfigError(f"task.format={spec!r} must be a mapping with keys {', '.join(FORMAT_DEFAULTS)}")
        unknown = sorted(set(spec) - set(FORMAT_DEFAULTS))
        if unknown:
            raise TaskConfigError(f"unknown key task.format.{unknown[0]}; allowed: {', '.join(FORMAT_DEFAULTS)}")
        vals = {**FORMAT_DEFAULTS, **{k: v for k, v in spec.items() if v is not None}}
        for key in ("reverse_operands", "reverse_answer", "index_hints", "pad_operands"):
            if not isinstance(vals[key], bool):
                raise TaskConfigError(f"task.format.{key}={vals[key]!r} must be true or false")
        pad = vals["pad_width"]
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise TaskConfigError(f"task.format.pad_width={pad!r} must be an integer >= 0 (0 = no padding)")
        if vals["index_hints"] and pad > HINT_PLACES:
            raise TaskConfigError(f"task.format.pad_width={pad} exceeds the {HINT_PLACES} places index hints can mark")
        p = vals["random_spaces"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise TaskConfigError(f"task.format.random_spaces={p!r} must be a probability in [0, 1] (0 = off)")
        if pad and vals["pad_operands"]:
            raise TaskConfigError(f"task.format.pad_operands=true pads per example; it excludes task.format.pad_width={pad} "
                                  f"(set one of them)")
        return cls(vals["reverse_operands"], vals["reverse_answer"], pad, float(p), vals["index_hints"],
                   vals["pad_operands"])

    @property
    def plain(self) -> bool:
        return self == NumberFormat()

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols this format adds to the task's vocabulary."""
        return ((SPACE,) if self.random_spaces > 0 else ()) + (HINTS if self.index_hints else ())

    def _units(self, digits: str, reverse: bool, width: int) -> list[tuple[str, ...]]:
        """One unit per digit (with its hint), most significant first unless reversed."""
        if width:
            digits = digits.zfill(width)
        n = len(digits)
        if self.index_hints:
            if n > HINT_PLACES:
                raise TaskConfigError(f"a {n}-digit number exceeds the {HINT_PLACES} places index hints can mark")
            units = [(HINTS[n - 1 - i], d) for i, d in enumerate(digits)]
        else:
            units = [(d,) for d in digits]
        if reverse:
            units.reverse()
        return units

    def write_operand(self, digits: str, rng: np.random.Generator | None = None, width: int = 0) -> list[str]:
        """An input number (``digits`` most significant first, no leading zeros); ``width``: the
        per-example padding of ``pad_operands`` (else ``pad_width`` applies)."""
        width = width if self.pad_operands else self.pad_width
        if not self.index_hints and not self.reverse_operands and not width and not self.random_spaces:
            return list(digits)  # fast path: the plain description
        units = self._units(digits, self.reverse_operands, width)
        out: list[str] = list(units[0])
        if self.random_spaces > 0:
            if rng is None:
                raise ValueError("random_spaces needs the example's rng")
            gaps = rng.random(len(units) - 1) < self.random_spaces
            for unit, gap in zip(units[1:], gaps):
                if gap:
                    out.append(SPACE)
                out.extend(unit)
        else:
            for unit in units[1:]:
                out.extend(unit)
        return out

    def write_answer(self, digits: str, width: int = 0) -> list[str]:
        """An output number, zero-padded to ``width`` when padding is on (no random spaces)."""
        padded = self.pad_width or self.pad_operands
        if not self.index_hints and not self.reverse_answer and not padded:
            return list(digits)
        units = self._units(digits, self.reverse_answer, width if padded else 0)
        return [s for unit in units for s in unit]

    @staticmethod
    def _read(symbols: Sequence[str], reverse: bool) -> str:
        digits = "".join(s for s in symbols if s in DIGIT_SET)
        if reverse:
            digits = digits[::-1]
        return digits.lstrip("0") or "0"

    def read_operand(self, symbols: Sequence[str]) -> str:
        """Digits (most significant first, no leading zeros) of a written operand."""
        return self._read(symbols, self.reverse_operands)

    def read_answer(self, symbols: Sequence[str]) -> str:
        return self._read(symbols, self.reverse_answer)


def number_format(cfg: Mapping[str, Any], *, two_operands: bool = False) -> NumberFormat:
    """The task's ``format``; ``pad_operands`` only where there are two operands to align."""
    fmt = NumberFormat.from_cfg(cfg.get("format"))
    if fmt.pad_operands and not two_operands:
        raise TaskConfigError(f"task.format.pad_operands=true: task {cfg.get('name')} has no pair of operands to "
                              f"pad to each other; use task.format.pad_width")
    return fmt


def digits_of(rng: np.random.Generator, n: int) -> str:
    """A uniformly random ``n``-digit number as a digit string (no leading zero unless n == 1)."""
    if n == 1:
        return str(int(rng.integers(0, 10)))
    d = rng.integers(0, 10, size=n)
    if d[0] == 0:
        d[0] = rng.integers(1, 10)
    return "".join(map(str, d.tolist()))


def split_on(symbols: Sequence[str], sep: str) -> list[list[str]]:
    """Split a symbol sequence at every ``sep``."""
    out: list[list[str]] = [[]]
    for s in symbols:
        if s == sep:
            out.append([])
        else:
            out[-1].append(s)
    return out
