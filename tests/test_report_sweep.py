"""`lengen report` over real `lengen train` output: the table must agree with the runs' own rows."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import tiny_overrides


def lengen(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "lengen.cli", *args], env=env, capture_output=True,
                          text=True, timeout=1200)
    tail = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"lengen {' '.join(args[:3])} ... failed:\n{tail}"
    return done


def weighted(rows: pd.DataFrame) -> float:
    return float((rows["exact_match"] * rows["n"]).sum() / rows["n"].sum()) if len(rows) else float("nan")


def test_report_of_a_trained_sweep_matches_the_runs_rows(tmp_path):
    lengen("train", "-m", "+pe=nope,alibi", "seed=1,2", *tiny_overrides(tmp_path))
    files = sorted((tmp_path / "runs").rglob("results.parquet"))
    assert len(files) == 4
    out = tmp_path / "report"
    lengen("report", str(tmp_path / "runs"), f"out={out}", "learned_threshold=0", "group_by=[hardware]")

    # Recompute every number from the parquet files alone.
    runs = []
    for f in files:
        rows = pd.read_parquet(f)
        meta = f.parent / "meta.yaml"
        label = yaml.safe_load(meta.read_text())["hardware"]["label"] if meta.is_file() else "unknown"
        runs.append({"pe": rows["pe"].iloc[0], "seed": int(rows["seed"].iloc[0]), "hardware": label,
                     "in": weighted(rows[rows["in_range"]]),
                     "beyond": weighted(rows[rows["eval_length"] > rows["train_max"]])})
    runs = pd.DataFrame(runs)
    assert runs["hardware"].nunique() == 1  # one machine trained the whole sweep

    table = pd.read_csv(out / "table.csv").set_index("pe")
    assert sorted(table.index) == ["alibi", "nope"]
    for pe, g in runs.groupby("pe"):
        row = table.loc[pe]
        assert row["in_range_mean"] == pytest.approx(g["in"].mean(), abs=1e-12)
        assert row["beyond_range_mean"] == pytest.approx(g["beyond"].mean(), abs=1e-12)
        assert row["in_range_std"] == pytest.approx(g["in"].std(ddof=1), abs=1e-12)
        assert row["beyond_range_std"] == pytest.approx(g["beyond"].std(ddof=1), abs=1e-12)
        assert (row["n_runs"], str(row["seeds"]), row["train_range"], row["hardware"]) == (
            2, "1,2", "2–6", g["hardware"].iloc[0])
        assert bool(row["learned"])  # threshold 0
        md_row = next(line for line in (out / "table.md").read_text().splitlines() if f"| {pe} " in line)
        assert f"{100 * g['beyond'].mean():.1f} ± {100 * g['beyond'].std(ddof=1):.1f}" in md_row

    ranks = pd.read_csv(out / "ranks.csv")
    for seed, g in runs.groupby("seed"):
        best = g["beyond"].round(9).max()
        winners = set(g.loc[g["beyond"].round(9) == best, "pe"])
        assert set(ranks[(ranks["seed"] == seed) & (ranks["rank"] == 1)]["pe"]) == winners
    ranking = pd.read_csv(out / "ranking.csv")
    overall = ranking[ranking["task"] == "all"].set_index("pe")
    assert overall["p_rank1"].sum() == pytest.approx(1.0)
    assert (overall["mrr_ci_low"] <= overall["mrr_ci_high"]).all()
    assert any(p.name.startswith("accuracy_vs_length_copy") for p in out.iterdir())
    assert (out / "mrr.png").is_file()
