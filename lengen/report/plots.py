"""Figures of a report, built as plain matplotlib ``Figure`` objects.

Each ``plot_*`` function returns its Figure without saving it, so tests can check what is drawn
(lines, bar heights, heatmap arrays) instead of file sizes. Figures are made with
``matplotlib.figure.Figure`` rather than pyplot: no global figure registry to leak into, no
backend to switch, and matplotlib is imported only when a plot is actually drawn.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from lengen.io import atomic_write
from lengen.report.aggregate import ALL_TASKS, curves, grid, summarise
from lengen.report.render import context_columns, context_label


def safe_name(*parts: object) -> str:
    """File-name-safe join of parts ('scratchpad=full' -> 'scratchpad-full')."""
    cleaned = [re.sub(r"[^A-Za-z0-9._-]+", "-", str(p)).strip("-.") for p in parts]
    return "_".join(c for c in cleaned if c) or "unnamed"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="tight")


def _titled(title: str | None, label: str, width: int = 60) -> str:
    """Title lines wrapped at `width` characters: long variant labels would run off the figure."""
    text = f"{title}: {label}" if title else label
    text = re.sub(r",(?=\S)", ", ", text)  # variant labels ("a=1,b=2") may break after a comma
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def save(fig, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def plot_accuracy_vs_length(rows: pd.DataFrame, metric: str = "exact_match", *, label: str = "",
                            title: str | None = None, learned_threshold: float | None = None):
    """Accuracy vs length for one context's rows: a line per PE (mean over seeds, min–max band).

    PEs are drawn best beyond-range first; the training range is shaded grey; with a
    `learned_threshold`, PEs not learned in range are dashed. The x axis spans exactly the
    evaluated lengths (± 0.5), the y axis 0–1 with a small margin.
    """
    c = curves(rows, metric)
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    for lo, hi in sorted(set(zip(rows["train_min"], rows["train_max"]))):
        span = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
        ax.axvspan(*span, color="0.85", zorder=0, label=f"train {lo:g}–{hi:g}")
    summary = summarise(rows, metric, learned_threshold=learned_threshold or 0.0)
    for pe, learned in zip(summary["pe"], summary["learned"]):
        g = c[c["pe"] == pe]
        (line,) = ax.plot(g["eval_length"], g["mean"], marker="o" if len(g) <= 30 else None, ms=3, lw=1.6,
                          ls="-" if learned else "--",
                          label=f"{pe} (n={int(g['n_runs'].max())}{'' if learned else ', not learned'})")
        if (g["n_runs"] > 1).any():
            ax.fill_between(g["eval_length"], g["min"], g["max"], color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlim(c["eval_length"].min() - 0.5, c["eval_length"].max() + 0.5)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("length")
    ax.set_ylabel(f"{metric} (mean over seeds; band = min–max)")
    ax.grid(alpha=0.3)
    ax.set_title(_titled(title, label))
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_mrr(ranking: pd.DataFrame, title: str | None = None):
    """Bar per PE of overall MRR (bootstrap 95% interval as error bar), each context's MRR as a dot."""
    overall = ranking[ranking["task"] == ALL_TASKS]
    per_ctx = ranking[ranking["task"] != ALL_TASKS]
    pes = overall["pe"].tolist()
    fig = _figure(max(4.0, 0.9 * len(pes) + 2), 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(pes))
    heights = overall["mrr"].to_numpy(dtype=float)
    bars = ax.bar(x, heights, color="tab:blue", alpha=0.8, label="all tasks")
    ax.bar_label(bars, fmt="%.2f", fontsize=8, label_type="center", color="w")
    if overall["mrr_ci_low"].notna().any():
        low = np.clip(heights - overall["mrr_ci_low"].to_numpy(dtype=float), 0, None)
        high = np.clip(overall["mrr_ci_high"].to_numpy(dtype=float) - heights, 0, None)
        ax.errorbar(x, heights, yerr=[low, high], fmt="none", ecolor="k", capsize=3, lw=1,
                    label="95% interval")
    ctx = context_columns(ranking)
    contexts = list(dict.fromkeys(per_ctx[ctx].itertuples(index=False, name=None)))
    if len(contexts) > 1:
        markers = "osD^v<>ph*"
        lookup = per_ctx.set_index([*ctx, "pe"])["mrr"]
        for k, values in enumerate(contexts):
            ys = [lookup.get((*values, pe), np.nan) for pe in pes]
            ax.scatter(x + (k - (len(contexts) - 1) / 2) * 0.08, ys, s=14, marker=markers[k % len(markers)],
                       color="k", alpha=0.6, zorder=3, label=context_label(values))
    crowded = len(pes) > 5
    ax.set_xticks(x, pes, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("mean reciprocal rank")
    ax.set_title(_titled(title, "MRR (beyond-range)"))
    ax.legend(fontsize=7, loc="upper right")
    return fig


def heatmap_array(rows: pd.DataFrame, x: str, y: str, metric: str = "exact_match"):
    """(xs, ys, values[y, x], inside[y, x]) for one PE's rows: mean over runs, NaN where not evaluated."""
    cells = grid(rows, x, y, metric)
    xs, ys = np.sort(cells[x].unique()), np.sort(cells[y].unique())
    values = np.full((len(ys), len(xs)), np.nan)
    inside = np.zeros_like(values, dtype=bool)
    rows_at, cols_at = np.searchsorted(ys, cells[y]), np.searchsorted(xs, cells[x])
    values[rows_at, cols_at] = cells[metric]
    inside[rows_at, cols_at] = cells["in_range"].astype(bool)
    return xs, ys, values, inside


def _outline(ax, inside: np.ndarray) -> None:
    """Red edges between in-range and out-of-range cells (or the border)."""
    padded = np.pad(inside, 1)
    for i, j in zip(*np.nonzero(inside)):
        for di, dj, xs, ys in ((-1, 0, (-.5, .5), (-.5, -.5)), (1, 0, (-.5, .5), (.5, .5)),
                               (0, -1, (-.5, -.5), (-.5, .5)), (0, 1, (.5, .5), (-.5, .5))):
            if not padded[i + 1 + di, j + 1 + dj]:
                ax.plot([j + xs[0], j + xs[1]], [i + ys[0], i + ys[1]], color="red", lw=1.2)


def plot_heatmap(rows: pd.DataFrame, x: str = "len_a", y: str = "len_b", metric: str = "exact_match", *,
                 label: str = "", title: str | None = None):
    """Mean `metric` over (x, y) cells for one PE's rows; the in-range cells are outlined in red."""
    xs, ys, values, inside = heatmap_array(rows, x, y, metric)
    fig = _figure(min(2 + 0.35 * len(xs), 12), min(1.6 + 0.3 * len(ys), 10))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(values), origin="lower", cmap="viridis", vmin=0, vmax=1,
                   aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, label=metric)
    _outline(ax, inside)
    if values.size <= 400:
        for i, j in zip(*np.nonzero(~np.isnan(values))):
            ax.text(j, i, f"{100 * values[i, j]:.0f}", ha="center", va="center", fontsize=6,
                    color="w" if values[i, j] < 0.6 else "k")
    for axis, ticks in ((ax.set_xticks, xs), (ax.set_yticks, ys)):
        step = max(1, len(ticks) // 20)
        axis(range(0, len(ticks), step), [f"{v:g}" for v in ticks[::step]], fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(_titled(title, label), fontsize=9)
    return fig
