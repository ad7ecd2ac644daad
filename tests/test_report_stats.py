"""The learned flag and the MRR bootstrap (issue 13), on fake runs whose outcome is known by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from lengen import report
from tests.test_report import write_run


def rows(task: str, pe: str, seed: int, inside: float, beyond: float) -> pd.DataFrame:
    """Train 2..3, lengths 2..5: in-range EM `inside`, beyond-range EM `beyond`, n=10 everywhere."""
    return pd.DataFrame([{
        "run_id": f"{task}-{pe}-{seed}", "study": "u", "task": task, "variant": "default", "pe": pe,
        "seed": seed, "train_min": 2, "train_max": 3, "eval_length": length, "in_range": length <= 3, "n": 10,
        "exact_match": inside if length <= 3 else beyond,
    } for length in range(2, 6)])


def load(tmp_path, table: dict[tuple[str, str], list[tuple[float, float]]]) -> pd.DataFrame:
    """Write one run per (task, pe, seed) from {(task, pe): [(inside, beyond) per seed]} and read them."""
    for (task, pe), per_seed in table.items():
        for seed, (inside, beyond) in enumerate(per_seed):
            write_run(tmp_path / "runs" / task / pe / f"seed{seed}", rows(task, pe, seed, inside, beyond))
    with warnings.catch_warnings():
        warnings.simplefilter("error", report.SkippedRunWarning)
        return report.load_runs([tmp_path / "runs"])[0]


# c extrapolates best but never learned the task (in-range mean .9 < .95): it must not win.
UNLEARNED = {
    ("copy", "a"): [(1.0, 0.5), (1.0, 0.5)],
    ("copy", "b"): [(1.0, 0.3), (0.9, 0.3)],   # in-range mean exactly .95: learned
    ("copy", "c"): [(0.9, 0.9), (0.9, 0.9)],
}


def test_learned_flag_and_exclusion_from_the_ranking(tmp_path):
    df = load(tmp_path, UNLEARNED)
    s = report.summarise(df).set_index("pe")
    assert s["learned"].to_dict() == {"a": True, "b": True, "c": False}
    r = report.ranks(df)
    assert set(r["pe"]) == {"a", "b"} and r.set_index(["seed", "pe"])["rank"].to_dict() == {
        (0, "a"): 1, (0, "b"): 2, (1, "a"): 1, (1, "b"): 2}
    m = report.mrr(df).set_index(["task", "pe"])["mrr"]
    assert m[("all", "a")] == 1.0 and m[("all", "b")] == 0.5 and ("all", "c") not in m
    # A lower threshold lets c in, and then it wins every seed.
    low = report.mrr(df, learned_threshold=0.85).set_index(["task", "pe"])["mrr"]
    assert low[("all", "c")] == 1.0 and low[("all", "a")] == 0.5 and low[("all", "b")] == pytest.approx(1 / 3)


def test_learned_flag_in_the_written_tables(tmp_path):
    df = load(tmp_path, UNLEARNED)
    report.write_report(df, tmp_path / "out", plots=False)
    table = pd.read_csv(tmp_path / "out" / "table.csv").set_index("pe")
    assert table["learned"].to_dict() == {"a": True, "b": True, "c": False}
    md = (tmp_path / "out" / "table.md").read_text()
    c_row = next(line for line in md.splitlines() if line.startswith("| copy ") and "| c " in line)
    assert "not learned in range" in c_row and "90.0 ± 0.0" in c_row  # still shown, only flagged
    header = next(line for line in md.splitlines() if line.startswith("| task"))
    assert "| learned " in header
    assert [line.split("|")[2].strip() for line in md.splitlines() if line.startswith("| copy")] == [
        "a", "b", "c"]  # learned cells first, each block by beyond-range accuracy
    ranking_md = (tmp_path / "out" / "ranking.md").read_text()
    assert "Left out, not learned in range: copy / c." in ranking_md
    assert "| c " not in ranking_md
    assert set(pd.read_csv(tmp_path / "out" / "ranking.csv")["pe"]) == {"a", "b"}


def test_a_cell_without_in_range_rows_is_not_learned(tmp_path):
    write_run(tmp_path / "runs" / "x", rows("copy", "a", 0, 1.0, 0.5).query("not in_range"))
    df = report.load_runs([tmp_path / "runs"])[0]
    assert not report.summarise(df)["learned"].any()


def stats_by_pe(ranking: pd.DataFrame, task: str = "all") -> pd.DataFrame:
    return ranking[ranking["task"] == task].set_index("pe")


def test_one_pe_always_best_is_certain(tmp_path):
    df = load(tmp_path, {("copy", "a"): [(1.0, 0.8)] * 4, ("copy", "b"): [(1.0, 0.2)] * 4})
    m = stats_by_pe(report.mrr(df))[["mrr", "mrr_boot_mean", "mrr_ci_low", "mrr_ci_high", "p_rank1"]]
    assert m.loc["a"].tolist() == [1, 1, 1, 1, 1]
    assert m.loc["b"].tolist() == [0.5, 0.5, 0.5, 0.5, 0]


def test_split_seeds_give_a_wide_interval_and_shared_first_place(tmp_path):
    """a wins seed 0, b wins seed 1. A resample of two seeds is {0,0} (1/4: a first, MRR 1 vs .5),
    {1,1} (1/4: b first) or mixed (1/2: a tie at .75, shared) -> P(rank 1) = 1/2 each, interval [.5, 1]."""
    df = load(tmp_path, {("copy", "a"): [(1.0, 0.9), (1.0, 0.1)], ("copy", "b"): [(1.0, 0.1), (1.0, 0.9)]})
    m = stats_by_pe(report.mrr(df, bootstrap=2000))
    for pe in ("a", "b"):
        assert m.loc[pe, "mrr"] == 0.75
        assert (m.loc[pe, "mrr_ci_low"], m.loc[pe, "mrr_ci_high"]) == (0.5, 1.0)
        assert m.loc[pe, "mrr_boot_mean"] == pytest.approx(0.75, abs=0.02)
        assert m.loc[pe, "p_rank1"] == pytest.approx(0.5, abs=0.04)
    assert m["p_rank1"].sum() == pytest.approx(1.0)


def test_seeds_are_resampled_within_each_task(tmp_path):
    """a always wins copy (3 seeds), b always wins reverse (2 seeds). Every resample still holds 3 copy
    and 2 reverse rankings, so a's MRR is (3 * 1 + 2 * .5) / 5 = .8 in every sample: no spread."""
    df = load(tmp_path, {
        ("copy", "a"): [(1.0, 0.9)] * 3, ("copy", "b"): [(1.0, 0.1)] * 3,
        ("reverse", "a"): [(1.0, 0.1)] * 2, ("reverse", "b"): [(1.0, 0.9)] * 2,
    })
    ranking = report.mrr(df)
    m = stats_by_pe(ranking)
    assert m.loc["a", "mrr_ci_low"] == pytest.approx(0.8) and m.loc["a", "mrr_ci_high"] == pytest.approx(0.8)
    assert m.loc["b", "mrr_ci_low"] == pytest.approx(0.7) and m.loc["b", "mrr_ci_high"] == pytest.approx(0.7)
    assert (m.loc["a", "p_rank1"], m.loc["b", "p_rank1"]) == (1.0, 0.0)
    per_task = stats_by_pe(ranking, "reverse")
    assert (per_task.loc["b", "p_rank1"], per_task.loc["b", "mrr_ci_low"]) == (1.0, 1.0)


def test_bootstrap_mrr_directly_and_when_a_pe_misses_a_seed():
    """b has no beyond-range number on seed 1 (only a and c are ranked there)."""
    ranks = pd.DataFrame({"task": "t", "variant": "default", "seed": [0, 0, 0, 1, 1],
                          "pe": ["a", "b", "c", "a", "c"], "rank": [1, 2, 3, 2, 1]})
    ranks["reciprocal_rank"] = 1 / ranks["rank"]
    overall, per_task = report.bootstrap_mrr(ranks, ["task", "variant"], 500)
    o = overall.set_index("pe")
    assert (o.loc["b", "mrr_ci_low"], o.loc["b", "mrr_ci_high"]) == (0.5, 0.5)  # NaN samples ignored
    assert (o.loc["a", "mrr_ci_low"], o.loc["a", "mrr_ci_high"]) == (0.5, 1.0)
    assert o["p_rank1"].sum() == pytest.approx(1.0)
    assert per_task[["task", "pe"]].values.tolist() == [["t", "a"], ["t", "b"], ["t", "c"]]
    empty_all, empty_ctx = report.bootstrap_mrr(ranks, ["task", "variant"], 0)
    assert empty_all.empty and empty_ctx.empty


def test_bootstrap_off_and_reruns_are_byte_identical(tmp_path):
    df = load(tmp_path, {("copy", "a"): [(1.0, 0.9), (1.0, 0.1), (1.0, 0.5)],
                         ("copy", "b"): [(1.0, 0.1), (1.0, 0.9), (1.0, 0.4)]})
    for name in ("one", "two"):
        report.write_report(df, tmp_path / name, title="t", plots=False)
    for file in ("table.csv", "table.md", "ranking.csv", "ranking.md", "runs.csv", "ranks.csv"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes(), file
    assert "95% interval" in (tmp_path / "one" / "ranking.md").read_text()
    off = report.mrr(df, bootstrap=0)
    assert off["mrr_boot_mean"].isna().all() and not off["mrr"].isna().any()
    report.write_report(df, tmp_path / "off", plots=False, bootstrap=0)
    text = (tmp_path / "off" / "ranking.md").read_text()
    assert "95% interval" not in text and "P(rank 1)" not in text and "| a " in text
    assert not math.isnan(pd.read_csv(tmp_path / "off" / "ranking.csv")["mrr"].iloc[0])
    assert np.isnan(pd.read_csv(tmp_path / "off" / "ranking.csv")["p_rank1"]).all()
