"""Which checkpoint a run evaluates: ``best.ckpt`` holds the validation with the highest
``val/selection`` = exact match - 1e-3 * loss (exact match first, lower loss breaks ties), and
``eval.checkpoint=last`` evaluates ``last.ckpt`` instead.

The validation curve is constructed: the real ``validation_step`` runs, but the per-example scores
it reads (``lengen.training.token_scores``) are replaced at each validation step by chosen exact
matches and losses, so the best step is known in advance whatever the tiny model learns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from lengen import training
from lengen.checkpoint_io import load_checkpoint
from lengen.evaluation import evaluate
from lengen.rundir import Run
from tests.conftest import tiny_overrides
from tests.inprocess import finished_run, run_lengen

MAX_STEPS, VAL_EVERY = 20, 5  # validations after steps 5, 10, 15, 20


def fake_curve(monkeypatch, em: dict[int, float], loss: dict[int, float] | None = None) -> list[int]:
    """Validation at global step s reports exact match ``em[s]`` (and loss ``loss[s]`` when given)."""
    real_scores, real_step = training.token_scores, training.LengenModule.validation_step
    seen: list[int] = []

    def validation_step(self, batch, batch_idx):
        seen.append(int(self.global_step))
        return real_step(self, batch, batch_idx)

    def token_scores(logits, labels):
        s = real_scores(logits, labels)
        step, n = seen[-1], labels.shape[0]
        s["exact"] = torch.arange(n) < round(em[step] * n)
        if loss is not None:
            s["nll"] = s["n_tok"].to(s["nll"].dtype) * loss[step]
        return s

    monkeypatch.setattr(training.LengenModule, "validation_step", validation_step)
    monkeypatch.setattr(training, "token_scores", token_scores)
    return seen


def train(root: Path, *extra: str) -> Path:
    over = tiny_overrides(root, **{"trainer.max_steps": MAX_STEPS, "trainer.val_every": VAL_EVERY,
                                   "data.n_train": 200, "trainer.threads": 1, "eval.samples": 0})
    run_lengen("train", "+pe=nope", *over, *extra)
    return finished_run(root)


def saved_step(run_dir: Path, name: str) -> int:
    return int(load_checkpoint(run_dir / "checkpoints" / f"{name}.ckpt")["global_step"])


def selection_score(run_dir: Path, name: str) -> float:
    """The best score ModelCheckpoint recorded in the checkpoint ``name``."""
    state = load_checkpoint(run_dir / "checkpoints" / f"{name}.ckpt")["callbacks"]
    (ckpt_state,) = [v for k, v in state.items() if k.startswith("ModelCheckpoint")]
    return float(ckpt_state["best_model_score"])


def loss_of(run_dir: Path, name: str) -> list[float]:
    """Per-length loss of the run's test split under checkpoint ``name``, evaluated here."""
    run = Run.from_dir(run_dir)
    data = run.task_data()
    model = run.load_model(name, len(data.tokenizer))
    rows = evaluate(model, data.task, data.split("test"), data.tokenizer, train_range=run.train_range)
    return rows["loss"].tolist()


@pytest.fixture(scope="module")
def up_then_down(tmp_path_factory) -> Path:
    """A run whose validation exact match goes 0.25, 0.75, 0.5, 0.25 at steps 5, 10, 15, 20."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        seen = fake_curve(monkeypatch, em={5: 0.25, 10: 0.75, 15: 0.5, 20: 0.25})
        run_dir = train(tmp_path_factory.mktemp("updown"))
    assert sorted(set(seen)) == [5, 10, 15, 20]
    return run_dir


def test_best_checkpoint_is_the_highest_exact_match_and_is_evaluated(up_then_down):
    run_dir = up_then_down
    assert saved_step(run_dir, "best") == 10
    assert 0.75 - 0.1 < selection_score(run_dir, "best") < 0.75  # em 0.75 minus 1e-3 x (a loss below 100)
    rows = pd.read_parquet(run_dir / "results.parquet")
    assert (rows["checkpoint"] == "best.ckpt").all()
    assert rows["loss"].tolist() == pytest.approx(loss_of(run_dir, "best"), rel=1e-6)


def test_last_checkpoint_holds_the_final_step(up_then_down):
    assert saved_step(up_then_down, "last") == MAX_STEPS
    assert loss_of(up_then_down, "last") != loss_of(up_then_down, "best")


def test_equal_exact_match_picks_the_lowest_loss_and_eval_checkpoint_last(tmp_path, monkeypatch):
    seen = fake_curve(monkeypatch, em={5: 0.5, 10: 0.5, 15: 0.5, 20: 0.5}, loss={5: 3.0, 10: 2.0, 15: 1.0, 20: 1.5})
    run_dir = train(tmp_path, "eval.checkpoint=last")
    assert sorted(set(seen)) == [5, 10, 15, 20]
    assert saved_step(run_dir, "best") == 15
    assert selection_score(run_dir, "best") == pytest.approx(0.5 - 1e-3 * 1.0, abs=1e-6)
    rows = pd.read_parquet(run_dir / "results.parquet")
    assert (rows["checkpoint"] == "last.ckpt").all()
    assert rows["loss"].tolist() == pytest.approx(loss_of(run_dir, "last"), rel=1e-6)
