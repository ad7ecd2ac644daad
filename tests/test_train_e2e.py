"""End to end through the CLI: a tiny model really learns copy, the run dir is complete,
teacher-forced scoring equals greedy generation, reruns skip, ``lengen eval`` re-evaluates."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lengen.data.dataset import TaskData
from lengen.evaluation import generate_targets, score_examples
from lengen.model.build import build_model
from tests.conftest import global_state_restored, tiny_overrides

LEARN = {
    "task.symbols": 8,
    "task.train_min": 2,
    "task.train_max": 6,
    "task.eval_max": 9,
    "model.d_model": 64,
    "model.n_heads": 4,
    "model.n_layers": 2,
    "model.d_ff": 128,
    # 800 steps: every measured seed saturates in range (at 400 steps seeds 5 and 7 reached only 0.686)
    "trainer.max_steps": 800,
    "trainer.val_every": 200,
    "trainer.batch_size": 32,
    "trainer.lr": 3e-3,
    "data.n_train": 4000,
    "data.n_val_per_length": 16,
    "eval.n_per_length": 32,
}


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory) -> Path:
    import sys

    from lengen import cli

    root = tmp_path_factory.mktemp("learn")
    argv = ["train", "+pe=rope", *tiny_overrides(root, **LEARN)]
    old = sys.argv
    try:
        with global_state_restored():  # module-scoped: the per-test autouse restore does not cover it
            assert cli.main(argv) == 0
    finally:
        sys.argv = old
    (run_dir,) = {p.parent for p in (root / "runs").rglob("results.parquet")}
    return run_dir


def test_run_dir_is_complete(learned_run: Path):
    for name in ("config.yaml", "results.parquet", "results.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (learned_run / name).is_file(), name
    rows = pd.read_parquet(learned_run / "results.parquet")
    assert list(rows["eval_length"]) == list(range(1, 10))
    assert rows["in_range"].tolist() == [False] + [True] * 5 + [False] * 3
    for col in ("run_id", "study", "task", "pe", "seed", "train_min", "train_max", "n", "exact_match",
                "token_accuracy", "loss", "answer_exact_match"):
        assert col in rows
    assert (rows["task"] == "copy").all() and (rows["pe"] == "rope").all()
    pd.testing.assert_frame_equal(rows, pd.read_csv(learned_run / "results.csv"), check_dtype=False)
    cfg = yaml.safe_load((learned_run / "config.yaml").read_text())
    assert cfg["pe"]["name"] == "rope" and cfg["model"]["d_model"] == 64
    meta = yaml.safe_load((learned_run / "meta.yaml").read_text())
    timing = meta["timing"]  # a study's budget is read from its run dirs
    assert timing["train_seconds"] > 0 and timing["eval_seconds"] >= 0
    assert timing["load_average_1min_at_end"] >= 0 and "label" in meta["hardware"]


def test_tiny_model_learns_copy(learned_run: Path):
    rows = pd.read_parquet(learned_run / "results.parquet")
    inside = rows[rows["in_range"]]
    em = (inside["exact_match"] * inside["n"]).sum() / inside["n"].sum()
    # In-range EM of this recipe (800 steps), seeds 0-7 on an AMD EPYC (avx2), torch 2.13.0+cpu, 2026-11-27:
    # 1.000 1.000 0.986 0.993 1.000 0.993 1.000 1.000 (worst 0.986; 400 steps: worst 0.686, hence 800).
    # Untrained model: 0.000 (seeds 0-3). Threshold 0.8: 0.186 below the worst seed, far above 0.
    assert em >= 0.8, rows[["eval_length", "exact_match"]]


def test_teacher_forced_equals_greedy_generation(learned_run: Path):
    """Example by example, on lengths the model gets right and lengths it gets wrong."""
    cfg = yaml.safe_load((learned_run / "config.yaml").read_text())
    data = TaskData(cfg["task"], seed=cfg["seed"], train_lengths=range(2, 7), test_lengths=range(1, 13),
                    n_train=cfg["data"]["n_train"], n_val_per_length=cfg["data"]["n_val_per_length"],
                    n_test_per_length=24, cache_dir=cfg["data"]["cache_dir"])
    test = data.split("test")
    model = build_model(cfg["model"], cfg["pe"], len(data.tokenizer))
    state = torch.load(learned_run / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    forced = score_examples(model, test, data.tokenizer, batch_size=64)["exact"].to_numpy()
    generated = generate_targets(model, test, data.tokenizer, list(range(len(test))))
    greedy = [generated[i] == test[i]["target"] for i in range(len(test))]
    assert forced.tolist() == greedy
    # right and wrong examples on every measured seed (0-7): EM ~1.0 at lengths 2-6, 0.000 at 8-9
    assert 0 < sum(greedy) < len(greedy), "need both right and wrong examples for a meaningful check"


def test_rerun_of_finished_run_does_no_training(learned_run: Path, lengen_main, capsys):
    cfg = yaml.safe_load((learned_run / "config.yaml").read_text())
    before = {p: p.stat().st_mtime_ns for p in learned_run.rglob("*") if p.is_file()}
    root = Path(cfg["runs_root"]).parent
    assert lengen_main("train", "+pe=rope", *tiny_overrides(root, **LEARN)) == 0
    assert "already finished" in capsys.readouterr().out
    after = {p: p.stat().st_mtime_ns for p in learned_run.rglob("*") if p.is_file()}
    assert before == after


def test_eval_at_new_lengths(learned_run: Path, lengen_main):
    assert lengen_main("eval", f"run_dir={learned_run}", "eval.max_len=14", "eval.n_per_length=8") == 0
    (out,) = (learned_run / "evals").iterdir()
    rows = pd.read_parquet(out / "results.parquet")
    assert rows["eval_length"].max() == 14 and (rows.loc[rows["eval_length"] > 2, "n"] == 8).all()
    assert (learned_run / "results.parquet").exists()  # the run's own results are untouched
    assert pd.read_parquet(learned_run / "results.parquet")["eval_length"].max() == 9


def test_run_dir_with_different_config_is_refused(learned_run: Path, lengen_main, capsys):
    """The same command finding a run dir made with another config (a default changed since, or the
    dir was edited) stops with one line and leaves the run alone."""
    cfg_path = learned_run / "config.yaml"
    original = cfg_path.read_text()
    stored = yaml.safe_load(original)
    root = Path(stored["runs_root"]).parent
    stored["model"]["d_ff"] = 96
    ckpt = learned_run / "checkpoints" / "last.ckpt"
    stamp, cfg_stat = ckpt.stat().st_mtime_ns, cfg_path.stat()
    cfg_path.write_text(yaml.safe_dump(stored))
    try:
        status = lengen_main("train", "+pe=rope", *tiny_overrides(root, **LEARN))
    finally:  # the module's run dir is shared: put it back exactly
        cfg_path.write_text(original)
        os.utime(cfg_path, ns=(cfg_stat.st_atime_ns, cfg_stat.st_mtime_ns))
    assert status == 2
    err = capsys.readouterr().err
    assert "different run" in err and "model" in err
    assert ckpt.stat().st_mtime_ns == stamp


ADDITION = {"task.symbols": None, "task.train_min": 1, "task.train_max": 3, "task.eval_max": 4}


@pytest.mark.parametrize("task", ["copy", "addition"])
@pytest.mark.parametrize("pe", sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "pe").glob("*.yaml")))
def test_every_pe_trains_end_to_end(tmp_path, lengen_main, pe, task):
    """Every conf/pe file (every registered PE, and presets such as rope_quarter) on copy and addition."""
    extra = ADDITION if task == "addition" else {}
    over = tiny_overrides(tmp_path, **{"trainer.max_steps": 4, "trainer.val_every": 4, "data.n_train": 100, **extra})
    over = [o for o in over if not (task == "addition" and o.startswith("task.symbols"))]
    assert lengen_main("train", f"+pe={pe}", f"task={task}", *over) == 0
    (path,) = (tmp_path / "runs").rglob("results.parquet")
    rows = pd.read_parquet(path)
    expected = "rope" if pe == "rope_quarter" else "abacus(nope)" if pe == "abacus" else pe
    assert (rows["pe"] == expected).all() and rows["loss"].notna().all()
    assert sorted(rows["eval_length"].unique()) == list(range(1, 11 if task == "copy" else 5))


def test_tiny_model_learns_sorting(tmp_path, lengen_main):
    """An arithmetic-family task is learnable from the pipeline's data (sorting short digit lists)."""
    over = tiny_overrides(tmp_path, **{**LEARN, "task.symbols": None, "task.train_min": 1, "task.train_max": 5,
                                       "task.eval_max": 6, "data.n_train": 4000})
    over = [o for o in over if not o.startswith("task.symbols")]
    assert lengen_main("train", "+pe=rope", "task=sort", *over) == 0
    (path,) = (tmp_path / "runs").rglob("results.parquet")
    rows = pd.read_parquet(path)
    inside = rows[rows["in_range"]]
    em = (inside["exact_match"] * inside["n"]).sum() / inside["n"].sum()
    # In-range EM (lengths 1-5, 800 steps), seeds 0-7 on an AMD EPYC (avx2), torch 2.13.0+cpu, 2026-11-27:
    # 0.852 0.930 0.887 0.868 0.876 0.878 0.886 0.879 (worst 0.852; at 400 steps 0.739-0.807, and 0.789 on
    # an Intel AVX-512 machine against the old threshold 0.8). Untrained model: 0.000; echoing the input
    # (right only for already-sorted lists): 0.19-0.27. Threshold 0.65: 0.20 below the worst seed, 0.38
    # above the echo strategy.
    assert em >= 0.65, rows


def test_addition_formats_and_passkey_depths_end_to_end(tmp_path, lengen_main):
    fast = {"trainer.max_steps": 4, "trainer.val_every": 4, "data.n_train": 200, "task.train_min": 1,
            "task.train_max": 3, "task.eval_max": 5}
    assert lengen_main("train", "+pe=nope", "task=addition", "task.format.reverse_answer=true",
                       "task.scratchpad=minimal", *tiny_overrides(tmp_path / "add", **fast)) == 0
    (path,) = (tmp_path / "add" / "runs").rglob("results.parquet")
    rows = pd.read_parquet(path)
    assert {"len_a", "len_b", "answer_exact_match", "step_accuracy"} <= set(rows.columns)
    assert rows["variant"].iloc[0] == "scratchpad=minimal,reverse_answer=True"
    assert set(rows["eval_length"]) == {1, 2, 3, 4, 5}

    pk = {"trainer.max_steps": 4, "trainer.val_every": 4, "data.n_train": 200, "task.train_min": 24,
          "task.train_max": 40, "task.eval_lengths": "[24,48,96]", "eval.n_per_length": 10}
    over = [o for o in tiny_overrides(tmp_path / "pk", **pk) if not o.startswith(("task.eval_max",))]
    assert lengen_main("train", "+pe=alibi", "task=passkey", *over) == 0
    (path,) = (tmp_path / "pk" / "runs").rglob("results.parquet")
    rows = pd.read_parquet(path)
    assert set(rows["eval_length"]) == {24, 48, 96} and rows["depth"].nunique() > 1


def test_wandb_offline_run_is_written(tmp_path, lengen_main, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    over = [o for o in tiny_overrides(tmp_path, **{"trainer.max_steps": 4, "trainer.val_every": 4}) if o != "logger=none"]
    assert lengen_main("train", "+pe=nope", "logger=wandb", *over) == 0
    (run_dir,) = {p.parent for p in (tmp_path / "runs").rglob("results.parquet")}
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    assert list(offline.glob("*.wandb"))  # the run's log (config, curves, per-length table, chart)
