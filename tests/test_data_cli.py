"""``lengen data show|export``: examples with symbol/token lengths; Parquet + card that load back."""

from __future__ import annotations

import re
from pathlib import Path

import datasets
import pytest
from rich.console import Console

from lengen.commands import data as data_cmd
from lengen.compose import compose
from lengen.config import ConfigError
from lengen.data.dataset import TaskData
from lengen.tasks import TaskConfigError


def _show(*args: str) -> str:
    console = Console(record=True, width=200)
    assert data_cmd.show(list(args), console=console) == 0
    return console.export_text()


def test_show_addition_with_scratchpad():
    out = _show("task=addition", "task.scratchpad=full", "n=3")
    assert "addition" in out and "scratchpad=full" in out
    for col in ("length", "len_a", "len_b", "prompt symbols", "target symbols", "tokens"):
        assert col in out
    assert len(re.findall(r"^#\d+ prompt ", out, re.M)) == 3 and out.count("\n   answer ") == 3
    assert "(beyond)" in out  # lengths are spread into the evaluation range
    assert "I:" in out and " = " in out


def test_show_is_deterministic_and_follows_overrides():
    a = _show("task=sort_multi", "n=4", "length=[3,5]", "seed=3")
    b = _show("task=sort_multi", "n=4", "length=[3,5]", "seed=3")
    c = _show("task=sort_multi", "n=4", "length=[3,5]", "seed=4")
    assert a == b != c
    hints = _show("task=addition", "task.format.index_hints=true", "n=1", "length=4")
    assert "h3" in hints


def test_show_passkey_clips_long_contexts():
    out = _show("task=passkey", "n=2", "length=[32,2048]")
    assert "2048" in out and "more) …" in out and "depth" in out


def test_show_bad_input():
    with pytest.raises(ConfigError, match="'juggle'"):
        data_cmd.show(["task=juggle"])
    with pytest.raises(ConfigError, match="n='zero'"):
        data_cmd.show(["task=copy", "n=zero"])
    with pytest.raises(ConfigError, match="'nope'"):
        data_cmd.show(["task=copy", "split=nope"])
    with pytest.raises(TaskConfigError, match="full-minus-v"):
        data_cmd.show(["task=summation", "task.scratchpad=full-minus-v"])
    with pytest.raises(ConfigError, match=r"task\.no_such_key"):
        data_cmd.show(["task=copy", "task.no_such_key=1"])


def test_show_through_the_cli(lengen_main, capsys):
    assert lengen_main("data", "show", "task=reverse_copy", "n=2") == 0
    assert "reverse_copy" in capsys.readouterr().out
    assert lengen_main("data", "show", "task=addition", "task.format.pad_width=-1") == 2
    assert "pad_width=-1" in capsys.readouterr().err


def test_export_round_trip(tmp_path: Path):
    out = tmp_path / "export"
    args = ["task=addition", "task.scratchpad=minimal", f"out={out}", "data.n_train=300", "data.n_val_per_length=4",
            "eval.n_per_length=6", f"data.cache_dir={tmp_path / 'cache'}", "seed=7"]
    assert data_cmd.export(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "test.parquet", "train.parquet", "val.parquet"]
    loaded = datasets.load_dataset("parquet", data_files={s: str(out / f"{s}.parquet") for s in ("train", "val", "test")},
                                   cache_dir=str(tmp_path / "hf"))
    ref = TaskData(data_cmd.task_config(compose("config", args[:2] + args[3:7])), seed=7, train_lengths=range(1, 9),
                   test_lengths=range(1, 17), n_train=300, n_val_per_length=4, n_test_per_length=6,
                   cache_dir=tmp_path / "cache")
    for split in ("train", "val", "test"):
        assert loaded[split]["prompt"] == ref.split(split)["prompt"]
        assert loaded[split]["target"] == ref.split(split)["target"]
        assert loaded[split]["len_a"] == ref.split(split)["len_a"]
    card = (out / "README.md").read_text()
    for needle in ("scratchpad: minimal", "seed: 7", "| test | 96 |", "`answer_len`", "`len_a`", "load_dataset"):
        assert needle in card, needle
    # The whole dataset card loads as a Hub-style dataset dir too.
    assert set(datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf2"))) == {"train", "val", "test"}
    # Refuses to overwrite; nothing half-written is left next to it.
    with pytest.raises(ConfigError, match="already exists"):
        data_cmd.export(args)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export")] == []


def test_export_into_empty_dir_and_missing_out(tmp_path: Path):
    out = tmp_path / "empty"
    out.mkdir()
    assert data_cmd.export(["task=parity", f"out={out}", "data.n_train=50", "data.n_val_per_length=2",
                            "eval.n_per_length=2", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    assert (out / "train.parquet").is_file()
    with pytest.raises(ConfigError, match="out=DIR"):
        data_cmd.export(["task=copy"])
