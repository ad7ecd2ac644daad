"""Splits through ``TaskData``: deterministic from (task config, seed), leak-free, balanced, cached."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

import lengen.conf
from lengen.data.dataset import TaskData
from lengen.data.splits import example_key
from lengen.tasks import build_task

TASK_DIR = Path(lengen.conf.__file__).parent / "task"


def conf(name: str, **over) -> dict:
    return {**yaml.safe_load((TASK_DIR / f"{name}.yaml").read_text()), **over}


CASES = {
    "copy": (conf("copy"), range(2, 9), range(1, 13)),
    "addition-full-all": (
        conf("addition", scratchpad="full", format={"reverse_operands": True, "reverse_answer": True, "pad_width": 6,
                                                    "random_spaces": 0.3, "index_hints": True}),
        range(1, 5), range(1, 9)),
    "multiplication-minimal": (conf("multiplication", scratchpad="minimal"), range(1, 5), range(1, 9)),
    "sort_multi": (conf("sort_multi", scratchpad="full-minus-r"), range(1, 5), range(1, 9)),
    "parity": (conf("parity", scratchpad=["c", "o"]), range(1, 9), range(1, 13)),
    "polynomial": (conf("polynomial"), range(1, 5), range(1, 9)),
    "passkey": (conf("passkey"), [32, 48, 64], [32, 64, 128, 256]),
    "repeat": (conf("repeat"), range(2, 9), range(2, 13)),
}


def make(case: str, cache: Path, seed: int = 1, **kw) -> TaskData:
    cfg, train, test = CASES[case]
    args = {"n_train": 800, "n_val_per_length": 8, "n_test_per_length": 24, **kw}
    return TaskData(cfg, seed=seed, train_lengths=train, test_lengths=test, cache_dir=cache, **args)


def keys(ds) -> set[bytes]:
    return {example_key(p) for p in ds["prompt"]}


@pytest.mark.parametrize("case", list(CASES))
def test_leak_free_and_deterministic(case, tmp_path):
    data = make(case, tmp_path / "a")
    train, val, test = (data.split(s) for s in ("train", "val", "test"))
    assert len(train) > 0 and len(val) > 0 and len(test) > 0
    assert not keys(test) & keys(train), "a test prompt occurs in training"
    assert not keys(test) & keys(val) and not keys(val) & keys(train)
    # Rebuilt from scratch in another cache: identical; another seed: different.
    again = make(case, tmp_path / "b")
    for split in ("train", "val", "test"):
        assert again.split(split)[:] == data.split(split)[:]
    other = make(case, tmp_path / "c", seed=2)
    assert other.split("test")["prompt"] != test["prompt"]
    assert other.split("train")["prompt"] != train["prompt"]
    # Targets are what the task's oracle says; the stored answer length marks the final answer.
    task = build_task(CASES[case][0])
    for row in test.select(range(0, len(test), 7)):
        assert tuple(row["target"]) == task.solve(row["prompt"])
        assert task.answer_from(row["target"]) == tuple(row["target"][len(row["target"]) - row["answer_len"] :])
        assert data.tokenizer.decode(row["input_ids"][1 : row["n_prompt"] - 1]) == row["prompt"]
        for k in task.group_keys:
            assert row[k] is not None


def test_balanced_per_length(tmp_path):
    data = make("addition-full-all", tmp_path)
    counts = Counter(data.split("train")["length"])
    assert set(counts) == {2, 3, 4} | ({1} if counts.get(1) else set())
    assert len({counts[n] for n in (2, 3, 4)}) == 1  # equal bins where the instance space allows
    test_counts = Counter(data.split("test")["length"])
    assert all(test_counts[n] == 24 for n in range(3, 9))


def test_longer_evaluation_keeps_the_shorter_one(tmp_path):
    """Test examples at a length do not depend on which other lengths are evaluated."""
    cfg, train, _ = CASES["addition-full-all"]
    short = TaskData(cfg, seed=1, train_lengths=train, test_lengths=range(1, 9), n_train=100, n_val_per_length=4,
                     n_test_per_length=16, cache_dir=tmp_path).split("test")
    long = TaskData(cfg, seed=1, train_lengths=train, test_lengths=range(1, 17), n_train=100, n_val_per_length=4,
                    n_test_per_length=16, cache_dir=tmp_path).split("test")
    assert long.filter(lambda r: r["length"] <= 8)["prompt"] == short["prompt"]
    assert max(long["length"]) == 16


def test_format_and_scratchpad_change_the_cache_key(tmp_path):
    cfg, train, test = CASES["addition-full-all"]
    a = TaskData(cfg, seed=1, train_lengths=train, test_lengths=test, n_train=10, n_val_per_length=2,
                 n_test_per_length=2, cache_dir=tmp_path)
    b = TaskData({**cfg, "scratchpad": "none"}, seed=1, train_lengths=train, test_lengths=test, n_train=10,
                 n_val_per_length=2, n_test_per_length=2, cache_dir=tmp_path)
    assert a.path("test") != b.path("test")
    a.split("test")
    assert a.path("test").exists() and a.split("test")[:] == a.split("test")[:]


def test_small_instance_spaces_are_shared_with_training(tmp_path):
    """Sorting one digit has 10 instances: evaluation takes at most half, training sees the rest."""
    data = TaskData({"name": "sort"}, seed=0, train_lengths=[1, 2], test_lengths=[1, 2, 3], n_train=200,
                    n_val_per_length=50, n_test_per_length=100, cache_dir=tmp_path)
    test, train = data.split("test"), data.split("train")
    per_len = lambda ds, n: sum(1 for x in ds["length"] if x == n)  # noqa: E731
    assert 1 <= per_len(test, 1) <= 5
    assert per_len(train, 1) > 0
    assert {tuple(p) for p, n in zip(test["prompt"], test["length"]) if n == 1}.isdisjoint(
        {tuple(p) for p, n in zip(train["prompt"], train["length"]) if n == 1}
    )
    assert 90 <= per_len(test, 3) <= 100  # 1000 instances: a few repeats dropped, no halving
