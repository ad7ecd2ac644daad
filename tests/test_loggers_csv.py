"""``logger=csv``: a tiny run writes ``<run dir>/metrics.csv`` with the training loss and the
validation curves at the steps the recipe sets, and the eval summary of its own result rows."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from lengen.results import summary
from tests.conftest import tiny_overrides
from tests.inprocess import finished_run, run_lengen

MAX_STEPS, VAL_EVERY = 30, 10
LOG_EVERY = max(1, min(50, MAX_STEPS // 10))  # lengen/trainer.py: log_every_n_steps -> 3


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("csv")
    over = [o for o in tiny_overrides(root, **{"trainer.max_steps": MAX_STEPS, "trainer.val_every": VAL_EVERY,
                                                 "trainer.threads": 1, "eval.samples": 0}) if o != "logger=none"]
    run_lengen("train", "+pe=nope", "logger=csv", *over)
    return finished_run(root)


def test_metrics_csv_has_the_loss_and_validation_curves_at_the_right_steps(csv_run):
    assert not (csv_run / "wandb").exists()
    metrics = pd.read_csv(csv_run / "metrics.csv")
    assert {"step", "train/loss", "val/exact_match", "val/loss", "val/selection"} <= set(metrics.columns)

    # Lightning's step of a logged value is the 0-based index of the last optimizer step taken: the loss
    # of step s (0..29) every LOG_EVERY steps, and a validation after steps 10, 20, 30 is logged at 9, 19, 29.
    train = metrics.dropna(subset=["train/loss"])
    assert train["step"].tolist() == [s for s in range(MAX_STEPS) if (s + 1) % LOG_EVERY == 0]
    assert all(math.isfinite(v) and v > 0 for v in train["train/loss"])
    # an untrained model's loss is about log(vocab) = log(20) ~ 3.0; it cannot be 0 or huge after 30 steps
    assert train["train/loss"].between(0.5, 10).all()

    val = metrics.dropna(subset=["val/exact_match"])
    assert val["step"].tolist() == [k * VAL_EVERY - 1 for k in range(1, MAX_STEPS // VAL_EVERY + 1)]
    assert val["val/loss"].notna().all() and val["val/exact_match"].between(0, 1).all()
    # the checkpoint-selection score is exact match - 1e-3 x loss (lengen/training.py)
    expected = val["val/exact_match"] - 1e-3 * val["val/loss"]
    assert val["val/selection"].tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_metrics_csv_ends_with_the_runs_own_summary(csv_run):
    metrics = pd.read_csv(csv_run / "metrics.csv")
    rows = pd.read_parquet(csv_run / "results.parquet")
    want = summary(rows)
    (last,) = metrics.dropna(subset=["eval/in_range_exact_match"]).to_dict("records")
    assert last["eval/in_range_exact_match"] == pytest.approx(want["in_range"])
    assert last["eval/beyond_exact_match"] == pytest.approx(want["beyond"])


def test_summary_row_is_at_the_last_step(csv_run):
    metrics = pd.read_csv(csv_run / "metrics.csv")
    (step,) = metrics.dropna(subset=["eval/in_range_exact_match"])["step"]
    assert step >= metrics["step"].max() - 1
