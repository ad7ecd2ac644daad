"""Bad input: one clear line naming the value and the valid choices, non-zero exit, no lost data."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_overrides


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("lengen: error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ((), ["+pe=NAME", "alibi", "nope", "rope"]),
        (("+pe=fancy",), ["'fancy'", "alibi", "ape", "nope", "rope", "sinusoidal", "t5"]),
        (("+pe=nope", "task=juggle"), ["'juggle'", "copy", "reverse"]),
        (("+pe=nope", "model.d_model=30", "model.n_heads=4"), ["d_model=30", "n_heads=4"]),
        (("+pe=nope", "task.train_min=9", "task.train_max=3"), ["train_min=9", "train_max=3"]),
        (("+pe=nope", "task.train_max=12", "eval.max_len=10"), ["12", "eval.max_len"]),
        (("+pe=ape", "pe.max_positions=16"), ["16", "pe.max_positions"]),
        (("+pe=nope", "logger=carrier_pigeon"), ["'carrier_pigeon'", "csv", "none", "wandb"]),
    ],
)
def test_train_bad_input(tmp_path, capsys, lengen_main, args, needles):
    status = lengen_main("train", *tiny_overrides(tmp_path), *args)
    assert status == 2
    line = _one_line_error(capsys)
    for needle in needles:
        assert needle in line, line
    # Nothing trained, nothing written.
    assert not list((tmp_path / "runs").rglob("*.ckpt"))
    assert not list((tmp_path / "runs").rglob("results.parquet"))


def test_eval_without_run_dir(capsys, lengen_main):
    assert lengen_main("eval", "eval.max_len=80") == 2
    assert "run_dir" in _one_line_error(capsys)


def test_eval_run_dir_missing(tmp_path, capsys, lengen_main):
    assert lengen_main("eval", f"run_dir={tmp_path / 'nope'}") == 2
    line = _one_line_error(capsys)
    assert str(tmp_path / "nope") in line


def test_unknown_command(capsys, lengen_main):
    assert lengen_main("trian") == 2
    line = _one_line_error(capsys)
    assert "'trian'" in line and "train" in line and "report" in line


@pytest.mark.parametrize("args", [("train", "-m", "+pe=nope", "--cfg", "job"), ("eval", "--info", "-m", "run_dir=x")])
def test_two_hydra_modes_are_one_line(capsys, lengen_main, args):
    """Hydra raises a ValueError (a traceback) for -m with --cfg/--info; lengen names both flags."""
    assert lengen_main(*args) == 2
    line = _one_line_error(capsys)
    assert "--multirun" in line and ("--cfg" in line or "--info" in line)
