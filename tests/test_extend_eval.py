"""``lengen eval ... extend=NAME`` end to end: rows, refusals, and the report's view by method."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lengen.results import RESULTS_FILE
from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Finished tiny rope and alibi runs, trained by a real ``lengen train -m`` sweep."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("extend")
    cmd = [sys.executable, "-m", "lengen.cli", "train", "-m", "+pe=rope,alibi", *tiny_overrides(root)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    found = {p.parent.parent.parent.name: p.parent for p in (root / "runs").rglob(RESULTS_FILE)}
    assert set(found) == {"rope", "alibi"}
    return found


def test_none_leaves_every_row_bit_identical(runs, lengen_main):
    for run in runs.values():
        assert lengen_main("eval", f"run_dir={run}", "extend=none") == 0
        rows = pd.read_parquet(run / "evals" / "extend=none" / RESULTS_FILE)
        pd.testing.assert_frame_equal(rows, pd.read_parquet(run / RESULTS_FILE))


def test_a_method_writes_its_own_rows_and_dir(runs, lengen_main):
    run = runs["rope"]
    args = ("eval", "-m", f"run_dir={run}", "extend=yarn,pi", "extend.factor=2,4", "eval.max_len=14")
    assert lengen_main(*args) == 0
    own = pd.read_parquet(run / RESULTS_FILE)
    for name in ("yarn", "pi"):
        for factor in (2, 4):
            rows = pd.read_parquet(run / "evals" / f"eval.max_len=14,extend.factor={factor},extend={name}" / RESULTS_FILE)
            assert rows["eval_length"].max() == 14
            assert (rows["extend"] == name).all() and (rows["extend_factor"] == factor).all()
            assert rows["variant"].unique().tolist() == [f"default+extend={name}(factor={factor})"]
            assert rows["extend_options"].str.contains("original_length=").all()
            assert rows["run_id"].unique().tolist() == own["run_id"].unique().tolist()
    assert pd.read_parquet(run / RESULTS_FILE).equals(own)  # the run's own rows are untouched


def test_methods_on_a_bias_run(runs, lengen_main):
    run = runs["alibi"]
    assert lengen_main("eval", "-m", f"run_dir={run}", "extend=lm_infinite,self_extend,temperature",
                       "eval.max_len=14") == 0
    for name in ("lm_infinite", "self_extend", "temperature"):
        rows = pd.read_parquet(run / "evals" / f"eval.max_len=14,extend={name}" / RESULTS_FILE)
        assert (rows["extend"] == name).all()


@pytest.mark.parametrize("pe, args, needle", [
    ("alibi", ["extend=pi"], "extend=pi changes rotary frequencies and needs a rope run; this run's pe=alibi"),
    ("rope", ["extend=yarn", "extend.factor=0.5"], "extend.factor=0.5"),
    ("rope", ["extend=no_such"], "valid: abf, dynamic_ntk, giraffe_power"),
    ("rope", ["extend=yarn", "extend.window=3"], "extend.window is not an option of extend=yarn; valid:"),
    ("rope", ["extend=lm_infinite,yarn", "extend.window=3"], "extend.window is not an option of extend=yarn"),
])
def test_refusals_are_one_line(runs, lengen_main, capsys, pe, args, needle):
    assert lengen_main("eval", f"run_dir={runs[pe]}", *args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("lengen: error:") and needle in err[0], err


def test_report_has_the_view_by_method(runs, lengen_main, tmp_path):
    run = runs["rope"]
    assert lengen_main("eval", "-m", f"run_dir={run}", "extend=none,ntk", "eval.max_len=14") == 0
    out = tmp_path / "report"
    assert lengen_main("report", str(run.parent.parent.parent), f"out={out}", "evals=true", "bootstrap=0") == 0
    table = pd.read_csv(out / "extend.csv")
    rope = table[table["base_pe"] == "rope"]
    assert {"none", "ntk(factor=2)"} <= set(rope["method"])
    # none is the extend=none eval (reaching 14), not the run's own rows (reaching 10)
    assert rope.set_index("method").at["none", "max_length"] == 14
    text = (out / "extend.md").read_text()
    assert "accuracy beyond range by method" in text and "ntk(factor=2)" in text
    assert (out / "extend_copy_rope.png").stat().st_size > 0


def synthetic_rows(run: str, seed: int, method: str, factor: float, lengths: range, acc) -> pd.DataFrame:
    label = method if pd.isna(factor) else f"{method}(factor={factor:g})"
    evaluated = method != "own"
    return pd.DataFrame({
        "run_id": f"s/copy/rope/default/seed{seed}" + (f"@{run}" if evaluated else ""), "study": "s", "task": "copy",
        "variant": "default" if method in ("own", "none") else f"default+extend={label}",
        "pe": "rope" + (f"+{run}" if evaluated else ""), "seed": seed, "train_min": 2, "train_max": 10,
        "eval_length": list(lengths), "in_range": [2 <= n <= 10 for n in lengths], "n": 10.0,
        "exact_match": [acc(n) for n in lengths],
        "extend": "none" if method == "own" else method, "extend_factor": factor,
        "extend_options": "" if method in ("own", "none") else f"factor={factor:g}"})


def test_by_method_keeps_the_longest_evaluation_and_bands_lengths():
    from lengen.report import extend as view

    nan = float("nan")
    parts = []
    for seed in (1, 2):
        parts.append(synthetic_rows("own", seed, "own", nan, range(1, 21), lambda n: 1.0 if n <= 10 else 0.5))
        parts.append(synthetic_rows("e0", seed, "none", nan, range(1, 41), lambda n: 1.0 if n <= 10 else 0.25))
        parts.append(synthetic_rows("e1", seed, "pi", 2.0, range(1, 41),
                                    lambda n, s=seed: 0.5 if n <= 20 else (0.2 if s == 1 else 0.4)))
    table = view.by_method(pd.concat(parts, ignore_index=True)).set_index("method")
    assert list(table.index) == ["none", "pi(factor=2)"]
    # none: the extend=none eval (to 40) replaced the run's own rows (to 20)
    assert table.at["none", "max_length"] == 40 and table.at["none", "beyond_range_mean"] == pytest.approx(0.25)
    assert table.at["pi(factor=2)", "in_range_mean"] == pytest.approx(0.5)
    assert table.at["pi(factor=2)", "≤2×_mean"] == pytest.approx(0.5)  # lengths 11-20
    assert table.at["pi(factor=2)", "2–4×_mean"] == pytest.approx(0.3)  # lengths 21-40, seeds 0.2 and 0.4
    assert table.at["pi(factor=2)", "2–4×_std"] == pytest.approx(0.1414, abs=1e-3)
    assert table.at["pi(factor=2)", "n_runs"] == 2 and "4–8×_mean" not in table.columns
    text = view.markdown(table.reset_index())
    assert "| none " in text and "pi(factor=2)" in text and "2–4×" in text
