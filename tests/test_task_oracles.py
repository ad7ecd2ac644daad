"""Independent oracles: every registered task, in every format it supports, against a solver written here.

Why independent: ``tests/test_tasks.py::test_oracle`` compares ``task.example(...)`` with ``task.solve(...)``,
but both build the target with the same task code (``_target``, ``addition_steps``, ``selection_steps``,
``Scratchpad.render``, ``NumberFormat.write_answer``, ...), so a wrong generator agrees with itself. Here
the only task code called is ``build_task(cfg)`` and ``task.example(rng, length)``. The test then reads
the *prompt* with its own parser, written from each task's definition (separators, ``+``/``*``/``@``,
index hints ``hK`` = place 10^K, reversed digits, random spaces ``_`` between digits, zero padding),
recomputes the *target* with plain Python (integers for arithmetic, a stable ``sorted`` for sorting,
prefix sums for running states, big-integer polynomial values, a needle search for passkey), renders its
own scratchpad (tags ``I: C: O: V: R:`` in that order, ``|`` after each step, ``=`` before the answer)
and compares the whole target symbol by symbol, so every intermediate value of every step is checked.
Where possible a step's values come from a closed formula instead of replaying the generator's loop:
the carry into digit k of a + b is ``(a mod 10^k + b mod 10^k) div 10^k`` and the digit written is
digit k of ``a + b``; the running sum after digit j of b in a * b is ``a * (b mod 10^(j+1))``; the k-th
selection-sort pick is the k-th index of a stable sort; a polynomial's running value is the exact
integer sum reduced mod 10 only at the end. Aggregate checks (space rate, both operand orders, all
depths, vocabulary coverage) catch generators that silently stop randomising.
"""

from __future__ import annotations

import re
import string
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import lengen.conf
from lengen.tasks import TASKS, build_task

N = 1000  # examples per task x format
TASK_DIR = Path(lengen.conf.__file__).parent / "task"
DIGITS = tuple(string.digits)
HINT = re.compile(r"h(0|[1-9][0-9]*)")
TAGS = {"i": "I:", "c": "C:", "o": "O:", "v": "V:", "r": "R:"}
CANONICAL = ("i", "c", "o", "v", "r")

# Passkey text, from the task's definition (module docstring and constants' meaning).
FILLER_TEXT = (
    "the", "grass", "is", "green", ".", "the", "sky", "is", "blue", ".", "the", "sun", "is", "yellow", ".",
    "here", "we", "go", ".", "there", "and", "back", "again", ".",
)
NEEDLE_HEAD = ("the", "pass", "key", "is")
NEEDLE_TAIL = (".", "remember", "it", ".")
QUESTION = ("what", "is", "the", "pass", "key", "?")


# -- configs and cases ---------------------------------------------------------------------------------------


def load_cfg(name: str, fmt: dict | None = None, **over: Any) -> dict:
    cfg = yaml.safe_load((TASK_DIR / f"{name}.yaml").read_text())
    cfg.update(over)
    if fmt is not None:
        cfg["format"] = {**(cfg.get("format") or {}), **fmt}
    return cfg


def lengths_for(cfg: dict) -> list[int]:
    """Every training length and every evaluation length of the yaml."""
    train = range(int(cfg["train_min"]), int(cfg["train_max"]) + 1)
    evals = cfg.get("eval_lengths") or range(int(cfg["train_max"]) + 1, int(cfg["eval_max"]) + 1)
    return sorted({*train, *map(int, evals)})


@dataclass(frozen=True)
class Case:
    cid: str
    cfg: dict
    parts: tuple[str, ...] = ()  # scratchpad parts the target must show, in canonical order


FIVE_PARTS = [
    ("none", ()),
    ("full", CANONICAL),
    ("minimal", ("c", "o")),
    ("i+v+r", ("i", "v", "r")),
    (["v", "c"], ("c", "v")),  # a list, given out of order: rendered in canonical order
    ("full-minus-o", ("i", "c", "v", "r")),
]
FOUR_PARTS = [  # summation and parity have no "v"
    ("none", ()),
    ("full", ("i", "c", "o", "r")),
    ("minimal", ("c", "o")),
    ("i+r", ("i", "r")),
    (["r", "o"], ("o", "r")),
    ("full-minus-c", ("i", "o", "r")),
]
NUMBER_FORMATS = {
    "rev_ops": {"reverse_operands": True},
    "rev_ans": {"reverse_answer": True},
    "pad12": {"pad_width": 12},
    "pad3": {"pad_width": 3},
    "spaces": {"random_spaces": 0.3},
    "hints": {"index_hints": True},
    "rev_hints": {"reverse_operands": True, "reverse_answer": True, "index_hints": True},
    "all": {"reverse_operands": True, "reverse_answer": True, "pad_width": 10, "random_spaces": 0.5,
            "index_hints": True},
}
FORMAT_WITH_STEPS = [
    ("all", "full", CANONICAL),
    ("hints", "minimal", ("c", "o")),
    ("rev_ops", "i+r", ("i", "r")),
]
COPY_FAMILY = ("copy", "reverse", "repeat", "copy_twice", "replace", "reverse_copy")
STEP_TASKS = ("addition", "multiplication", "sort", "sort_multi", "polynomial", "summation", "parity")
FORMAT_TASKS = ("addition", "multiplication", "sort_multi")


def _spec_id(spec) -> str:
    return spec if isinstance(spec, str) else "+".join(spec)


def _cases() -> list[Case]:
    cases = [Case(n, load_cfg(n)) for n in COPY_FAMILY]
    cases += [
        Case("copy-list_vocab", load_cfg("copy", symbols=["x", "y", "z", "w"])),
        Case("reverse-100_symbols", load_cfg("reverse", symbols=100)),
        Case("replace-c_to_Z", load_cfg("replace", replace_from="c", replace_to="Z")),
        Case("passkey", load_cfg("passkey")),
        Case("passkey-9digits", load_cfg("passkey", key_digits=9, depths=[0.1, 0.33, 0.9])),
    ]
    for n in STEP_TASKS:
        for spec, parts in FOUR_PARTS if n in ("summation", "parity") else FIVE_PARTS:
            cases.append(Case(f"{n}-sp_{_spec_id(spec)}", load_cfg(n, scratchpad=spec), parts))
    for n in FORMAT_TASKS:
        for fid, fmt in NUMBER_FORMATS.items():
            cases.append(Case(f"{n}-fmt_{fid}", load_cfg(n, fmt=fmt)))
        for fid, spec, parts in FORMAT_WITH_STEPS:
            cfg = load_cfg(n, fmt=NUMBER_FORMATS[fid], scratchpad=spec)
            cases.append(Case(f"{n}-fmt_{fid}-sp_{spec}", cfg, parts))
    cases += [
        Case("addition-equal-full", load_cfg("addition", operand_lengths="equal", scratchpad="full"),
             CANONICAL),
        Case("addition-min3-full", load_cfg("addition", min_digits=3, scratchpad="full"), CANONICAL),
        Case("multiplication-b2to6-full", load_cfg("multiplication", b_min_digits=2, b_max_digits=6,
                                                    scratchpad="full"), CANONICAL),
        Case("sort_multi-1to6-full", load_cfg("sort_multi", min_digits=1, max_digits=6, scratchpad="full"),
             CANONICAL),
    ]
    return cases


CASES = _cases()


def test_every_registered_task_has_cases():
    assert set(TASKS) == {c.cfg["name"] for c in CASES}
    assert set(TASKS) == set(ORACLES)


# -- number formats, read and written from their definition ------------------------------------------------


@dataclass
class Ctx:
    """What an oracle knows about the case (read from the config, not from the task) plus running stats."""

    cfg: dict
    rev_ops: bool = False
    rev_ans: bool = False
    pad: int = 0
    spaces: float = 0.0
    hints: bool = False
    stats: dict = field(default_factory=dict)

    @classmethod
    def of(cls, cfg: dict) -> Ctx:
        f = cfg.get("format") or {}
        return cls(cfg, bool(f.get("reverse_operands")), bool(f.get("reverse_answer")),
                   int(f.get("pad_width") or 0),
                   float(f.get("random_spaces") or 0.0), bool(f.get("index_hints")))

    def add(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n


def read_operand(ctx: Ctx, syms: Sequence[str], what: str) -> int:
    """The value of a written operand; checks spaces, hints, digit order and padding on the way."""
    places: list[int | None] = []
    digits: list[int] = []
    i, n = 0, len(syms)
    while i < n:
        if places:  # between two digit units: maybe one random space
            ctx.add("gaps")
            if syms[i] == "_":
                assert ctx.spaces > 0, f"space in {what} but random_spaces is off: {syms}"
                ctx.add("spaces")
                i += 1
            assert i < n, f"{what} ends with a space: {syms}"
        if ctx.hints:
            ok = i + 1 < n and HINT.fullmatch(syms[i]) and syms[i + 1] in DIGITS
            assert ok, f"{what}: bad unit at {i}: {syms}"
            places.append(int(syms[i][1:]))
            digits.append(int(syms[i + 1]))
            i += 2
        else:
            assert syms[i] in DIGITS, f"{what}: {syms[i]!r} is not a digit: {syms}"
            places.append(None)
            digits.append(int(syms[i]))
            i += 1
    assert digits, f"{what} is empty"
    k = len(digits)
    lsb_first = ctx.rev_ops
    if ctx.hints:  # each hint names its digit's place; they must count down (or up when reversed)
        want = list(range(k)) if lsb_first else list(range(k - 1, -1, -1))
        assert places == want, f"{what}: hint places {places}, expected {want}"
        value = sum(d * 10**p for p, d in zip(places, digits))
    else:
        value = 0
        for d in reversed(digits) if lsb_first else digits:
            value = 10 * value + d
    written = max(ctx.pad, len(str(value)))
    assert k == written, f"{what}: {k} digits written for {value} (pad_width={ctx.pad}): {syms}"
    return value


def write_answer(ctx: Ctx, value: int, width: int) -> list[str]:
    """An answer number: zero-padded to ``width`` when padding is on, hints and order as configured."""
    n = max(len(str(value)), width if ctx.pad else 0)
    place_digit = {p: (value // 10**p) % 10 for p in range(n)}
    out: list[str] = []
    for p in range(n) if ctx.rev_ans else range(n - 1, -1, -1):
        if ctx.hints:
            out.append(f"h{p}")
        out.append(str(place_digit[p]))
    return out


def split_at(syms: Sequence[str], sep: str) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    for s in syms:
        if s == sep:
            chunks.append([])
        else:
            chunks[-1].append(s)
    return chunks


def chars(x: int | str) -> tuple[str, ...]:
    return tuple(str(x))


# -- oracles: (ctx, prompt, length, extra) -> (steps or None, answer) ---------------------------------------

Steps = list[dict[str, tuple[str, ...]]]
Oracle = Callable[[Ctx, tuple, int, dict], tuple[Steps | None, Sequence[str]]]


def _vocab(spec) -> tuple[str, ...]:
    if isinstance(spec, int):
        letters = string.ascii_lowercase + string.ascii_uppercase
        return tuple(letters[:spec]) if spec <= len(letters) else tuple(f"s{k}" for k in range(spec))
    return tuple(map(str, spec))


def copy_family(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    name = ctx.cfg["name"]
    vocab = _vocab(ctx.cfg["symbols"])
    assert len(prompt) == length, f"{len(prompt)} symbols for length {length}"
    assert set(prompt) <= set(vocab), f"symbols outside the vocabulary: {set(prompt) - set(vocab)}"
    for s in prompt:
        ctx.stats.setdefault("seen", set()).add(s)
    if name == "copy":
        return None, prompt
    if name == "reverse":
        return None, prompt[::-1]
    if name == "repeat":
        assert len(set(prompt)) == 1, "repeat: the prompt is not one symbol repeated"
        return None, prompt
    if name == "copy_twice":
        return None, prompt + prompt
    if name == "reverse_copy":
        return None, prompt[::-1] + prompt
    assert name == "replace"
    src = ctx.cfg.get("replace_from") or vocab[0]
    dst = ctx.cfg.get("replace_to") or vocab[1]
    if dst not in vocab:
        assert dst not in prompt, "replace: the replacement symbol appears in the prompt"
    return None, tuple(dst if s == src else s for s in prompt)


def _operands(ctx: Ctx, prompt: tuple, op: str) -> tuple[int, int]:
    chunks = split_at(prompt, op)
    assert len(chunks) == 2, f"expected exactly one {op!r}"
    return read_operand(ctx, chunks[0], "a"), read_operand(ctx, chunks[1], "b")


def addition(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    a, b = _operands(ctx, prompt, "+")
    la, lb = len(str(a)), len(str(b))
    assert (extra.get("len_a"), extra.get("len_b")) == (la, lb), f"extra {extra} vs lengths {(la, lb)}"
    assert max(la, lb) == length, f"longer operand has {max(la, lb)} digits, length {length}"
    assert min(la, lb) >= min(int(ctx.cfg.get("min_digits", 1)), length)
    if ctx.cfg.get("operand_lengths") == "equal":
        assert la == lb
    ctx.add("a_longer", la > lb)
    ctx.add("b_longer", lb > la)
    s = a + b
    steps = []
    for k in range(max(la, lb)):
        x, y = a // 10**k % 10, b // 10**k % 10
        carry_in = (a % 10**k + b % 10**k) // 10**k
        carry_out = (a % 10 ** (k + 1) + b % 10 ** (k + 1)) // 10 ** (k + 1)
        rest_a = chars(a // 10 ** (k + 1)) if la > k + 1 else ()
        rest_b = chars(b // 10 ** (k + 1)) if lb > k + 1 else ()
        steps.append({
            "i": (str(x), str(y)),
            "c": (str(x), "+", str(y), "+", str(carry_in)),
            "o": chars(s // 10**k % 10),
            "v": chars(carry_out),
            "r": (*rest_a, "+", *rest_b) if rest_a or rest_b else (),
        })
    return steps, write_answer(ctx, s, ctx.pad + 1)


def multiplication(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    a, b = _operands(ctx, prompt, "*")
    la, lb = len(str(a)), len(str(b))
    assert (extra.get("len_a"), extra.get("len_b")) == (la, lb), f"extra {extra} vs lengths {(la, lb)}"
    assert la == length, f"a has {la} digits, length {length}"
    assert int(ctx.cfg["b_min_digits"]) <= lb <= int(ctx.cfg["b_max_digits"]), f"b has {lb} digits"
    steps = []
    for j in range(lb):
        d = b // 10**j % 10
        steps.append({
            "i": chars(d),
            "c": (*chars(a), "*", str(d), *("0",) * j),
            "o": chars(a * d * 10**j),
            "v": chars(a * (b % 10 ** (j + 1))),
            "r": chars(b // 10 ** (j + 1)) if lb > j + 1 else (),
        })
    return steps, write_answer(ctx, a * b, 2 * ctx.pad)


def _selection_steps(values: list[int], show: Callable[[list[int]], tuple[str, ...]]) -> Steps:
    """Selection sort as seen from a stable sort: pick k is the k-th index of the stable order."""
    n = len(values)
    order = sorted(range(n), key=lambda i: (values[i], i))
    steps = []
    for k, pick in enumerate(order):
        taken = set(order[:k])
        left = [i for i in range(n) if i not in taken]
        steps.append({
            "i": show(left),
            "c": chars(left.index(pick)),
            "o": show([pick]),
            "v": chars(k + 1),
            "r": show([i for i in left if i != pick]),
        })
    return steps


def sort_digits(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    assert len(prompt) == length and all(s in DIGITS for s in prompt), "sort: prompt is not `length` digits"
    values = [int(s) for s in prompt]
    steps = _selection_steps(values, lambda idx: tuple(prompt[i] for i in idx))
    return steps, [str(v) for v in sorted(values)]


def sort_multi(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    chunks = split_at(prompt, ",")
    assert len(chunks) == length, f"{len(chunks)} items for length {length}"
    values = [read_operand(ctx, c, f"item {k}") for k, c in enumerate(chunks)]
    lo, hi = int(ctx.cfg["min_digits"]), int(ctx.cfg["max_digits"])
    for v in values:
        assert lo <= len(str(v)) <= hi, f"item {v} has {len(str(v))} digits, allowed {lo}..{hi}"
        ctx.add(f"digits{len(str(v))}")

    def show(idx: list[int]) -> tuple[str, ...]:  # steps list items plainly: digits, most significant first
        return tuple(",".join(str(values[i]) for i in idx)) if idx else ()

    steps = _selection_steps(values, show)
    answer: list[str] = []
    for k, v in enumerate(sorted(values)):
        answer += [","] * (k > 0) + write_answer(ctx, v, ctx.pad)
    return steps, answer


def running(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    parity = ctx.cfg["name"] == "parity"
    alphabet, m = (("0", "1"), 2) if parity else (DIGITS, 10)
    assert len(prompt) == length and all(s in alphabet for s in prompt), f"not {length} of {alphabet}"
    prefix = np.cumsum([int(s) for s in prompt]).tolist()
    steps = [
        {
            "i": (x,),
            "c": (str(prefix[k - 1] % m if k else 0), "+", x),
            "o": chars(prefix[k] % m),
            "r": tuple(prompt[k + 1 :]),
        }
        for k, x in enumerate(prompt)
    ]
    answer = str(prompt.count("1") % 2) if parity else str(sum(map(int, prompt)) % 10)
    return steps, [answer]


def polynomial(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    assert len(prompt) >= 2 and prompt[-2] == "@" and prompt[-1] in DIGITS, "prompt must end with `@ x`"
    x = int(prompt[-1])
    body = prompt[:-2]
    plus = [i for i, s in enumerate(body) if s == "+"]
    terms = split_at(body, "+")
    assert len(terms) == length, f"{len(terms)} terms for length {length}"
    steps = []
    total = 0  # the exact integer value of the polynomial so far
    for k, t in enumerate(terms):
        ok = len(t) >= 4 and t[0] in DIGITS and t[1:3] == ["x", "^"] and "".join(t[3:]) == str(k)
        assert ok, f"term {k} is not `c x ^ {k}`: {t}"
        c = int(t[0])
        xk = x**k  # 0 ** 0 == 1: the constant term
        total += c * xk
        steps.append({
            "i": tuple(t),
            "c": (t[0], "*", str(xk % 10)),
            "o": chars(c * xk % 10),
            "v": chars(total % 10),
            "r": tuple(body[plus[k] + 1 :]) if k < len(plus) else (),
        })
    return steps, [str(total % 10)]


def passkey(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    kd = int(ctx.cfg.get("key_digits", 5))
    depths = ctx.cfg.get("depths") or [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(prompt) == length, f"{len(prompt)} tokens for length {length}"
    assert prompt[-len(QUESTION) :] == QUESTION, "the prompt does not end with the question"
    heads = [i for i in range(len(prompt) - 3) if prompt[i : i + 4] == NEEDLE_HEAD]
    assert len(heads) == 1, f"{len(heads)} needles"
    at = heads[0]
    j = at + len(NEEDLE_HEAD)
    key = []
    while prompt[j] in DIGITS:
        key.append(prompt[j])
        j += 1
    assert len(key) == kd, f"key of {len(key)} digits, key_digits={kd}"
    assert prompt[j : j + len(NEEDLE_TAIL)] == NEEDLE_TAIL, "needle tail missing"
    filler = prompt[:at] + prompt[j + len(NEEDLE_TAIL) : -len(QUESTION)]
    n_filler = length - len(NEEDLE_HEAD) - kd - len(NEEDLE_TAIL) - len(QUESTION)
    assert len(filler) == n_filler
    assert not any(s in DIGITS for s in filler), "digits in the filler"
    if filler:  # a window of the repeated filler text
        period = len(FILLER_TEXT)
        starts = [o for o in range(period) if FILLER_TEXT[o] == filler[0]]
        ok = any(all(FILLER_TEXT[(o + t) % period] == w for t, w in enumerate(filler)) for o in starts)
        assert ok, "the filler is not a window of the repeated filler text"
    depth = extra.get("depth")
    assert depth in depths, f"depth {depth} not in {depths}"
    assert at == round(depth * n_filler), f"needle after {at} filler tokens, depth {depth} of {n_filler}"
    ctx.stats.setdefault("depths", set()).add(depth)
    return None, tuple(key)


ORACLES: dict[str, Oracle] = {
    **dict.fromkeys(COPY_FAMILY, copy_family),
    "addition": addition,
    "multiplication": multiplication,
    "sort": sort_digits,
    "sort_multi": sort_multi,
    "summation": running,
    "parity": running,
    "polynomial": polynomial,
    "passkey": passkey,
}


# -- issue 17: LEGO, SCAN, PCFG SET, the Chomsky-hierarchy tasks, RULER retrieval ----------------------------
#
# Each solver below is written from the task's published definition (cited per block), reads the prompt
# with its own parser and checks the prompt's shape on the way (lengths, alphabets, the split's
# conventions); where the task's code simulates, the solver uses another route (a closed formula, Python's
# own expression evaluator, a left-to-right parser against the task's right-to-left one, integer bisection
# for square roots, the chain walked from its root).

CHOMSKY = ("even_pairs", "parity_check", "cycle_navigation", "modular_arithmetic", "modular_arithmetic_brackets",
           "solve_equation", "reverse_string", "stack_manipulation", "duplicate_string", "missing_duplicate_string",
           "odds_first", "binary_addition", "binary_multiplication", "compute_sqrt", "bucket_sort")
RULER = ("niah_multikey", "niah_multivalue", "variable_tracking")
SCAN_KAZEMNEJAD = [*range(1, 23), 24, 25]


def _new_cases() -> list[Case]:
    cases = [Case(n, load_cfg(n)) for n in (*CHOMSKY, "lego", "scan", "pcfg", *RULER)]
    cases += [
        Case("modular_arithmetic-mod7-plusminus", load_cfg("modular_arithmetic", modulus=7, operators=["+", "-"])),
        Case("modular_arithmetic_brackets-no_mult", load_cfg("modular_arithmetic_brackets", mult=False)),
        Case("solve_equation-mod7", load_cfg("solve_equation", modulus=7)),
        Case("cycle_navigation-7", load_cfg("cycle_navigation", cycle_length=7)),
        Case("bucket_sort-vocab3", load_cfg("bucket_sort", vocab_size=3)),
        Case("duplicate_string-vocab4", load_cfg("duplicate_string", vocab_size=4)),
        Case("odds_first-vocab3", load_cfg("odds_first", vocab_size=3)),
        Case("reverse_string-vocab5", load_cfg("reverse_string", vocab_size=5)),
        Case("lego-ordered-one", load_cfg("lego", shuffle=False, query="one")),
        Case("lego-shuffled-one-52vars", load_cfg("lego", query="one", variables=52, train_max=30, eval_max=52)),
        Case("lego-ordered-all-list", load_cfg("lego", shuffle=False, variables=list("pqrstuvwxyz"), eval_max=11)),
        Case("scan-kazemnejad", load_cfg("scan", train_lengths=SCAN_KAZEMNEJAD)),
        Case("pcfg-flat", load_cfg("pcfg", p_unary=0.4, p_function=0.6, max_target=200)),
        Case("niah_multikey-8keys-3digits", load_cfg("niah_multikey", keys=8, value_digits=3, depths=[0.1, 0.9],
                                                     train_min=96, eval_lengths=[96, 300, 700])),
        Case("niah_multikey-1key", load_cfg("niah_multikey", keys=1, key_pool=3)),
        Case("niah_multivalue-2values", load_cfg("niah_multivalue", values=2, value_digits=4)),
        Case("variable_tracking-3chains-2hops", load_cfg("variable_tracking", chains=3, hops=2, train_min=80,
                                                         eval_lengths=[80, 100, 300])),
        Case("variable_tracking-1hop-depth0", load_cfg("variable_tracking", hops=1, depths=[0.0])),
    ]
    return cases


CASES += _new_cases()

# -- the Chomsky hierarchy (Delétang et al. 2023, Appendix A and the released generators) -------------------

BIT = ("0", "1")


def _bits_of(ctx: Ctx, prompt: tuple, alphabet: Sequence[str]) -> None:
    assert all(s in alphabet for s in prompt), f"symbols outside {alphabet}"
    for s in prompt:
        ctx.stats.setdefault("seen", set()).add(s)


def _le_bits(value: int) -> list[str]:
    """Little-endian binary by repeated halving; 0 is a single 0."""
    out = []
    while True:
        out.append(str(value % 2))
        value //= 2
        if not value:
            return out


def _le_value(bits: Sequence[str]) -> int:
    return sum(2**i for i, b in enumerate(bits) if b == "1")


def _isqrt(n: int) -> int:
    lo, hi = 0, 1 << (n.bit_length() // 2 + 1)  # bisection on r * r <= n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if mid * mid <= n else (lo, mid - 1)
    return lo


def _python_mod(tokens: Sequence[str], m: int) -> int:
    """Python's own evaluator (standard precedence, unary minus) on a digit/operator string."""
    text = "".join(tokens)
    assert re.fullmatch(r"[0-9+\-*()]+", text), text
    return eval(text, {"__builtins__": {}}) % m


def chomsky(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    name, cfg = ctx.cfg["name"], ctx.cfg
    if name in ("even_pairs", "parity_check"):
        assert len(prompt) == length
        _bits_of(ctx, prompt, BIT)
        if name == "even_pairs":  # #01 + #10 is odd exactly when the first and last bit differ
            return None, ["1" if prompt[0] != prompt[-1] else "0"]
        return None, [str(prompt.count("1") % 2)]
    if name == "cycle_navigation":
        assert len(prompt) == length
        _bits_of(ctx, prompt, ("-1", "0", "+1"))
        return None, [str(sum(int(s) for s in prompt) % int(cfg.get("cycle_length", 5)))]
    if name == "modular_arithmetic":
        m = int(cfg.get("modulus", 5))
        ops = cfg.get("operators") or ["+", "-", "*"]
        assert len(prompt) == (length if length % 2 else length - 1), "odd-length expression rule"
        assert all(s in DIGITS[:m] for s in prompt[0::2]) and all(s in ops for s in prompt[1::2])
        _bits_of(ctx, prompt, (*DIGITS[:m], *ops))
        return None, [str(_python_mod(prompt, m))]
    if name == "modular_arithmetic_brackets":
        m = int(cfg.get("modulus", 5))
        ops = ("+", "-", "*") if cfg.get("mult", True) else ("+", "-")
        assert len(prompt) == length
        _bits_of(ctx, prompt, (*DIGITS[:m], *ops, "(", ")"))
        return None, [str(_python_mod(prompt, m))]
    if name == "solve_equation":
        m = int(cfg.get("modulus", 5))
        assert len(prompt) == length
        if length < 3:
            assert set(prompt) == {"0"}
            return None, ["0"]
        assert prompt[-2] == "=" and prompt[-1] in DIGITS[:m] and prompt.count("x") == 1 and "*" not in prompt
        lhs = prompt[:-2]
        _bits_of(ctx, prompt, (*DIGITS[:m], "+", "-", "(", ")", "x", "="))
        text = "".join(lhs)
        assert re.fullmatch(r"[0-9+\-()x]+", text), text
        f = eval(f"lambda x: {text}", {"__builtins__": {}})  # the left-hand side as a function of x
        sols = [d for d in range(m) if f(d) % m == int(prompt[-1])]
        assert len(sols) == 1, f"{len(sols)} solutions"
        return None, [str(sols[0])]
    if name in ("reverse_string", "duplicate_string", "odds_first", "bucket_sort"):
        k = int(cfg.get("vocab_size", 5 if name == "bucket_sort" else 2))
        assert len(prompt) == length
        _bits_of(ctx, prompt, DIGITS[:k])
        if name == "reverse_string":
            return None, prompt[::-1]
        if name == "duplicate_string":
            return None, prompt + prompt
        if name == "odds_first":  # 1-based odd positions s1 s3 ... then s2 s4 ...
            return None, [prompt[i] for i in range(0, length, 2)] + [prompt[i] for i in range(1, length, 2)]
        return None, [str(d) for d in range(k) for _ in range(prompt.count(str(d)))]
    if name == "stack_manipulation":
        assert len(prompt) == length
        _bits_of(ctx, prompt, (*BIT, "pop", "push0", "push1"))
        n_bits = next((i for i, s in enumerate(prompt) if s not in BIT), length)
        assert all(s not in BIT for s in prompt[n_bits:]), "bits after the first action"
        assert n_bits >= 1 and (length == 1 or n_bits <= length - 1), f"{n_bits} stack bits at length {length}"
        stack = list(prompt[:n_bits])
        for act in prompt[n_bits:]:
            stack = stack[:-1] if act == "pop" else [*stack, act[-1]]
        return None, [*stack[::-1], "$"]
    if name == "missing_duplicate_string":
        assert len(prompt) == length
        if length == 1:
            assert prompt == ("1",)
            return None, ["1"]
        body, pad = prompt[: 2 * (length // 2)], prompt[2 * (length // 2) :]
        assert pad == ("#",) * (length % 2) and body.count("_") == 1
        _bits_of(ctx, body, (*BIT, "_"))
        h = length // 2
        i = body.index("_")
        left, right = body[:h], body[h:]
        assert all(a == b for j, (a, b) in enumerate(zip(left, right)) if j != i % h), "halves differ"
        return None, [right[i] if i < h else left[i - h]]
    if name in ("binary_addition", "binary_multiplication"):
        op = "+" if name == "binary_addition" else "*"
        assert len(prompt) == length
        _bits_of(ctx, prompt, (*BIT, op))
        if op not in prompt:
            assert length <= 2, "no operator at length > 2"
            assert _le_value(prompt) <= 2**length - 2
            return None, ([*_le_bits(_le_value(prompt))] if op == "+" else ["0"] * (length - 1)) + ["$"]
        assert prompt.count(op) == 1 and length >= 3
        i = prompt.index(op)
        a, b = prompt[:i], prompt[i + 1 :]
        assert a and b and _le_value(a) >= 1 and _le_value(b) >= 1, "operands are >= 1"
        ctx.add("operand_len", len(a))
        value = _le_value(a) + _le_value(b) if op == "+" else _le_value(a) * _le_value(b)
        return None, [*_le_bits(value), "$"]
    if name == "compute_sqrt":
        assert len(prompt) == length
        _bits_of(ctx, prompt, BIT)
        n = int("".join(prompt), 2)
        assert n >= 1
        root = format(_isqrt(n), "b")
        return None, list("0" * (-(-length // 2) - len(root)) + root)
    raise AssertionError(f"no oracle for {name}")


# -- LEGO (Zhang et al. 2022; query: one after Kazemnejad et al. 2023) -------------------------------------

LEGO_VALUES = {"+1": 1, "-1": -1}


def lego(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    cfg = ctx.cfg
    spec = cfg.get("variables", 26)
    names = set((string.ascii_lowercase + string.ascii_uppercase)[:spec] if isinstance(spec, int) else spec)
    body, asked = list(prompt), None
    if cfg.get("query", "all") == "one":
        assert body[-2] == "?", "query one: the prompt must end with `? v`"
        body, asked = body[:-2], body[-1]
    clauses = split_at(body, ";")
    assert len(clauses) == length, f"{len(clauses)} clauses for length {length}"
    root, parent, sign, const = None, {}, {}, None
    for c in clauses:
        assert c[0] in names and c[1] == "=", f"bad clause {c}"
        if len(c) == 3:
            assert c[2] in LEGO_VALUES and root is None, "exactly one constant clause"
            root, const = c[0], LEGO_VALUES[c[2]]
        else:
            assert len(c) == 4 and c[2] in ("+", "-") and c[3] in names, f"bad clause {c}"
            parent[c[0]], sign[c[0]] = c[3], 1 if c[2] == "+" else -1
    lhs = [c[0] for c in clauses]
    assert len(set(lhs)) == length and root is not None
    child = {p: v for v, p in parent.items()}
    assert len(child) == len(parent), "a variable feeds two others: not a chain"
    chain, value = [root], {root: const}
    while chain[-1] in child:  # walk the chain from its constant
        nxt = child[chain[-1]]
        value[nxt] = value[chain[-1]] * sign[nxt]
        chain.append(nxt)
    assert len(chain) == length, "the clauses do not form one chain"
    ctx.add("in_chain_order", lhs == chain)
    if not cfg.get("shuffle", True):
        assert lhs == chain, "shuffle=false: clauses must be in chain order"
    show = {1: "+1", -1: "-1"}
    if asked is not None:
        pos = chain.index(asked)
        assert pos >= min(-(-length // 2), length - 1), f"asked chain position {pos} is in the first half"
        ctx.stats.setdefault("asked_pos", set()).add((length, pos))
        return None, [show[value[asked]]]
    return None, [s for v in lhs for s in (v, show[value[v]])]


# -- SCAN (Lake & Baroni 2018, the phrase-structure grammar and its interpretation functions) -------------

SCAN_U = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
SCAN_DIR = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}


def _scan_v(words: list[str]) -> list[str]:
    text = " ".join(words)
    m = re.fullmatch(r"(walk|look|run|jump|turn)(?: (opposite|around))? (left|right)", text)
    if m:
        u, mod, d = m.groups()
        unit = [SCAN_DIR[d]] + ([] if u == "turn" else [SCAN_U[u]])
        if mod is None:
            return unit
        if mod == "opposite":
            return [SCAN_DIR[d], *unit]
        return unit * 4
    assert text in SCAN_U, f"not a SCAN verb phrase: {text!r}"
    return [SCAN_U[text]]


def _scan_s(words: list[str]) -> list[str]:
    times = {"twice": 2, "thrice": 3}.get(words[-1])
    return _scan_v(words[:-1]) * times if times else _scan_v(words)


def scan(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    words = list(prompt)
    assert len(words) <= 9
    conj = [w for w in words if w in ("and", "after")]
    assert len(conj) <= 1
    for w in words:
        ctx.stats.setdefault("words", set()).add(w)
    if conj:
        i = words.index(conj[0])
        x1, x2 = _scan_s(words[:i]), _scan_s(words[i + 1 :])
        actions = x1 + x2 if conj[0] == "and" else x2 + x1
    else:
        actions = _scan_s(words)
    assert len(actions) == length, f"{len(actions)} actions for length {length}"
    ctx.stats.setdefault("commands", set()).add(prompt)
    return None, actions


# -- PCFG SET (Hupkes et al. 2020; the function definitions of github.com/MathijsMul/pcfg-set) -------------

PCFG_UNARY = {
    "copy": lambda x: x, "reverse": lambda x: x[::-1], "shift": lambda x: x[1:] + x[:1],
    "echo": lambda x: [*x, x[-1]], "swap_first_last": lambda x: [x[-1], *x[1:-1], x[0]],
    "repeat": lambda x: x + x,
}
PCFG_BINARY = {
    "append": lambda x, y: x + y, "prepend": lambda x, y: y + x,
    "remove_first": lambda x, y: y, "remove_second": lambda x, y: x,
}
PCFG_LETTER = re.compile(r"[A-Z](?:[1-9]|1[0-9]|20)")


def pcfg(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    toks, pos, leaves = list(prompt), 0, []

    def parse() -> list[str]:  # left to right, recursive descent over the prefix notation
        nonlocal pos
        tok = toks[pos]
        if tok in PCFG_UNARY:
            pos += 1
            ctx.add(tok)
            return PCFG_UNARY[tok](parse())
        if tok in PCFG_BINARY:
            pos += 1
            ctx.add(tok)
            first = parse()
            assert toks[pos] == ",", f"expected , at {pos}"
            pos += 1
            return PCFG_BINARY[tok](first, parse())
        start = pos
        while pos < len(toks) and PCFG_LETTER.fullmatch(toks[pos]):
            pos += 1
        leaf = toks[start:pos]
        assert 2 <= len(leaf) <= 5, f"string argument of {len(leaf)} letters"
        ctx.add(f"leaf{len(leaf)}")
        leaves.append(tuple(leaf))
        return list(leaf)

    out = parse()
    assert pos == len(toks), "trailing tokens"
    n_calls = sum(t in PCFG_UNARY or t in PCFG_BINARY for t in toks)
    assert n_calls == length, f"{n_calls} function calls for length {length}"
    assert len(set(leaves)) == len(leaves), "a string argument repeats"
    assert len(out) <= int(ctx.cfg.get("max_target", 1000))
    return None, out


# -- RULER retrieval (Hsieh et al. 2024), needles in the passkey filler --------------------------------------

R_HEAD = ("the", "magic", "number", "for")


def _filler_window(filler: Sequence[str]) -> None:
    if filler:
        period = len(FILLER_TEXT)
        ok = any(all(FILLER_TEXT[(o + t) % period] == w for t, w in enumerate(filler)) for o in range(period))
        assert ok, "the filler is not a window of the repeated filler text"


def _cut(prompt: tuple, start: tuple[str, ...], pattern: re.Pattern, question_len: int):
    """The inserted items (each begins with ``start`` and ends at the next ``.``) with the number of
    filler tokens before each, and the filler tokens left over."""
    body = prompt[: len(prompt) - question_len]
    items, filler, i = [], [], 0
    while i < len(body):
        if body[i : i + len(start)] == start:
            j = body.index(".", i) + 1
            assert pattern.fullmatch(" ".join(body[i:j])), f"malformed insert: {body[i:j]}"
            items.append((len(filler), body[i:j]))
            i = j
        else:
            filler.append(body[i])
            i += 1
    return items, filler


def ruler(ctx: Ctx, prompt: tuple, length: int, extra: dict):
    cfg, name = ctx.cfg, ctx.cfg["name"]
    d = int(cfg.get("value_digits", 5 if name == "variable_tracking" else 7))
    depths = cfg.get("depths") or [0.0, 0.25, 0.5, 0.75, 1.0]
    num = rf"[1-9]( [0-9]){{{d - 1}}}"
    assert len(prompt) == length, f"{len(prompt)} tokens for length {length}"
    depth = extra.get("depth")
    assert depth in depths, f"depth {depth} not in {depths}"
    ctx.stats.setdefault("depths", set()).add(depth)
    if name in ("niah_multikey", "niah_multivalue"):
        ask = ("what", "is", "the", "magic", "number", "for") if name == "niah_multikey" else \
            ("what", "are", "all", "the", "magic", "numbers", "for")
        q = len(ask) + 2
        assert prompt[-q:-2] == ask and prompt[-1] == "?", "question"
        key = prompt[-2]
        items, filler = _cut(prompt, ("the", "magic"), re.compile(rf"the magic number for k\d+ is {num} \."), q)
        keys = [n[4] for _, n in items]
        values = [tuple(n[6:-1]) for _, n in items]
        asked = [k for k, kk in enumerate(keys) if kk == key]
        if name == "niah_multikey":
            assert len(items) == int(cfg.get("keys", 4)) and len(set(keys)) == len(keys), f"keys {keys}"
            (first,) = asked
            answer = list(values[first])
        else:
            assert len(items) == int(cfg.get("values", 4)) and set(keys) == {key}, f"keys {keys}"
            assert len(set(values)) == len(values), "repeated values"
            first = 0
            answer = [s for k, v in enumerate(values) for s in ([","] * (k > 0) + list(v))]
        pool = int(cfg.get("key_pool", 64))
        assert all(int(k[1:]) < pool for k in keys)
        before = items[first][0]
    else:
        hops, chains = int(cfg.get("hops", 4)), int(cfg.get("chains", 1))
        ask = ("find", "all", "variables", "assigned", "the", "value")
        q = len(ask) + d + 1
        assert prompt[-q:-q + len(ask)] == ask and prompt[-1] == "?", "question"
        value = prompt[-d - 1 : -1]
        items, filler = _cut(prompt, ("var",), re.compile(rf"var X\d+ = (?:{num}|var X\d+) \."), q)
        assert len(items) == chains * (hops + 1), f"{len(items)} assignments"
        lhs = [n[1] for _, n in items]
        assert len(set(lhs)) == len(lhs), "a variable is assigned twice"
        source = {n[1]: (tuple(n[3:-1]) if n[3] != "var" else n[4]) for _, n in items}
        roots = [v for v, s in source.items() if isinstance(s, tuple)]
        assert len(roots) == chains and len({source[r] for r in roots}) == chains, "distinct chain values"
        (root,) = [r for r in roots if source[r] == value]
        chain = [root]
        while True:  # walk from the asked value's root: each variable is assigned from the previous one
            nxt = [v for v, s in source.items() if s == chain[-1]]
            assert len(nxt) <= 1
            if not nxt:
                break
            chain.append(nxt[0])
        assert len(chain) == hops + 1
        order = [lhs.index(v) for v in chain]
        assert order == sorted(order), "the chain's assignments are out of order"
        before = items[order[0]][0]
        answer = chain
    n_filler = len(filler)
    _filler_window(filler)
    assert before == round(depth * n_filler), f"asked needle after {before} filler tokens, depth {depth} of {n_filler}"
    return None, answer


ORACLES.update({**dict.fromkeys(CHOMSKY, chomsky), "lego": lego, "scan": scan, "pcfg": pcfg,
                **dict.fromkeys(RULER, ruler)})


def _new_aggregates(case: Case, ctx: Ctx) -> None:
    name, st, cfg = case.cfg["name"], ctx.stats, case.cfg
    alphabet = {"even_pairs": 2, "parity_check": 2, "compute_sqrt": 2, "cycle_navigation": 3}.get(name)
    if name in ("duplicate_string", "reverse_string", "odds_first", "bucket_sort"):
        alphabet = int(cfg.get("vocab_size", 5 if name == "bucket_sort" else 2))
    if alphabet:
        assert len(st["seen"]) == alphabet, f"input symbols drawn: {sorted(st['seen'])}"
    if name == "modular_arithmetic_brackets":
        assert ("*" in st["seen"]) == bool(cfg.get("mult", True)) and {"+", "-", "(", ")"} <= st["seen"]
    if name in ("binary_addition", "binary_multiplication"):
        assert st["operand_len"] > 0 and {"+" if name == "binary_addition" else "*", "0", "1"} <= st["seen"]
    if name == "lego":
        ordered = st.get("in_chain_order", 0)
        if cfg.get("shuffle", True):
            assert ordered < N // 4, f"shuffle=true but {ordered} of {N} prompts are in chain order"
        if cfg.get("query") == "one":
            assert len({p for _, p in st["asked_pos"]}) > 5, "the asked variable is not spread over the chain"
    if name == "scan":
        assert st["words"] == {*SCAN_U, "turn", "left", "right", "opposite", "around", "twice", "thrice", "and",
                               "after"}
        assert len(st["commands"]) > N * 0.6, f"only {len(st['commands'])} distinct commands"
    if name == "pcfg":
        assert all(st.get(f, 0) > 0 for f in (*PCFG_UNARY, *PCFG_BINARY)), st
        assert all(st.get(f"leaf{k}", 0) > N // 20 for k in range(2, 6)), st
    if name in RULER:
        assert st["depths"] == set(cfg.get("depths") or [0.0, 0.25, 0.5, 0.75, 1.0])


# -- the test ----------------------------------------------------------------------------------------------


def render(parts: tuple[str, ...], steps: Steps | None, answer: Sequence[str]) -> tuple[str, ...]:
    if not parts:
        return tuple(answer)
    out: list[str] = []
    for step in steps or ():
        for p in parts:
            out += [TAGS[p], *step[p]]
        out.append("|")
    return (*out, "=", *answer)


def _show(seq: Sequence[str], limit: int = 300) -> str:
    text = " ".join(seq)
    return text if len(text) <= limit else text[:limit] + " ..."


def _mismatch(expected: tuple, got: tuple) -> str:
    exp, out = split_at(expected, "|"), split_at(got, "|")
    if len(exp) > 1 or len(out) > 1:
        for k, (e, g) in enumerate(zip(exp, out)):
            if e != g:
                last = k == len(exp) - 1 or k == len(out) - 1
                what = "answer part" if last else f"step {k}"
                return f"{what} differs:\n  expected {_show(e)}\n  got      {_show(g)}"
        return f"{len(exp) - 1} steps expected, {len(out) - 1} generated"
    return f"\n  expected {_show(expected)}\n  got      {_show(got)}"


def _aggregate_checks(case: Case, ctx: Ctx) -> None:
    name, st = case.cfg["name"], ctx.stats
    if ctx.spaces:
        rate = st.get("spaces", 0) / max(st.get("gaps", 0), 1)
        assert st.get("gaps", 0) > 500, f"only {st.get('gaps', 0)} gaps between operand digits"
        assert abs(rate - ctx.spaces) < 0.05, f"space rate {rate:.3f}, random_spaces={ctx.spaces}"
    if name == "addition" and case.cfg.get("operand_lengths") != "equal":
        assert st["a_longer"] > N // 5 and st["b_longer"] > N // 5, f"operand order not random: {st}"
    if name == "sort_multi":
        lo, hi = int(case.cfg["min_digits"]), int(case.cfg["max_digits"])
        assert all(st.get(f"digits{d}", 0) > 0 for d in range(lo, hi + 1)), f"item sizes not spread: {st}"
    if name == "passkey":
        assert st["depths"] == set(case.cfg.get("depths") or [0.0, 0.25, 0.5, 0.75, 1.0])
    if name in COPY_FAMILY:
        vocab = set(_vocab(case.cfg["symbols"]))
        need = len(vocab) if name != "repeat" else min(len(vocab), 150)  # repeat draws one symbol per example
        assert len(st["seen"]) >= need, f"only {len(st['seen'])} of {len(vocab)} symbols drawn"
    _new_aggregates(case, ctx)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.cid) for c in CASES])
def test_task_against_independent_oracle(case: Case):
    task = build_task(case.cfg)
    vocab = set(task.symbols)
    ctx = Ctx.of(case.cfg)
    oracle = ORACLES[case.cfg["name"]]
    lengths = lengths_for(case.cfg)
    rng = np.random.default_rng(zlib.crc32(case.cid.encode()))
    for k in range(N):
        length = lengths[k % len(lengths)]
        ex = task.example(rng, length)
        where = f"[{case.cid}] example {k}, length {length}, prompt: {_show(ex.prompt)}"
        assert ex.length == length, where
        try:
            steps, answer = oracle(ctx, tuple(ex.prompt), length, dict(ex.extra))
        except AssertionError as err:
            raise AssertionError(f"{where}\n  bad prompt: {err}") from None
        expected = render(case.parts, steps, answer)
        if tuple(ex.target) != expected:
            pytest.fail(f"{where}\n  target {_mismatch(expected, tuple(ex.target))}")
        assert tuple(ex.answer) == tuple(answer), f"{where}\n  answer_len marks {ex.answer}, not {answer}"
        assert set(ex.prompt) <= vocab and set(ex.target) <= vocab, f"{where}\n  symbols outside task.symbols"
    _aggregate_checks(case, ctx)
