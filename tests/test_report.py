"""lengen report: numbers checked against hand computation, skipping of bad runs, files, CLI."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pandas as pd
import pytest

from lengen import report
from lengen.commands import report as report_cmd

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Beyond-range "b" per (task, pe, seed); the in-range "a" is chosen separately. Every run is built
# so that its n-weighted in-range EM is (1 + a) / 2 and its beyond-range EM is (1 + b) / 2, while
# an unweighted mean would differ — so the tests notice if n is ignored.
BEYOND = {
    ("copy", "nope"): [0.6, 0.8, 0.4],
    ("copy", "alibi"): [0.4, 0.8, 0.6],  # seed 1 ties nope
    ("copy", "rope"): [0.2, 0.0, 0.2],
    ("reverse", "nope"): [0.2, 0.6],
    ("reverse", "alibi"): [0.0, 0.2],
    ("reverse", "rope"): [0.4, 0.4],
}
INSIDE = {
    ("copy", "nope"): [1.0, 0.8, 0.6],
    ("copy", "alibi"): [0.8, 0.8, 0.8],
    ("copy", "rope"): [0.6, 0.8, 1.0],
    ("reverse", "nope"): [1.0, 0.6],
    ("reverse", "alibi"): [0.4, 0.4],
    ("reverse", "rope"): [0.2, 1.0],
}


def run_rows(task: str, pe: str, seed: int, a: float, b: float, variant: str = "default") -> pd.DataFrame:
    """Lengths 2..11, train 2..5. In range: L=2 n=30 EM=1, L=3..5 n=10 EM=a. Beyond: L=11 n=40 EM=1, L=6..10 n=8 EM=b."""
    rows = []
    for length in range(2, 12):
        inside = 2 <= length <= 5
        if length == 2:
            n, em = 30, 1.0
        elif inside:
            n, em = 10, a
        elif length == 11:
            n, em = 40, 1.0
        else:
            n, em = 8, b
        rows.append({
            "run_id": f"{task}-{variant}-{pe}-s{seed}", "study": "unit", "task": task, "variant": variant,
            "pe": pe, "seed": seed, "train_min": 2, "train_max": 5, "eval_length": length,
            "in_range": inside, "n": n, "exact_match": em, "answer_exact_match": em,
            "token_accuracy": min(1.0, em + 0.1), "loss": 1.0 - em,
        })
    return pd.DataFrame(rows)


def write_run(run_dir: Path, rows: pd.DataFrame | None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text("seed: 0\n")
    if rows is not None:
        rows.to_parquet(run_dir / "results.parquet", index=False)
        rows.to_csv(run_dir / "results.csv", index=False)
    return run_dir


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "runs" / "unit"
    for (task, pe), bs in BEYOND.items():
        for seed, (a, b) in enumerate(zip(INSIDE[(task, pe)], bs)):
            write_run(root / task / pe / "abc123" / f"seed{seed}", run_rows(task, pe, seed, a, b))
    # Hydra's own config copy and checkpoints must not look like runs.
    hydra = root / "copy" / "nope" / "abc123" / "seed0" / ".hydra"
    hydra.mkdir()
    (hydra / "config.yaml").write_text("x: 1\n")
    (root / "copy" / "nope" / "abc123" / "seed0" / "checkpoints" / "config.yaml").parent.mkdir()
    (root / "copy" / "nope" / "abc123" / "seed0" / "checkpoints" / "config.yaml").write_text("x: 1\n")
    return root


def load_quiet(*paths, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", report.SkippedRunWarning)  # a clean sweep skips nothing
        return report.load_runs(paths, **kw)


def test_load_runs_reads_every_finished_run(sweep):
    df, skipped = load_quiet(sweep)
    assert skipped == []
    assert df["run_id"].nunique() == 15
    assert len(df) == 150
    assert set(df["task"]) == {"copy", "reverse"}


def test_summary_numbers_match_hand_computation(sweep):
    df, _ = load_quiet(sweep)
    s = report.summarise(df).set_index(["task", "pe"])
    # copy/nope beyond per run: (1+.6)/2, (1+.8)/2, (1+.4)/2 = .8, .9, .7 -> mean .8, std .1
    assert s.loc[("copy", "nope"), "beyond_range_mean"] == pytest.approx(0.8)
    assert s.loc[("copy", "nope"), "beyond_range_std"] == pytest.approx(0.1)
    # in-range .1 + (1+a)/2 for a = 1, .8, .6 -> 1, .9, .8 -> mean .9, std .1
    assert s.loc[("copy", "nope"), "in_range_mean"] == pytest.approx(0.9)
    assert s.loc[("copy", "nope"), "in_range_std"] == pytest.approx(0.1)
    # copy/alibi in-range all .9 -> std exactly 0
    assert s.loc[("copy", "alibi"), "in_range_mean"] == pytest.approx(0.9)
    assert s.loc[("copy", "alibi"), "in_range_std"] == pytest.approx(0.0, abs=1e-12)
    # copy/rope beyond .6, .5, .6 -> mean 17/30, std sqrt(3/900)
    assert s.loc[("copy", "rope"), "beyond_range_mean"] == pytest.approx(17 / 30)
    assert s.loc[("copy", "rope"), "beyond_range_std"] == pytest.approx(math.sqrt(3 / 900))
    # reverse/nope beyond .6, .8 -> mean .7, std sqrt(.02)
    assert s.loc[("reverse", "nope"), "beyond_range_mean"] == pytest.approx(0.7)
    assert s.loc[("reverse", "nope"), "beyond_range_std"] == pytest.approx(math.sqrt(0.02))
    assert s.loc[("reverse", "rope"), "in_range_mean"] == pytest.approx(0.8)
    assert s["n_runs"].to_dict() == {k: len(v) for k, v in BEYOND.items()}
    assert set(s["train_range"]) == {"2–5"}
    # Sorted by task, then beyond-range descending; equal means (copy: nope/alibi .8, reverse:
    # nope/rope .7, equal only up to float noise) go by name.
    ordered = report.summarise(df)
    assert list(zip(ordered["task"], ordered["pe"])) == [
        ("copy", "alibi"), ("copy", "nope"), ("copy", "rope"),
        ("reverse", "nope"), ("reverse", "rope"), ("reverse", "alibi"),
    ]


def test_other_metric_is_used(sweep):
    df, _ = load_quiet(sweep)
    s = report.summarise(df, "token_accuracy").set_index(["task", "pe"])
    # token_accuracy = EM + .1 capped at 1: copy/rope seed 0 beyond = (40*1 + 40*.3)/80 = .65
    runs = report.per_run(df, "token_accuracy").set_index("run_id")
    assert runs.loc["copy-default-rope-s0", "acc_beyond_range"] == pytest.approx(0.65)
    assert s.loc[("copy", "rope"), "beyond_range_mean"] == pytest.approx((0.65 + 0.55 + 0.65) / 3)


def test_mrr_matches_hand_computation_with_a_tie(sweep):
    df, _ = load_quiet(sweep)
    r = report.ranks(df, learned_threshold=0.0).set_index(["task", "seed", "pe"])
    assert r.loc[("copy", 1, "nope"), "rank"] == 1
    assert r.loc[("copy", 1, "alibi"), "rank"] == 1  # tie shares the min rank
    assert r.loc[("copy", 1, "rope"), "rank"] == 3
    m = report.mrr(df, learned_threshold=0.0)
    overall = m[m["task"] == "all"].set_index("pe")
    assert overall.loc["nope", "mrr"] == pytest.approx(4 / 5)
    assert overall.loc["alibi", "mrr"] == pytest.approx(19 / 30)
    assert overall.loc["rope", "mrr"] == pytest.approx(1 / 2)
    assert overall["n_rankings"].tolist() == [5, 5, 5]
    assert overall.index.tolist() == ["nope", "alibi", "rope"]  # sorted by MRR
    per = m[m["task"] != "all"].set_index(["task", "pe"])["mrr"]
    assert per[("copy", "nope")] == pytest.approx(5 / 6)
    assert per[("copy", "alibi")] == pytest.approx(5 / 6)
    assert per[("copy", "rope")] == pytest.approx(1 / 3)
    assert per[("reverse", "nope")] == pytest.approx(3 / 4)
    assert per[("reverse", "alibi")] == pytest.approx(1 / 3)
    assert per[("reverse", "rope")] == pytest.approx(3 / 4)
    # mean rank of alibi: copy 2, 1, 1; reverse 3, 3 -> 2
    assert overall.loc["alibi", "mean_rank"] == pytest.approx(2.0)


def test_single_seed_has_no_std_and_lone_pe_is_not_ranked(tmp_path):
    write_run(tmp_path / "r1", run_rows("copy", "nope", 0, 0.8, 0.4))
    df, _ = load_quiet(tmp_path)
    s = report.summarise(df)
    assert math.isnan(s.loc[0, "beyond_range_std"])
    md = report.summary_markdown(s)
    assert "70.0 ± –" in md
    assert report.mrr(df).empty


def test_variant_shown_only_when_not_default(tmp_path):
    write_run(tmp_path / "a", run_rows("addition", "nope", 0, 0.8, 0.4))
    write_run(tmp_path / "b", run_rows("addition", "nope", 0, 0.8, 0.6, variant="scratchpad=full"))
    df, _ = load_quiet(tmp_path)
    s = report.summarise(df)
    assert len(s) == 2 and set(s["variant"]) == {"default", "scratchpad=full"}
    assert "| variant" in report.summary_markdown(s)
    out = report.write_report(df, tmp_path / "out")
    names = {p.name for p in out}
    assert "accuracy_vs_length_addition.png" in names
    assert "accuracy_vs_length_addition_scratchpad-full.png" in names
    single = df[df["variant"] == "default"]
    assert "variant" not in report.summary_markdown(report.summarise(single)).splitlines()[2]


def test_unfinished_and_damaged_runs_are_skipped_with_warnings(sweep):
    unfinished = write_run(sweep / "copy" / "t5" / "abc123" / "seed0", None)
    garbage = write_run(sweep / "copy" / "t5" / "abc123" / "seed1", None)
    (garbage / "results.parquet").write_bytes(b"PAR1 this is not parquet at all")
    truncated = write_run(sweep / "copy" / "t5" / "abc123" / "seed2", None)
    good = sweep / "copy" / "nope" / "abc123" / "seed0" / "results.parquet"
    (truncated / "results.parquet").write_bytes(good.read_bytes()[:200])
    no_col = write_run(sweep / "copy" / "t5" / "abc123" / "seed3",
                       run_rows("copy", "t5", 3, 1.0, 1.0).drop(columns=["exact_match"]))
    with pytest.warns(report.SkippedRunWarning) as record:
        df, skipped = report.load_runs([sweep])
    messages = "\n".join(str(w.message) for w in record)
    for bad in (unfinished, garbage, truncated, no_col):
        assert str(bad) in messages
    reasons = {Path(p).name: why for p, why in skipped}
    assert "unfinished" in reasons["seed0"]
    assert "unreadable" in reasons["seed1"] and "unreadable" in reasons["seed2"]
    assert "exact_match" in reasons["seed3"]
    assert len(skipped) == 4
    assert df["run_id"].nunique() == 15 and "t5" not in set(df["pe"])


def test_sweep_level_config_is_not_an_unfinished_run(sweep):
    (sweep / "config.yaml").write_text("study: unit\n")
    df, skipped = load_quiet(sweep)
    assert skipped == [] and df["run_id"].nunique() == 15


def test_same_dir_twice_is_read_once_and_nonexistent_path_raises(sweep, tmp_path):
    df, _ = load_quiet(sweep, sweep / "copy")
    assert df["run_id"].nunique() == 15
    with pytest.raises(FileNotFoundError, match="nope-not-here"):
        report.load_runs([tmp_path / "nope-not-here"])


def test_evals_are_opt_in(tmp_path):
    run = write_run(tmp_path / "r", run_rows("copy", "rope", 0, 1.0, 0.2))
    ev = run_rows("copy", "rope", 0, 1.0, 0.6)
    (run / "evals" / "yarn").mkdir(parents=True)
    ev.to_parquet(run / "evals" / "yarn" / "results.parquet")
    df, _ = load_quiet(tmp_path)
    assert set(df["pe"]) == {"rope"}
    df, _ = load_quiet(tmp_path, evals=True)
    assert set(df["pe"]) == {"rope", "rope+yarn"}
    assert report.mrr(df).set_index(["task", "pe"]).loc[("all", "rope+yarn"), "mrr"] == 1.0


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000, path


def test_write_report_writes_tables_and_plots(sweep, tmp_path):
    df, _ = load_quiet(sweep)
    out = tmp_path / "results" / "unit"  # created on demand
    written = report.write_report(df, out, title="unit", learned_threshold=0.0)
    names = sorted(p.name for p in written)
    assert names == sorted([
        "table.csv", "table.md", "ranking.csv", "ranking.md", "runs.csv", "ranks.csv",
        "accuracy_vs_length_copy.png", "accuracy_vs_length_reverse.png", "mrr.png",
    ])
    assert all(p.parent == out and p.is_file() for p in written)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind
    assert all(p.stat().st_mode & 0o044 for p in written)  # readable by others (mkstemp's 0600 undone)
    for p in written:
        if p.suffix == ".png":
            assert_png(p)
    table = pd.read_csv(out / "table.csv")
    assert len(table) == 6 and table["n_runs"].sum() == 15
    md = (out / "table.md").read_text()
    assert "| copy | nope |" in md.replace("  ", " ").replace("  ", " ")
    assert "80.0 ± 10.0" in md  # copy/nope beyond-range
    assert "variant" not in md
    header = next(line for line in md.splitlines() if line.startswith("| task"))
    assert "in-range" in header and "beyond-range" in header and "n runs" in header
    ranking_md = (out / "ranking.md").read_text()
    assert "0.800" in ranking_md and "0.633" in ranking_md
    ranking = pd.read_csv(out / "ranking.csv")
    assert ranking.loc[ranking["task"] == "all", "pe"].tolist() == ["nope", "alibi", "rope"]


def test_operand_length_heatmap_and_n_weighting_across_cells(tmp_path):
    rows = []
    for pe, good in (("abacus", 1.0), ("nope", 0.0)):
        for seed in (0, 1):
            for la in range(1, 7):
                for lb in range(1, 7):
                    length = max(la, lb)
                    inside = length <= 3
                    rows.append({
                        "run_id": f"{pe}-{seed}", "study": "u", "task": "addition", "variant": "default",
                        "pe": pe, "seed": seed, "train_min": 1, "train_max": 3, "eval_length": length,
                        "in_range": inside, "n": 2 if la == lb else 1,
                        "exact_match": 1.0 if inside or la == lb else good,
                        "answer_exact_match": 1.0, "token_accuracy": 1.0, "loss": 0.0,
                        "len_a": la, "len_b": lb,
                    })
    df = pd.DataFrame(rows)
    for run_id, g in df.groupby("run_id"):
        write_run(tmp_path / "runs" / run_id, g)
    loaded, _ = load_quiet(tmp_path / "runs")
    c = report.curves(loaded).set_index(["pe", "eval_length"])
    # nope at length 4: cells (4,b<4)x3, (a<4,4)x3 with n=1 EM 0, (4,4) n=2 EM 1 -> 2/8
    assert c.loc[("nope", 4), "mean"] == pytest.approx(0.25)
    assert c.loc[("abacus", 4), "mean"] == pytest.approx(1.0)
    g = report.grid(loaded, "len_a", "len_b").set_index(["pe", "len_a", "len_b"])
    assert g.loc[("nope", 5, 2), "exact_match"] == 0.0 and bool(g.loc[("nope", 2, 2), "in_range"])
    written = report.write_report(loaded, tmp_path / "out")
    heatmaps = sorted(p.name for p in written if p.name.startswith("heatmap_"))
    assert heatmaps == ["heatmap_addition_abacus.png", "heatmap_addition_nope.png"]
    for name in heatmaps:
        assert_png(tmp_path / "out" / name)


def test_markdown_escapes_aligns_and_keeps_formatted_numbers():
    text = report.markdown(pd.DataFrame({"a": ["x|y"], "b": ["0.800"]}), ["left", "right"])
    lines = text.splitlines()
    assert lines[0].startswith("| a") and lines[1].endswith("--:|")
    assert "x\\|y" in lines[2] and "0.800" in lines[2]  # no number parsing: 0.800 stays 0.800


def test_safe_name():
    assert report.safe_name("copy", "scratchpad=full", "rope/ntk") == "copy_scratchpad-full_rope-ntk"


def test_cli_writes_report_and_summary(sweep, tmp_path, capsys):
    write_run(sweep / "copy" / "t5" / "x" / "seed0", None)  # unfinished: a warning, not a failure
    out = tmp_path / "out"
    assert report_cmd.main([str(sweep), f"out={out}", "title=Unit", "learned_threshold=0"]) == 0
    captured = capsys.readouterr()
    assert "nope" in captured.out and "MRR" in captured.out
    assert "table.md" in captured.out
    assert "skipping run" in captured.err and "unfinished" in captured.err
    assert (out / "table.md").read_text().startswith("# Unit")
    assert (out / "mrr.png").is_file()


def test_cli_metric_option(sweep, tmp_path):
    out = tmp_path / "out"
    assert report_cmd.main([str(sweep), f"out={out}", "metric=token_accuracy", "plots=false"]) == 0
    assert "token_accuracy" in (out / "table.md").read_text()


def test_cli_exits_2_on_missing_path_or_no_runs(tmp_path, capsys):
    missing = tmp_path / "does-not-exist"
    assert report_cmd.main([str(missing), f"out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "path does not exist" in err and str(missing) in err
    empty = tmp_path / "empty"
    write_run(empty / "r", None)
    assert report_cmd.main([str(empty), f"out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("lengen: error:") and "no finished run" in err
    assert not (tmp_path / "o").exists()


def test_cli_help_returns_zero(capsys):
    assert report_cmd.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "out=DIR" in out and "metric: exact_match" in out and "learned_threshold" in out


def test_lengths_below_training_are_not_beyond_range(tmp_path):
    rows = run_rows("copy", "nope", 0, 1.0, 0.5)
    short = rows.iloc[[0]].assign(eval_length=1, in_range=False, n=1000, exact_match=0.0)
    write_run(tmp_path / "r", pd.concat([rows, short], ignore_index=True))
    df, _ = load_quiet(tmp_path)
    run = report.per_run(df).iloc[0]
    assert run["acc_beyond_range"] == pytest.approx((40 * 1.0 + 40 * 0.5) / 80)
