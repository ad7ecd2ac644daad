"""Plots checked through the matplotlib objects they are made of: lines, bars, heatmap arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import BarContainer, ErrorbarContainer

from lengen import report

# Per-length EM for lengths 2..5 (train 2..3), two seeds per PE.
CURVES = {
    "good": [[1.0, 1.0, 0.8, 0.6], [1.0, 1.0, 0.6, 0.4]],   # in-range 1.0: learned
    "bad": [[1.0, 0.8, 0.2, 0.0], [1.0, 0.9, 0.0, 0.0]],    # in-range .9 / .95 -> .925: not learned
}


def curve_rows(task: str = "copy", curves: dict = CURVES) -> pd.DataFrame:
    return pd.DataFrame([{
        "run_id": f"{task}-{pe}-{seed}", "study": "u", "task": task, "variant": "default", "pe": pe,
        "seed": seed, "train_min": 2, "train_max": 3, "eval_length": length, "in_range": length <= 3,
        "n": 10.0, "exact_match": em, "hardware": "unknown",
    } for pe, seeds in curves.items() for seed, ems in enumerate(seeds)
        for length, em in zip(range(2, 6), ems)])


def test_accuracy_vs_length_has_one_line_per_pe_with_the_mean_curve():
    fig = report.plot_accuracy_vs_length(curve_rows(), label="copy", title="T", learned_threshold=0.95)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["good (n=2)", "bad (n=2, not learned)"]  # best first
    for line, expected in zip(lines, ([1.0, 1.0, 0.7, 0.5], [1.0, 0.85, 0.1, 0.0])):
        assert line.get_xdata().tolist() == [2, 3, 4, 5]
        assert line.get_ydata() == pytest.approx(expected)
    assert [line.get_linestyle() for line in lines] == ["-", "--"]
    assert ax.get_xlim() == pytest.approx((1.5, 5.5)) and ax.get_ylim() == pytest.approx((-0.03, 1.03))
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # min–max band per PE (two seeds each)
    band = bands[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(1.0) and band[:, 1].min() == pytest.approx(0.4)
    assert len(ax.patches) == 1 and ax.patches[0].get_label() == "train 2–3"
    assert ax.get_title() == "T: copy"


def test_mrr_bars_have_the_mrr_heights_and_per_task_dots():
    df = pd.concat([
        curve_rows("copy", {"a": [[1, 1, 0.9, 0.9]] * 2, "b": [[1, 1, 0.1, 0.1]] * 2}),
        curve_rows("reverse", {"a": [[1, 1, 0.1, 0.1]] * 2, "b": [[1, 1, 0.9, 0.9]] * 2}),
    ], ignore_index=True)
    ranking = report.mrr(df)  # each PE wins one task on both seeds: MRR .75 each
    fig = report.plot_mrr(ranking, title="T")
    ax = fig.axes[0]
    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    assert [b.get_height() for b in bars] == pytest.approx([0.75, 0.75])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)  # the bootstrap interval
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [d.get_label() for d in dots] == ["copy", "reverse"]
    assert dots[0].get_offsets()[:, 1].tolist() == [1.0, 0.5]
    assert dots[1].get_offsets()[:, 1].tolist() == [0.5, 1.0]
    assert ax.get_title() == "T: MRR (beyond-range)"


def addition_rows() -> pd.DataFrame:
    """Operand lengths 1..3 x 1..3 (cell (3, 3) never evaluated), train max 2: EM = 1 / len_a, n = 1."""
    return pd.DataFrame([{
        "run_id": f"nope-{seed}", "study": "u", "task": "addition", "variant": "default", "pe": "nope",
        "seed": seed, "train_min": 1, "train_max": 2, "eval_length": max(a, b), "in_range": max(a, b) <= 2,
        "n": 1.0, "exact_match": 1 / a if seed == 0 else 0.5 / a, "len_a": float(a), "len_b": float(b),
        "hardware": "unknown",
    } for seed in (0, 1) for a in (1, 2, 3) for b in (1, 2, 3) if (a, b) != (3, 3)])


def test_heatmap_shows_the_mean_over_runs_per_cell():
    fig = report.plot_heatmap(addition_rows(), "len_a", "len_b", label="addition — nope")
    ax = fig.axes[0]
    shown = ax.images[0].get_array()
    expected = np.tile([0.75, 0.375, 0.25], (3, 1))  # rows = len_b, columns = len_a; (1 + .5) / 2 / a
    assert shown.shape == (3, 3)
    assert shown.mask.tolist() == [[False] * 3, [False] * 3, [False, False, True]]
    assert shown.filled(np.nan)[~shown.mask] == pytest.approx(expected[~shown.mask])
    outline = [line for line in ax.get_lines() if line.get_color() == "red"]
    assert len(outline) == 8  # the 2 x 2 in-range block has 8 unit edges
    assert len(ax.texts) == 8 and ax.get_xlabel() == "len_a" and ax.get_ylabel() == "len_b"


def test_write_report_draws_heatmaps_only_for_numeric_task_keys(tmp_path):
    df = addition_rows()
    depth = df.drop(columns=["len_a", "len_b"]).assign(task="passkey", depth=df["len_a"],
                                                     run_id=lambda f: "pk-" + f["run_id"])
    both = pd.concat([df, depth], ignore_index=True).assign(run_dir="somewhere")
    written = {p.name for p in report.write_report(both, tmp_path, bootstrap=0)}
    assert {n for n in written if n.startswith("heatmap")} == {
        "heatmap_addition_nope.png", "heatmap_depth_passkey_nope.png"}  # never hardware or run_dir


def test_long_titles_wrap_between_words_not_inside_them():
    from lengen.report.plots import _titled

    label = "addition (positions=coupled,pad_operands=True,reverse_answer=True,reverse_operands=True)"
    lines = _titled("Encodings after Kazemnejad et al., CPU scale", label).split("\n")
    assert len(lines) > 1 and all(len(line) <= 60 for line in lines)
    words = {"(positions=coupled,", "pad_operands=True,", "reverse_answer=True,", "reverse_operands=True)"}
    assert words <= set(" ".join(lines).split())  # each key=value stays whole on one line
    assert _titled(None, "copy") == "copy"
