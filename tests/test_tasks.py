"""Every task against its oracle on >= 1,000 generated examples, plus independent checks of what
the answer means, determinism and bad-config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import lengen.conf
from lengen.data.tokenizer import Tokenizer
from lengen.tasks import TASKS, TaskConfigError, build_task
from lengen.tasks.scratchpad import PARTS, StepTask

N = 1000
TASK_DIR = Path(lengen.conf.__file__).parent / "task"
STEP_TASKS = ("addition", "multiplication", "summation", "parity", "polynomial", "sort", "sort_multi")
FORMAT_TASKS = ("addition", "multiplication", "sort_multi")
FORMATS = {
    "rev_ops": {"reverse_operands": True},
    "rev_ans": {"reverse_answer": True},
    "pad": {"pad_width": 12},
    "spaces": {"random_spaces": 0.3},
    "hints": {"index_hints": True},
    "all": {"reverse_operands": True, "reverse_answer": True, "pad_width": 10, "random_spaces": 0.5, "index_hints": True},
}


def conf(name: str, **over) -> dict:
    cfg = yaml.safe_load((TASK_DIR / f"{name}.yaml").read_text())
    cfg.update(over)
    return cfg


def lengths_of(cfg: dict) -> list[int]:
    if cfg.get("eval_lengths"):
        return [x for x in cfg["eval_lengths"] if x <= 512]
    return list(range(cfg["train_min"], cfg["eval_max"] + 1))


def draw(task, lengths, n=N, seed=0):
    rng = np.random.default_rng(seed)
    return [task.example(rng, lengths[k % len(lengths)]) for k in range(n)]


def check_oracle(cfg: dict, n: int = N) -> list:
    task = build_task(cfg)
    tok = Tokenizer(task.symbols)
    lengths = lengths_of(cfg)
    examples = draw(task, lengths, n)
    for ex in examples:
        assert task.solve(ex.prompt) == ex.target, (ex.prompt, ex.target)
        tok.encode(ex.prompt), tok.encode(ex.target)  # every symbol is in the vocabulary
        assert ex.length in lengths
        assert task.answer_from(ex.target) == ex.answer
        for k in task.group_keys:
            assert k in ex.extra
        steps = task.score_steps(ex.target, ex.target)
        if steps:
            assert steps["steps_correct"] == steps["steps_total"] > 0
            assert steps["first_wrong_step"] == -1 and steps["answer_correct"] == 1
    assert len({ex.prompt for ex in examples}) > n // 2 or cfg["name"] in ("repeat", "parity")
    return examples


ORACLE_CASES = [pytest.param(conf(n), id=n) for n in sorted(p.stem for p in TASK_DIR.glob("*.yaml"))]
ORACLE_CASES += [
    pytest.param(conf(n, scratchpad=sp), id=f"{n}-{sp if isinstance(sp, str) else '+'.join(sp)}")
    for n in STEP_TASKS
    for sp in ["full", "minimal", ["v"] if n not in ("summation", "parity") else ["r"],
               *(f"full-minus-{p}" for p in TASKS[n].parts)]
]
ORACLE_CASES += [
    pytest.param(conf(n, format=f, scratchpad=sp), id=f"{n}-{fid}-{sp}")
    for n in FORMAT_TASKS
    for fid, f in FORMATS.items()
    for sp in (["none", "full"] if fid == "all" else ["none"])
]


@pytest.mark.parametrize("cfg", ORACLE_CASES)
def test_oracle(cfg):
    check_oracle(cfg)


def test_every_task_has_a_config():
    assert set(TASKS) <= {p.stem for p in TASK_DIR.glob("*.yaml")}
    for p in TASK_DIR.glob("*.yaml"):
        cfg = yaml.safe_load(p.read_text())
        assert cfg["name"] == p.stem
        for key in ("train_min", "train_max", "eval_max", "eval_lengths"):
            assert key in cfg, (p.name, key)


# -- what the answers mean (independent of each task's own solve) ------------------------------


def _number(symbols) -> int:
    return int("".join(symbols))


def test_addition_meaning_and_ood_operands():
    cfg = conf("addition")
    task = build_task(cfg)
    examples = draw(task, list(range(1, 17)), 2000)
    longer_first = 0
    for ex in examples:
        i = ex.prompt.index("+")
        a, b = ex.prompt[:i], ex.prompt[i + 1 :]
        assert _number(ex.target) == _number(a) + _number(b)
        assert (len(a), len(b)) == (ex.extra["len_a"], ex.extra["len_b"])
        assert max(len(a), len(b)) == ex.length  # eval length > train_max: one operand longer than any seen
        assert min(len(a), len(b)) >= 1
        for x in (a, b):
            assert len(x) == 1 or x[0] != "0"
        longer_first += len(a) > len(b)
    assert 500 < longer_first < 1000  # the long operand is a or b at random
    assert len({(ex.extra["len_a"], ex.extra["len_b"]) for ex in examples if ex.length == 12}) > 10


def test_addition_scratchpad_outputs_spell_the_answer():
    task = build_task(conf("addition", scratchpad="full"))
    for ex in draw(task, list(range(1, 13)), 300):
        steps, answer = task.scratchpad.parse(ex.target)
        digits = "".join(s["o"][0] for s in steps)[::-1]
        carry = steps[-1]["v"][0]
        assert ((carry + digits).lstrip("0") or "0") == "".join(answer)
        assert len(steps) == ex.length


def test_multiplication_meaning():
    task = build_task(conf("multiplication", b_min_digits=2, b_max_digits=4))
    for ex in draw(task, list(range(1, 17)), 1000):
        i = ex.prompt.index("*")
        a, b = ex.prompt[:i], ex.prompt[i + 1 :]
        assert len(a) == ex.length == ex.extra["len_a"] and 2 <= len(b) == ex.extra["len_b"] <= 4
        assert _number(ex.target) == _number(a) * _number(b)


@pytest.mark.parametrize("fid", list(FORMATS))
def test_formats_describe_the_same_numbers(fid):
    """A formatted example holds the same sum as the plain one drawn from the same values."""
    fmt = FORMATS[fid]
    task = build_task(conf("addition", format=fmt))
    plain = build_task(conf("addition"))
    for ex in draw(task, list(range(1, 17)), 300):
        i = ex.prompt.index("+")
        nums = []
        for part, rev in ((ex.prompt[:i], fmt.get("reverse_operands")), (ex.prompt[i + 1 :], fmt.get("reverse_operands")),
                          (ex.target, fmt.get("reverse_answer"))):
            digits = [s for s in part if s.isdigit() and len(s) == 1]
            nums.append(int("".join(digits[::-1] if rev else digits)))
        assert nums[0] + nums[1] == nums[2]
        assert plain.solve([*str(nums[0]), "+", *str(nums[1])]) == tuple(str(nums[2]))


def test_sorting_meaning():
    for name in ("sort", "sort_multi"):
        task = build_task(conf(name))
        for ex in draw(task, list(range(1, 17)), 1000):
            if name == "sort":
                items = list(ex.prompt)
                out = list(ex.target)
            else:
                items = "".join(ex.prompt).split(",")
                out = "".join(ex.target).split(",")
            assert len(items) == ex.length
            assert out == sorted(items, key=int)


def test_running_tasks_meaning():
    for name, fn in (("summation", lambda xs: sum(xs) % 10), ("parity", lambda xs: sum(xs) % 2)):
        task = build_task(conf(name))
        for ex in draw(task, list(range(1, 17)), 1000):
            assert len(ex.prompt) == ex.length
            assert ex.target == (str(fn([int(x) for x in ex.prompt])),)
    assert set(build_task(conf("parity")).symbols) >= {"0", "1"}
    task = build_task(conf("polynomial"))
    for ex in draw(task, list(range(1, 17)), 1000):
        body = " ".join(ex.prompt)
        terms, x = body.split(" @ ")
        value = sum(int(t.split()[0]) * int(x) ** int("".join(t.split()[3:])) for t in terms.split(" + "))
        assert ex.target == (str(value % 10),) and len(terms.split(" + ")) == ex.length


def test_copy_family_meaning():
    vocab = build_task(conf("copy")).symbols
    cases = {
        "copy": lambda p: p,
        "reverse": lambda p: p[::-1],
        "copy_twice": lambda p: p + p,
        "reverse_copy": lambda p: p[::-1] + p,
        "repeat": lambda p: p,
        "replace": lambda p: tuple("b" if s == "a" else s for s in p),
    }
    for name, fn in cases.items():
        task = build_task(conf(name))
        for ex in draw(task, list(range(2, 41)), 1000):
            assert len(ex.prompt) == ex.length and ex.target == fn(ex.prompt)
            if name == "repeat":
                assert len(set(ex.prompt)) == 1
            elif name != "replace":
                assert set(ex.prompt) <= set(vocab)
    task = build_task(conf("replace", replace_from="c", replace_to="Z"))
    assert "Z" in task.symbols
    ex = draw(task, [30], 1)[0]
    assert "c" not in ex.target and ex.target.count("Z") == ex.prompt.count("c")


def test_passkey_depth_and_length():
    task = build_task(conf("passkey", key_digits=7))
    examples = draw(task, [21, 64, 300, 2048], 1000)
    depths = set()
    for ex in examples:
        assert len(ex.prompt) == ex.length and len(ex.target) == 7
        assert ex.prompt[-6:] == ("what", "is", "the", "pass", "key", "?")
        at = next(i for i in range(len(ex.prompt)) if ex.prompt[i : i + 4] == ("the", "pass", "key", "is"))
        assert ex.prompt[at + 4 : at + 11] == ex.target
        n_filler = ex.length - task.min_length()
        assert at == round(ex.extra["depth"] * n_filler)
        depths.add(ex.extra["depth"])
    assert depths == {0.0, 0.25, 0.5, 0.75, 1.0}
    with pytest.raises(TaskConfigError, match="20"):
        task.example(np.random.default_rng(0), 20)


# -- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TASKS))
def test_determinism(name):
    cfg = conf(name, **({"scratchpad": "full"} if name in STEP_TASKS else {}))
    if name in FORMAT_TASKS:
        cfg["format"] = FORMATS["all"]
    lengths = lengths_of(cfg)
    a = draw(build_task(cfg), lengths, 200, seed=5)
    b = draw(build_task(cfg), lengths, 200, seed=5)
    c = draw(build_task(cfg), lengths, 200, seed=6)
    assert a == b
    assert [x.prompt for x in a] != [x.prompt for x in c]


# -- scratchpad answer extraction and step scoring on every step task ---------------------------


@pytest.mark.parametrize("name", STEP_TASKS)
def test_corrupted_step_is_located(name):
    task = build_task(conf(name, scratchpad="full"))
    rng = np.random.default_rng(1)
    for ex in draw(task, [5, 9], 50):
        steps, _ = task.scratchpad.parse(ex.target)
        k = int(rng.integers(0, len(steps)))
        # Corrupt the output part of step k.
        cut = [i for i, s in enumerate(ex.target) if s == "|"]
        start = 0 if k == 0 else cut[k - 1] + 1
        pos = ex.target.index("O:", start) + 1
        bad = list(ex.target)
        bad[pos] = "0" if bad[pos] != "0" else "1"
        score = task.score_steps(bad, ex.target)
        assert score["first_wrong_step"] == k and score["steps_correct"] == len(steps) - 1
        assert score["answer_correct"] == 1  # only the step is wrong
        assert task.answer_from(bad) == ex.answer


# -- bad configs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "needles"),
    [
        (conf("addition", min_digits=0), ["min_digits=0"]),
        (conf("addition", train_min=0), ["train_min=0"]),
        (conf("addition", train_min=9, train_max=3), ["train_min=9", "train_max=3"]),
        (conf("addition", operand_lengths="ragged"), ["'ragged'", "independent", "equal"]),
        (conf("multiplication", b_min_digits=4, b_max_digits=2), ["b_min_digits=4", "b_max_digits=2"]),
        (conf("multiplication", b_min_digits=0), ["b_min_digits=0"]),
        (conf("sort_multi", min_digits=3, max_digits=1), ["min_digits=3", "max_digits=1"]),
        (conf("passkey", depths=[0.5, 1.5]), ["1.5", "[0, 1]"]),
        (conf("passkey", depths=[-0.1]), ["-0.1", "[0, 1]"]),
        (conf("passkey", key_digits=0), ["key_digits=0"]),
        (conf("passkey", train_min=10), ["train_min=10", "19"]),
        (conf("summation", scratchpad="full-minus-v"), ["full-minus-v", "'v'", "i, c, o, r"]),
        (conf("parity", scratchpad=["c", "v"]), ["'v'", "i, c, o, r"]),
        (conf("addition", scratchpad="most"), ["'most'", "full", "minimal"]),
        (conf("addition", scratchpad=["c", "q"]), ["'q'", "i, c, o, v, r"]),
        (conf("copy", scratchpad="full"), ["task.scratchpad='full'", "none"]),
        (conf("addition", format={"pad_width": -1}), ["pad_width=-1"]),
        (conf("addition", format={"random_spaces": 1.5}), ["random_spaces=1.5", "[0, 1]"]),
        (conf("addition", format={"reverse": True}), ["task.format.reverse", "reverse_operands"]),
        (conf("summation", format={"reverse_answer": True}), ["summation", "format"]),
        (conf("replace", replace_from="Q"), ["replace_from='Q'"]),
        (conf("copy", symbols=0), ["symbols=0"]),
    ],
)
def test_bad_config(cfg, needles):
    with pytest.raises(TaskConfigError) as err:
        build_task(cfg)
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def test_scratchpad_presets_select_parts():
    def parts(sp):
        return build_task(conf("addition", scratchpad=sp)).scratchpad.parts

    assert parts("none") == () and parts(None) == () and parts([]) == ()
    assert parts("full") == PARTS
    assert parts("minimal") == ("c", "o")
    assert parts("full-minus-r") == ("i", "c", "o", "v")
    assert parts(["o", "c"]) == ("c", "o") == parts("c+o")
    assert build_task(conf("summation", scratchpad="full")).scratchpad.parts == ("i", "c", "o", "r")
    assert all(issubclass(TASKS[n], StepTask) for n in STEP_TASKS)
