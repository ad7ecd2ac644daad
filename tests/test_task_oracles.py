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
