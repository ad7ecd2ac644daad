"""scripts/recipe_table.py: a study's recipe is chosen on in-range validation averaged over the PEs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "recipe_table.py"
spec = importlib.util.spec_from_file_location("recipe_table", SCRIPT)
rt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rt)


def fake_run(study: Path, task: str, pe: str, recipe: str, val: list[float], steps: int, finished: bool = True) -> None:
    d = study / task / pe / f"recipe={recipe}" / "seed1"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(f"trainer:\n  max_steps: {steps}\n")
    (d / "meta.yaml").write_text("timing:\n  train_seconds: 120.0\n")
    pd.DataFrame({"step": range(len(val)), "val/exact_match": val,
                  "beyond": [1.0] * len(val)}).to_csv(d / "metrics.csv", index=False)
    if finished:
        (d / "results.parquet").write_bytes(b"")


def test_best_in_range_mean_wins_ties_go_to_fewer_steps_and_incomplete_candidates_wait(tmp_path):
    for pe in rt.PES:
        fake_run(tmp_path, "sort", pe, "steps2k", [0.5, 0.97], 2000)  # best logged value counts, not the last
        fake_run(tmp_path, "sort", pe, "steps6k", [0.97], 6000)       # a tie: the cheaper recipe wins
        fake_run(tmp_path, "addition", pe, "steps2k", [0.2], 2000)
        fake_run(tmp_path, "addition", pe, "steps6k", [0.6], 6000, finished=pe != "ape")  # incomplete
    t = rt.table(rt.scan(tmp_path, 1)).set_index(["task", "recipe"])
    assert t.loc[("sort", "steps2k"), "mean"] == 0.97 and t.loc[("sort", "steps2k"), "chosen"]
    assert not t.loc[("sort", "steps6k"), "chosen"]
    assert t.loc[("addition", "steps6k"), "pes_done"] == 4 and not t.loc[("addition", "steps6k"), "chosen"]
    assert t.loc[("addition", "steps2k"), "chosen"]
    text = rt.markdown(t.reset_index(), 1)
    assert "| sort | `steps2k` | 2000 | 97.0 | 97.0 | 97.0 | 97.0 | 97.0 | **97.0** | 2.0 | ✓ |" in text
    assert "best so far, below target" in text  # addition's 20 % is not a recipe that learns the task


def test_bad_study_dir_is_one_line_and_exit_2(tmp_path, capsys):
    assert rt.main([str(tmp_path / "missing")]) == 2
    assert rt.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("recipe_table: error:") == 2
