"""``lengen eval`` is a Hydra app over finished runs: multirun, allowed and refused overrides."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lengen.results import RESULTS_FILE
from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> list[Path]:
    """Two finished tiny runs (nope, alibi), trained by a real ``lengen train -m`` sweep."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("eval")
    cmd = [sys.executable, "-m", "lengen.cli", "train", "-m", "+pe=nope,alibi", *tiny_overrides(root)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    runs = sorted(p.parent for p in (root / "runs").rglob(RESULTS_FILE))
    assert len(runs) == 2
    return runs


def test_eval_multirun_over_runs_and_lengths(two_runs, lengen_main):
    a, b = two_runs
    assert lengen_main("eval", "-m", f"run_dir={a},{b}", "eval.max_len=12,14", "eval.n_per_length=2") == 0
    for run in two_runs:
        own = pd.read_parquet(run / RESULTS_FILE)
        for max_len in (12, 14):
            out = run / "evals" / f"eval.max_len={max_len},eval.n_per_length=2"
            rows = pd.read_parquet(out / RESULTS_FILE)
            assert rows["eval_length"].max() == max_len
            assert (rows["n"] == 2).all()
            assert rows["run_id"].unique().tolist() == own["run_id"].unique().tolist()
            assert rows["checkpoint"].unique().tolist() == ["best.ckpt"]
        # The run's own results are untouched.
        assert pd.read_parquet(run / RESULTS_FILE).equals(own)


def test_eval_reproduces_the_runs_own_rows(two_runs, lengen_main):
    """Evaluating again at the run's own lengths gives exactly the run's own rows."""
    run = two_runs[0]
    assert lengen_main("eval", f"run_dir={run}", "trainer.accelerator=cpu") == 0
    again = pd.read_parquet(run / "evals" / "default" / RESULTS_FILE)
    pd.testing.assert_frame_equal(again, pd.read_parquet(run / RESULTS_FILE))


@pytest.mark.parametrize("override", ["model.d_model=64", "task.train_max=9", "trainer.lr=0.1", "seed=3",
                                      "data.n_train=10"])
def test_weight_changing_override_is_refused(two_runs, lengen_main, capsys, override):
    assert lengen_main("eval", f"run_dir={two_runs[0]}", override) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("lengen: error:"), err
    assert override.split("=")[0] in err[0] and "eval.*" in err[0]


def test_pe_option_that_changes_weights_is_refused_in_one_line(two_runs, lengen_main, capsys):
    """A pe.* key is allowed only if the trained weights still fit (alibi has none; nope neither)."""
    run = two_runs[1]
    assert lengen_main("eval", f"run_dir={run}", "pe.max_distance=3") in (0, 2)
    capsys.readouterr()
    assert lengen_main("eval", f"run_dir={run}", "pe.no_such_option=1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lengen: error:") and "no_such_option" in err[0], err


def test_hydra_location_overrides_are_refused(tmp_path, lengen_main, capsys):
    assert lengen_main("train", "+pe=nope", f"hydra.run.dir={tmp_path}") == 2
    line = capsys.readouterr().err.strip()
    assert "runs_root" in line and "hydra.run.dir" in line and "\n" not in line
