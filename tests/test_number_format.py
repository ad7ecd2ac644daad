"""Number descriptions: exact layouts, invertibility of every combination, determinism of spaces."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lengen.tasks import TaskConfigError
from lengen.tasks.number_format import SPACE, NumberFormat, digits_of


def test_layouts():
    assert NumberFormat().write_operand("123") == ["1", "2", "3"]
    assert NumberFormat(reverse_operands=True).write_operand("123") == ["3", "2", "1"]
    assert NumberFormat(pad_width=5).write_operand("123") == ["0", "0", "1", "2", "3"]
    assert NumberFormat(pad_width=2).write_operand("123") == ["1", "2", "3"]  # longer numbers stay whole
    assert NumberFormat(index_hints=True).write_operand("123") == ["h2", "1", "h1", "2", "h0", "3"]
    # Hints mark the place (significance), so reversal keeps each digit with its hint.
    assert NumberFormat(index_hints=True, reverse_operands=True).write_operand("123") == ["h0", "3", "h1", "2", "h2", "1"]
    assert NumberFormat(reverse_answer=True).write_answer("120") == ["0", "2", "1"]
    assert NumberFormat(pad_width=3).write_answer("12", width=4) == ["0", "0", "1", "2"]
    assert NumberFormat().write_answer("12", width=4) == ["1", "2"]  # width only applies with padding on


def test_random_spaces_come_from_the_rng():
    fmt = NumberFormat(random_spaces=0.5)
    a = fmt.write_operand("1234567890" * 3, np.random.default_rng(1))
    b = fmt.write_operand("1234567890" * 3, np.random.default_rng(1))
    c = fmt.write_operand("1234567890" * 3, np.random.default_rng(2))
    assert a == b != c
    assert SPACE in a and a[0] != SPACE and a[-1] != SPACE
    assert "".join(s for s in a if s != SPACE) == "1234567890" * 3
    assert SPACE not in fmt.write_answer("1234567890" * 3)  # answers never get spaces
    assert NumberFormat(random_spaces=1.0).write_operand("123", np.random.default_rng(0)) == ["1", SPACE, "2", SPACE, "3"]


OPTIONS = list(itertools.product([False, True], [False, True], [0, 7], [0.0, 0.4], [False, True]))


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(map(str, o)))
def test_every_combination_reads_back(opts):
    fmt = NumberFormat(*opts)
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = digits_of(rng, int(rng.integers(1, 15)))
        written = fmt.write_operand(x, rng)
        assert fmt.read_operand(written) == x
        assert set(written) <= {*"0123456789", *fmt.symbols}
        assert fmt.read_answer(fmt.write_answer(x, 9)) == x


def test_digits_of_has_no_leading_zero():
    rng = np.random.default_rng(0)
    xs = [digits_of(rng, n) for n in (1, 2, 5) for _ in range(500)]
    assert all(len(x) == 1 or x[0] != "0" for x in xs)
    assert {x for x in xs if len(x) == 1} == set("0123456789")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"pad_width": -2}, "pad_width=-2"),
        ({"pad_width": 1.5}, "pad_width=1.5"),
        ({"random_spaces": -0.1}, "random_spaces=-0.1"),
        ({"reverse_answer": "yes"}, "reverse_answer='yes'"),
        ({"index_hints": True, "pad_width": 500}, "pad_width=500"),
        ({"spaces": 0.1}, "task.format.spaces"),
        ([1, 2], "task.format=[1, 2]"),
    ],
)
def test_bad_format(spec, needle):
    with pytest.raises(TaskConfigError) as err:
        NumberFormat.from_cfg(spec)
    assert needle in str(err.value)


def test_defaults_are_plain():
    assert NumberFormat.from_cfg(None).plain and NumberFormat.from_cfg({}).plain
    assert NumberFormat.from_cfg({"pad_width": None}).plain
    assert NumberFormat().symbols == ()
    assert len(NumberFormat(index_hints=True).symbols) == 128
