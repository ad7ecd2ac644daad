"""scripts/reproduce_kazemnejad2023.sh on a small fake study (a tiny recipe from a test config dir):
a rerun skips every finished run -- also with no checkpoints, as on a fresh clone of the committed run
dirs -- trains only what is missing, and rewrites byte-identical tables."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_kazemnejad2023.sh"
TABLES = ("table.md", "table.csv", "ranking.md", "ranking.csv", "runs.csv", "ranks.csv")
TINY_RECIPE = """# @package _global_
model: {d_model: 16, n_heads: 2, n_layers: 1, d_ff: 32}
trainer: {max_steps: 6, val_every: 6, batch_size: 8}
data: {n_train: 200, n_val_per_length: 4}
eval: {n_per_length: 2, samples: 0}
"""


@pytest.fixture
def study(tmp_path):
    conf = tmp_path / "conf" / "recipe"
    conf.mkdir(parents=True)
    (conf / "testtiny.yaml").write_text(TINY_RECIPE)
    bin_dir = tmp_path / "bin"  # `lengen` as the script calls it, from this interpreter
    bin_dir.mkdir()
    (bin_dir / "lengen").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lengen.cli "$@"\n')
    (bin_dir / "lengen").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LENGEN_CACHE": str(tmp_path / "cache"),
           "TASKS": "sort", "SEEDS": "1", "JOBS": "1", "RECIPE": "testtiny",
           "HYDRA_ARGS": f"hydra.searchpath=[file://{tmp_path / 'conf'}]"}
    runs, out = tmp_path / "rundirs", tmp_path / "report"

    def reproduce(pes: str, **extra: str) -> str:
        proc = subprocess.run(["bash", str(SCRIPT), str(runs), str(out)], env={**env, "PES": pes, **extra},
                              capture_output=True, text=True, timeout=400, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    return runs, out, reproduce


def digests(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in TABLES}


def test_rerun_skips_finished_runs_trains_the_missing_and_rewrites_identical_tables(study):
    runs, out, reproduce = study
    reproduce("nope")
    (nope,) = runs.rglob("results.parquet")
    assert nope.parent.match("kazemnejad2023-cpu/sort/nope/recipe=testtiny/seed1")  # the run dir names its recipe

    log = reproduce("nope,t5")  # nope is finished: only t5 trains
    assert log.count("already finished") == 1
    assert sorted(p.parent.parent.parent.name for p in runs.rglob("results.parquet")) == ["nope", "t5"]
    first = digests(out)

    for ckpt in runs.rglob("*.ckpt"):  # a fresh clone of the committed run dirs has no checkpoints
        ckpt.unlink()
    for name in TABLES:
        (out / name).unlink()
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("results.parquet")}
    log = reproduce("nope,t5")
    assert log.count("already finished") == 2 and "train " not in log.replace("lengen train", "")
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("results.parquet")} == stamps  # nothing retrained
    assert digests(out) == first  # byte-identical tables


def test_scratchpad_part_trains_each_format_and_reports_it_beside_the_same_seeds_without(study):
    runs, out, reproduce = study
    reproduce("nope", TASKS="parity", SEEDS="1,2")  # the main table's runs of the family (2 seeds)
    reproduce("nope", PART="scratchpad", TASKS="parity", SEEDS="1", SCRATCHPADS="minimal")
    trained = sorted(str(p.parent.relative_to(runs)) for p in runs.rglob("results.parquet"))
    assert trained == sorted([f"kazemnejad2023-cpu/parity/nope/recipe=testtiny/seed{k}" for k in (1, 2)] + [
        "kazemnejad2023-cpu/parity/nope/recipe=testtiny,task.scratchpad=minimal/seed1"])

    import pandas as pd

    table = pd.read_csv(out / "scratchpad" / "runs.csv")  # the scratchpad's seeds only, both formats
    assert sorted(zip(table["variant"], table["seed"])) == [
        ("default", 1), ("scratchpad=minimal", 1)]
    assert "PART=scratchpad" in (out / "scratchpad" / "table.md").read_text()
    answer = pd.read_csv(out / "scratchpad" / "answer" / "runs.csv")  # the final answer alone, same runs
    assert sorted(answer["run_id"]) == sorted(table["run_id"])
    assert "in-range answer_exact_match" in (out / "scratchpad" / "answer" / "table.md").read_text()


def test_an_unknown_part_is_refused_with_the_valid_choices(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "PART": "scratch"}, capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "unknown PART 'scratch'; valid: main, scratchpad"


def test_group_choices_of_a_hydra_searchpath_dir_are_accepted_and_others_still_refused(tmp_path):
    from lengen.compose import check_group_choices
    from lengen.errors import ConfigError

    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "mine.yaml").write_text("# @package _global_\n")
    check_group_choices([f"hydra.searchpath=[file://{tmp_path}]", "recipe=mine,steps2k"])
    with pytest.raises(ConfigError, match=r"unknown recipe 'mine'; valid: steps2k, steps6k"):
        check_group_choices(["recipe=mine"])
    with pytest.raises(ConfigError, match=r"unknown recipe 'other'; valid: mine, steps2k, steps6k"):
        check_group_choices([f"hydra.searchpath=[file://{tmp_path}]", "recipe=other"])
