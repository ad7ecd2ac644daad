"""LEGO (Zhang et al. 2022, "Unveiling Transformers with LEGO"): follow a chain of signed assignments.

``length`` = chain length n (number of variables, at most ``variables``). The chain assigns ``+1`` or
``-1`` to a first variable and each next variable ``+`` or ``-`` the previous one; its clauses are
shown in random order (``shuffle: true``, as in Zhang et al.) or in chain order::

    prompt  c = - b ; a = +1 ; b = + a          (shuffled; chain a -> b -> c)
    target  c -1 b +1 a +1                       (query: all -- every variable, in clause order)

``query: all`` (default) resolves every variable, as Zhang et al.'s per-clause labels do: the
target names each clause's variable and its value, in the order the clauses are shown.
``query: one`` is the variant of Kazemnejad et al. (2023): the prompt ends with ``? v`` asking for
one variable from the second half of the chain (chain position >= ceil(n/2); position 0 when n = 1),
and the target is its value. Variable names are distinct letters drawn at random per example.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lengen.tasks.base import Example, Task, TaskConfigError
from lengen.tasks.options import check_lengths, reject_options
from lengen.tasks.registry import register
from lengen.tasks.symbols import symbol_vocabulary

VALUES: tuple[str, ...] = ("+1", "-1")
SIGNS: tuple[str, ...] = ("+", "-")
EQ, SEP, ASK = "=", ";", "?"
QUERIES = ("all", "one")


@register
class Lego(Task):
    name = "lego"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        reject_options(self.cfg, self.name)
        self.variables = symbol_vocabulary(self.cfg.get("variables", 26), "task.variables")
        bad = set(self.variables) & {*VALUES, *SIGNS, EQ, SEP, ASK}
        if bad:
            raise TaskConfigError(f"task.variables contains {sorted(bad)!r}, which the clauses use as symbols")
        shuffle = self.cfg.get("shuffle", True)
        if not isinstance(shuffle, bool):
            raise TaskConfigError(f"task.shuffle={shuffle!r} must be true or false")
        self.shuffle = shuffle
        self.query = str(self.cfg.get("query", "all"))
        if self.query not in QUERIES:
            raise TaskConfigError(f"task.query={self.query!r}; allowed: {', '.join(QUERIES)}")
        check_lengths(self.cfg, 1, "variables in the chain")
        longest = max([int(self.cfg.get(k) or 0) for k in ("train_max", "eval_max")]
                      + [int(x) for k in ("train_lengths", "eval_lengths") for x in (self.cfg.get(k) or ())])
        if longest > len(self.variables):
            raise TaskConfigError(f"lego chains of length {longest} need that many variables; task.variables="
                                  f"{len(self.variables)} (use task.variables >= {longest}, at most 52)")
        self._symbols = (*self.variables, *VALUES, *SIGNS, EQ, SEP, ASK)

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    def example(self, rng: np.random.Generator, length: int) -> Example:
        if not 1 <= length <= len(self.variables):
            raise TaskConfigError(f"lego length {length} is outside 1..{len(self.variables)} (task.variables)")
        names = [self.variables[i] for i in rng.permutation(len(self.variables))[:length].tolist()]
        values = rng.integers(0, 2, size=length).tolist()
        clauses = [(names[0], EQ, VALUES[values[0]])]
        for i in range(1, length):
            clauses.append((names[i], EQ, SIGNS[int(values[i] != values[i - 1])], names[i - 1]))
        order = rng.permutation(length).tolist() if self.shuffle else list(range(length))
        prompt: list[str] = []
        for k, j in enumerate(order):
            prompt += [SEP] * (k > 0) + list(clauses[j])
        if self.query == "one":
            lo = min(-(-length // 2), length - 1)
            asked = int(rng.integers(lo, length))
            prompt += [ASK, names[asked]]
        return Example(prompt=tuple(prompt), target=self.solve(prompt), length=length)

    def solve(self, prompt: Sequence[str]) -> tuple[str, ...]:
        p = list(prompt)
        asked = None
        if ASK in p:
            asked, p = p[-1], p[: p.index(ASK)]
        clauses: list[list[str]] = [[]]
        for tok in p:
            if tok == SEP:
                clauses.append([])
            else:
                clauses[-1].append(tok)
        value: dict[str, int] = {}
        pending = {c[0]: c[2:] for c in clauses}
        while pending:  # resolve the constants, then every clause whose right-hand variable is known
            progress = False
            for var, rhs in list(pending.items()):
                if len(rhs) == 1:
                    value[var] = 1 if rhs[0] == "+1" else -1
                elif rhs[1] in value:
                    value[var] = value[rhs[1]] * (1 if rhs[0] == "+" else -1)
                else:
                    continue
                del pending[var]
                progress = True
            if not progress:
                raise ValueError(f"unresolvable chain: {' '.join(prompt)}")

        def show(v: int) -> str:
            return "+1" if v > 0 else "-1"

        if asked is not None:
            return (show(value[asked]),)
        out: list[str] = []
        for c in clauses:
            out += [c[0], show(value[c[0]])]
        return tuple(out)
