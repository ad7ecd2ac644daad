"""SCAN (Lake & Baroni 2018): navigation commands to action sequences, generated from the grammar.

The grammar is finite (20,910 commands), so the task enumerates it once and draws a command
uniformly among those whose action sequence has exactly ``length`` actions -- ``length`` is the
output length, the quantity SCAN's length split divides on. The default split is Lake & Baroni's
(train on up to 22 actions, test on 24-48; no command has 23, 29, 31, 34, 35, 37-39 or 41-47
actions, so those lengths are skipped); Kazemnejad et al. (2023) used train <= 25 (the preset
``kazemnejad2023*/scan``). Grammar and interpretation functions (Lake & Baroni 2018)::

    C -> S and S | S after S | S          [[x1 and x2]] = [[x1]] [[x2]];  [[x1 after x2]] = [[x2]] [[x1]]
    S -> V twice | V thrice | V           [[x twice]] = [[x]] [[x]];  [[x thrice]] = [[x]] [[x]] [[x]]
    V -> D opposite D' | D around D' | D | U     (``U opposite left``, ``turn around right``, ...)
    D -> U left | U right | turn left | turn right
    U -> walk | look | run | jump         [[walk]] = I_WALK, ...;  [[turn left]] = I_TURN_LEFT
    [[u left]] = I_TURN_LEFT [[u]];  [[u opposite left]] = I_TURN_LEFT I_TURN_LEFT [[u]]
    [[u around left]] = (I_TURN_LEFT [[u]]) x 4;  [[turn opposite left]] = I_TURN_LEFT x 2;
    [[turn around left]] = I_TURN_LEFT x 4  (and the same with right)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.options import reject_options
from lengen.tasks.registry import register

PRIMITIVES = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
TURNS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
REPEATS = {"twice": 2, "thrice": 3}
CONJUNCTIONS = ("and", "after")
WORDS: tuple[str, ...] = (*PRIMITIVES, "turn", *TURNS, "opposite", "around", *REPEATS, *CONJUNCTIONS)
ACTIONS: tuple[str, ...] = (*PRIMITIVES.values(), *TURNS.values())

Command = tuple[tuple[str, ...], tuple[str, ...]]


def interpret(words: Sequence[str]) -> tuple[str, ...]:
    """The action sequence of a command (raises ValueError on a string outside the grammar)."""
    w = tuple(words)
    for conj in CONJUNCTIONS:
        if conj in w:
            i = w.index(conj)
            first, second = interpret_s(w[:i]), interpret_s(w[i + 1 :])
            return first + second if conj == "and" else second + first
    return interpret_s(w)


def interpret_s(w: tuple[str, ...]) -> tuple[str, ...]:
    if w and w[-1] in REPEATS:
        return interpret_v(w[:-1]) * REPEATS[w[-1]]
    return interpret_v(w)


def interpret_v(w: tuple[str, ...]) -> tuple[str, ...]:
    if len(w) == 1 and w[0] in PRIMITIVES:
        return (PRIMITIVES[w[0]],)
    if len(w) in (2, 3) and w[-1] in TURNS and (w[0] in PRIMITIVES or w[0] == "turn"):
        turn = TURNS[w[-1]]
        act = () if w[0] == "turn" else (PRIMITIVES[w[0]],)
        if len(w) == 2:
            return (turn, *act)
        if w[1] == "opposite":
            return (turn, turn, *act)
        if w[1] == "around":
            return (turn, *act) * 4
    raise ValueError(f"not a SCAN command: {' '.join(w)}")


@cache
def by_length() -> dict[int, tuple[Command, ...]]:
    """Every SCAN command with its actions, grouped by the number of actions (in a fixed order)."""
    verbs = [(u,) for u in PRIMITIVES]
    for u in (*PRIMITIVES, "turn"):
        for d in TURNS:
            verbs += [(u, d), (u, "opposite", d), (u, "around", d)]
    simple = [v + r for v in verbs for r in ((), *((k,) for k in REPEATS))]
    commands = list(simple)
    for a in simple:
        for b in simple:
            commands += [(*a, conj, *b) for conj in CONJUNCTIONS]
    out: dict[int, list[Command]] = {}
    for c in commands:
        actions = interpret(c)
        out.setdefault(len(actions), []).append((c, actions))
    return {n: tuple(cs) for n, cs in sorted(out.items())}


@register
class Scan(Task):
    name = "scan"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        reject_options(self.cfg, self.name)
        have = by_length()
        for key in ("train_lengths", "eval_lengths"):
            bad = [int(x) for x in (self.cfg.get(key) or ()) if int(x) not in have]
            if bad:
                raise TaskConfigError(f"task.{key} contains {bad[0]}: no SCAN command has {bad[0]} actions; "
                                      f"lengths with commands: {', '.join(map(str, have))}")
        lo, hi = self.cfg.get("train_min"), self.cfg.get("train_max")
        if not self.cfg.get("train_lengths") and lo is not None and hi is not None:
            gaps = [n for n in range(int(lo), int(hi) + 1) if n not in have]
            if gaps:
                raise TaskConfigError(f"task.train_min..train_max={lo}..{hi} includes {gaps[0]}, a length no SCAN "
                                      f"command has; list the lengths in task.train_lengths instead")

    @property
    def symbols(self) -> Sequence[str]:
        return (*WORDS, *ACTIONS)

    def example(self, rng: np.random.Generator, length: int) -> Example:
        pool = by_length().get(length)
        if not pool:
            raise TaskConfigError(f"no SCAN command has {length} actions; lengths with commands: "
                                  f"{', '.join(map(str, by_length()))}")
        command, actions = pool[int(rng.integers(0, len(pool)))]
        return Example(prompt=command, target=actions, length=length)

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        return interpret(prompt)
