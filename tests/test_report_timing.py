"""`lengen report` states a study's compute from the wall times its runs recorded in meta.yaml."""

from __future__ import annotations

import pandas as pd
import pytest

from lengen.report import load_runs, write_report
from lengen.report.timing import timing_table
from tests.test_report import run_rows, write_run


def meta(train: float, eval_: float, load: float, sessions: int | None = None) -> str:
    return (f"hardware:\n  label: AMD EPYC (avx2)\ntiming:\n  train_seconds: {train}\n"
            f"  eval_seconds: {eval_}\n  load_average_1min_at_end: {load}\n"
            + (f"  sessions: {sessions}\n" if sessions else ""))


@pytest.fixture
def study(tmp_path):
    """copy x {nope, t5} timed (t5 resumed once); sort x nope timed; sort x t5 untimed (older run)."""
    for task, pe, train, load, sessions in (("copy", "nope", 114, 2.0, 1), ("copy", "t5", 174, 3.0, 2),
                                            ("sort", "nope", 54, 1.0, None)):
        d = write_run(tmp_path / task / pe / "seed1", run_rows(task, pe, 1, 1.0, 0.5))
        (d / "meta.yaml").write_text(meta(train, 6, load, sessions))
    write_run(tmp_path / "sort" / "t5" / "seed1", run_rows("sort", "t5", 1, 1.0, 0.5))
    return tmp_path


def test_minutes_per_run_and_total_hours_per_task(study):
    df, _ = load_runs([study])
    t = timing_table(df).set_index("task")
    assert t.loc["copy", "runs"] == 2 and t.loc["copy", "timed"] == 2
    assert t.loc["copy", "resumed"] == 1 and t.loc["sort", "resumed"] == 0  # no `sessions`: one session
    assert t.loc["copy", "min_per_run"] == pytest.approx((120 + 180) / 2 / 60)
    assert t.loc["copy", "max_min_per_run"] == pytest.approx(3.0)
    assert t.loc["sort", "runs"] == 2 and t.loc["sort", "timed"] == 1  # the old run counts, untimed
    assert t.loc["all", "total_hours"] == pytest.approx((120 + 180 + 60) / 3600, abs=1e-3)
    assert t.loc["all", "mean_load"] == pytest.approx(2.0)


def test_report_writes_timing_files_only_when_runs_recorded_times(study, tmp_path):
    df, _ = load_runs([study])
    written = {p.name for p in write_report(df, tmp_path / "out", plots=False)}
    assert {"timing.csv", "timing.md"} <= written
    text = (tmp_path / "out" / "timing.md").read_text()
    assert "| copy | 2 | 2 | 1 | 2.5 | 3.0 | 0.08 | 2.5 |" in text and "AMD EPYC (avx2)" in text
    assert pd.read_csv(tmp_path / "out" / "timing.csv")["task"].tolist() == ["copy", "sort", "all"]
    untimed, _ = load_runs([study / "sort" / "t5"])
    assert not {"timing.csv", "timing.md"} & {p.name for p in write_report(untimed, tmp_path / "o2", plots=False)}
