"""Scratchpads as data: the five-part step format of Kazemnejad et al. (2023).

A task describes its computation as a list of steps, each a dict of up to five parts --
input (``i``), computation (``c``), output (``o``), intermediate variables (``v``), remaining input
(``r``) -- and the final answer. :class:`Scratchpad` renders the selected parts into the target::

    I: 3 6 C: 3 + 6 + 0 O: 9 V: 0 R: 1 2 + 4 5 | ... | = 5 7 9

and :meth:`Scratchpad.parse` inverts the rendering, so a predicted target can be scored step by
step next to its final answer. The format is only data: the same task code serves every format.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from lengen.tasks.base import Example, Task, TaskConfigError

PARTS: tuple[str, ...] = ("i", "c", "o", "v", "r")
TAGS: dict[str, str] = {p: f"{p.upper()}:" for p in PARTS}
TAG_PART: dict[str, str] = {t: p for p, t in TAGS.items()}
STEP_END = "|"
ANSWER = "="
PRESETS = ("none", "full", "minimal", *(f"full-minus-{p}" for p in PARTS))

Step = Mapping[str, Sequence[str]]


def parse_spec(spec: Any, available: Sequence[str], task: str) -> tuple[str, ...]:
    """Selected parts, in canonical order, from a preset name, ``"c+o"`` or a list like ``[c, o]``."""
    shown = f"task.scratchpad={spec!r}"
    allowed = f"presets {', '.join(PRESETS)} or a list of parts from {', '.join(available)}"
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("none", "")):
        return ()
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s == "full":
            wanted: list[str] = list(available)
        elif s == "minimal":
            wanted = ["c", "o"]
        elif s.startswith("full-minus-"):
            dropped = s.removeprefix("full-minus-")
            if dropped not in PARTS:
                raise TaskConfigError(f"unknown {shown}; presets are {', '.join(PRESETS)}")
            if dropped not in available:
                raise TaskConfigError(f"{shown}: task {task} has no part {dropped!r}; its parts are {', '.join(available)}")
            wanted = [p for p in available if p != dropped]
        elif "+" in s or "," in s:
            wanted = [p.strip() for p in s.replace(",", "+").split("+") if p.strip()]
        else:
            raise TaskConfigError(f"unknown {shown}; allowed: {allowed}")
    elif isinstance(spec, Sequence):
        wanted = [str(p).strip().lower() for p in spec]
    else:
        raise TaskConfigError(f"{shown} is neither a preset nor a list of parts; allowed: {allowed}")
    for p in wanted:
        if p not in PARTS:
            raise TaskConfigError(f"{shown}: unknown part {p!r}; parts are i, c, o, v, r (input, computation, output, "
                                  f"intermediate variables, remaining input)")
        if p not in available:
            raise TaskConfigError(f"{shown}: task {task} has no part {p!r}; its parts are {', '.join(available)}")
    return tuple(p for p in PARTS if p in wanted)


class Scratchpad:
    """Renders steps + answer into a target and parses a (possibly wrong) target back."""

    def __init__(self, parts: Sequence[str]) -> None:
        self.parts = tuple(parts)

    @property
    def enabled(self) -> bool:
        return bool(self.parts)

    @property
    def symbols(self) -> tuple[str, ...]:
        if not self.enabled:
            return ()
        return (*(TAGS[p] for p in self.parts), STEP_END, ANSWER)

    def render(self, steps: Sequence[Step] | None, answer: Sequence[str]) -> tuple[tuple[str, ...], int]:
        """The target and its answer length (the symbols after the answer marker)."""
        if not self.enabled:
            return tuple(answer), len(answer)
        out: list[str] = []
        for step in steps or ():
            for p in self.parts:
                out.append(TAGS[p])
                out.extend(step[p])
            out.append(STEP_END)
        out.append(ANSWER)
        out.extend(answer)
        return tuple(out), len(answer)

    def parse(self, target: Sequence[str]) -> tuple[list[dict[str, tuple[str, ...]]], tuple[str, ...] | None]:
        """Steps (dicts of the parts found) and the answer (None without an answer marker).

        Never fails: symbols outside any part land under ``"?"`` and a repeated tag under ``"!"``,
        which makes that step compare unequal to the gold one.
        """
        seq = list(target)
        answer: tuple[str, ...] | None = None
        if ANSWER in seq:
            cut = len(seq) - 1 - seq[::-1].index(ANSWER)
            seq, answer = seq[:cut], tuple(seq[cut + 1 :])
        chunks: list[list[str]] = [[]]
        for s in seq:
            if s == STEP_END:
                chunks.append([])
            else:
                chunks[-1].append(s)
        if not chunks[-1]:
            chunks.pop()
        return [self._parse_step(c) for c in chunks], answer

    @staticmethod
    def _parse_step(chunk: Sequence[str]) -> dict[str, tuple[str, ...]]:
        parts: dict[str, list[str]] = {}
        current = None
        for s in chunk:
            if s in TAG_PART:
                current = TAG_PART[s] if TAG_PART[s] not in parts else "!"
                parts.setdefault(current, [])
            else:
                parts.setdefault(current or "?", []).append(s)
        return {k: tuple(v) for k, v in parts.items()}

    def answer_from(self, generated: Sequence[str]) -> tuple[str, ...]:
        if not self.enabled:
            return tuple(generated)
        return self.parse(generated)[1] or ()

    def score(self, predicted: Sequence[str], gold: Sequence[str]) -> dict:
        """Step-by-step comparison; ``first_wrong_step`` is -1 when every step (and no extra one) matches."""
        if not self.enabled:
            return {}
        gold_steps, gold_answer = self.parse(gold)
        pred_steps, pred_answer = self.parse(predicted)
        n = len(gold_steps)
        same = [k < len(pred_steps) and pred_steps[k] == gold_steps[k] for k in range(n)]
        wrong = [k for k, ok in enumerate(same) if not ok]
        if not wrong and len(pred_steps) > n:
            wrong = [n]
        return {
            "steps_total": n,
            "steps_correct": sum(same),
            "first_wrong_step": wrong[0] if wrong else -1,
            "answer_correct": int(pred_answer is not None and pred_answer == gold_answer),
        }


class StepTask(Task):
    """A task whose target may carry a scratchpad: subclasses produce steps, this class formats them.

    Subclasses set ``parts`` (the parts their steps carry) and implement ``base_symbols``; their
    ``example`` computes steps and answer from the values it drew and calls :meth:`make`, their
    ``solve`` reads the values back out of the prompt and calls :meth:`finish`. Steps are only
    built when the scratchpad is on (:attr:`with_steps`), so the plain format costs nothing extra.
    """

    parts: tuple[str, ...] = PARTS

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__(cfg)
        self.scratchpad = Scratchpad(parse_spec(self.cfg.get("scratchpad"), self.parts, self.name))
        self._symbols: tuple[str, ...] | None = None

    @abstractmethod
    def base_symbols(self) -> tuple[str, ...]:
        """Symbols of prompts and answers (the scratchpad adds its markers)."""

    @property
    def symbols(self) -> Sequence[str]:
        if self._symbols is None:
            self._symbols = tuple(dict.fromkeys((*self.base_symbols(), *self.scratchpad.symbols)))
        return self._symbols

    def make(self, prompt: Sequence[str], steps: Sequence[Step] | None, answer: Sequence[str], length: int,
             extra: Mapping[str, float | int] | None = None) -> Example:
        target, answer_len = self.scratchpad.render(steps, answer)
        return Example(prompt=tuple(prompt), target=target, length=length, answer_len=answer_len, extra=extra or {})

    def finish(self, steps: Sequence[Step] | None, answer: Sequence[str]) -> tuple[str, ...]:
        return self.scratchpad.render(steps, answer)[0]

    @property
    def with_steps(self) -> bool:
        return self.scratchpad.enabled

    def answer_from(self, generated: Sequence[str]) -> tuple[str, ...]:
        return self.scratchpad.answer_from(generated)

    def score_steps(self, predicted: Sequence[str], gold: Sequence[str]) -> dict:
        return self.scratchpad.score(predicted, gold)
