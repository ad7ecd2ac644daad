"""The scratchpad renderer and its parser: round trip, gold scores 1.0, corrupted steps located."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import yaml

import lengen.conf
from lengen.tasks import build_task
from lengen.tasks.scratchpad import ANSWER, PARTS, STEP_END, TAGS, Scratchpad, parse_spec

SUBSETS = [c for r in range(1, 6) for c in itertools.combinations(PARTS, r)]


def random_steps(rng, n_steps):
    alphabet = [str(d) for d in range(10)] + ["+", "*", ","]
    return [
        {p: tuple(alphabet[i] for i in rng.integers(0, len(alphabet), size=int(rng.integers(0, 5)))) for p in PARTS}
        for _ in range(n_steps)
    ]


@pytest.mark.parametrize("parts", SUBSETS, ids=["".join(s) for s in SUBSETS])
def test_round_trip_every_subset(parts):
    pad = Scratchpad(parts)
    rng = np.random.default_rng(len(parts))
    for _ in range(50):
        steps = random_steps(rng, int(rng.integers(0, 7)))
        answer = tuple(str(d) for d in rng.integers(0, 10, size=int(rng.integers(1, 6))))
        target, answer_len = pad.render(steps, answer)
        assert answer_len == len(answer) and target[-answer_len:] == answer
        parsed, got = pad.parse(target)
        assert got == answer
        assert parsed == [{p: s[p] for p in parts} for s in steps]
        score = pad.score(target, target)
        assert score == {"steps_total": len(steps), "steps_correct": len(steps), "first_wrong_step": -1,
                         "answer_correct": 1}
        assert pad.answer_from(target) == answer


def test_no_scratchpad_is_just_the_answer():
    pad = Scratchpad(())
    assert pad.render(None, ("1", "2")) == (("1", "2"), 2)
    assert pad.answer_from(("1", "2")) == ("1", "2")
    assert pad.score(("1",), ("2",)) == {}
    assert pad.symbols == ()


def _addition(sp):
    cfg = yaml.safe_load((Path(lengen.conf.__file__).parent / "task" / "addition.yaml").read_text())
    return build_task({**cfg, "scratchpad": sp})


def test_gold_scores_one_on_real_tasks_and_errors_are_located():
    task = _addition("full")
    rng = np.random.default_rng(3)
    for _ in range(200):
        ex = task.example(rng, int(rng.integers(2, 12)))
        gold = ex.target
        steps, answer = task.scratchpad.parse(gold)
        n = len(steps)
        assert task.score_steps(gold, gold)["steps_correct"] == n
        ends = [i for i, s in enumerate(gold) if s == STEP_END]
        # Drop step k entirely: every later step shifts, so k is the first wrong one.
        k = int(rng.integers(0, n))
        start = 0 if k == 0 else ends[k - 1] + 1
        dropped = gold[:start] + gold[ends[k] + 1 :]
        s = task.score_steps(dropped, gold)
        assert s["first_wrong_step"] == k and s["steps_total"] == n and s["answer_correct"] == 1
        # A wrong final answer with every step right.
        wrong = (*gold[:-1], "9" if gold[-1] != "9" else "8")
        s = task.score_steps(wrong, gold)
        assert s["steps_correct"] == n and s["first_wrong_step"] == -1 and s["answer_correct"] == 0
        # An extra step after the last one.
        extra = (*gold[: ends[-1] + 1], TAGS["i"], "1", STEP_END, *gold[ends[-1] + 1 :])
        s = task.score_steps(extra, gold)
        assert s["steps_correct"] == n and s["first_wrong_step"] == n
        # No answer marker: no answer extracted.
        assert task.answer_from(gold[: ends[-1] + 1]) == ()
        assert task.answer_from(gold) == answer == ex.answer


def test_parser_never_fails_on_garbage():
    pad = Scratchpad(PARTS)
    vocab = [*TAGS.values(), STEP_END, ANSWER, "1", "2", "+"]
    rng = np.random.default_rng(0)
    gold = pad.render([{p: ("1",) for p in PARTS}] * 3, ("3",))[0]
    for _ in range(500):
        junk = [vocab[i] for i in rng.integers(0, len(vocab), size=int(rng.integers(0, 30)))]
        s = pad.score(junk, gold)
        assert 0 <= s["steps_correct"] <= 3 and s["steps_total"] == 3
        if s["steps_correct"] < 3:
            assert 0 <= s["first_wrong_step"] < 3
    # Symbols before any tag, and a repeated tag, make a step wrong.
    bad = ("1", *gold)
    assert pad.score(bad, gold)["first_wrong_step"] == 0
    i = gold.index(TAGS["c"])
    twice = (*gold[:i], TAGS["i"], *gold[i:])
    assert pad.score(twice, gold)["first_wrong_step"] == 0


def test_presets_and_subsets_from_the_command_line_forms():
    full = ("i", "c", "o", "v", "r")
    assert parse_spec("full", full, "t") == full
    assert parse_spec("minimal", full, "t") == ("c", "o")
    for p in full:
        assert parse_spec(f"full-minus-{p}", full, "t") == tuple(x for x in full if x != p)
    assert parse_spec(["r", "i"], full, "t") == ("i", "r")
    assert parse_spec("r,i", full, "t") == ("i", "r") == parse_spec("i+r", full, "t")
    assert parse_spec("none", full, "t") == () == parse_spec(None, full, "t")
