"""Figures of an analysis (matplotlib ``Figure`` objects, as in :mod:`lengen.report.plots`).

Each ``plot_*`` returns its Figure unsaved, so tests can read what is drawn; the app saves them.
Lines are means over seeds and heads (the mean-over-heads rows); the training range is shaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="tight")


def _shade_train(ax, rows: pd.DataFrame) -> None:
    lo, hi = int(rows["train_min"].min()), int(rows["train_max"].max())
    ax.axvspan(lo - 0.5, hi + 0.5, color="0.88", zorder=0, label=f"train {lo}–{hi}")


def _heads_mean(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["head"].isna()] if "head" in rows else rows


def jsd_grid(rows: pd.DataFrame) -> pd.DataFrame:
    """One pair's mean-over-heads JSD as a layers x lengths table."""
    m = _heads_mean(rows)
    m = m[m["measure"] == "jsd"]
    return m.pivot_table(index="layer", columns="eval_length", values="value", aggfunc="mean")


def plot_pair_heatmap(rows: pd.DataFrame, title: str):
    """Heatmap of one pair's JSD: layers (rows) x lengths (columns); the training range boxed."""
    grid = jsd_grid(rows)
    fig = _figure(max(5.0, 0.22 * grid.shape[1] + 2.5), 1.0 + 0.5 * grid.shape[0])
    ax = fig.add_subplot()
    image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", vmin=0.0, interpolation="nearest")
    lengths = list(grid.columns)
    step = max(1, len(lengths) // 20)
    ax.set_xticks(range(0, len(lengths), step), [str(x) for x in lengths[::step]])
    ax.set_yticks(range(grid.shape[0]), [str(x) for x in grid.index])
    hi = int(rows["train_max"].max())
    inside = [i for i, x in enumerate(lengths) if x <= hi]
    if inside:
        ax.axvline(inside[-1] + 0.5, color="white", lw=1.5, ls="--")
    ax.set_xlabel("length (dashed: end of training range)")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="JSD (nats)")
    return fig


def plot_jsd_vs_length(rows: pd.DataFrame, title: str):
    """Mean JSD over layers and pairs vs length, one line per (PE of A, PE of B)."""
    m = _heads_mean(rows)
    m = m[m["measure"] == "jsd"]
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    _shade_train(ax, m)
    per_pair = m.groupby(["pe", "pe_b", "run_id", "run_id_b", "eval_length"], as_index=False)["value"].mean()
    order = per_pair.groupby(["pe", "pe_b"])["value"].mean().sort_values().index
    for pe_a, pe_b in order:
        g = per_pair[(per_pair["pe"] == pe_a) & (per_pair["pe_b"] == pe_b)]
        curve = g.groupby("eval_length")["value"].agg(["mean", "min", "max"])
        style = "--" if pe_a == pe_b else "-"
        label = f"{pe_a} vs {pe_b}" + (" (seeds)" if pe_a == pe_b else "")
        (line,) = ax.plot(curve.index, curve["mean"], ls=style, lw=1.6, label=label)
        ax.fill_between(curve.index, curve["min"], curve["max"], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("length")
    ax.set_ylabel("JSD of attention (nats, mean over layers)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def plot_measure_by_layer(rows: pd.DataFrame, measure: str, ylabel: str, title: str,
                          control: str | None = None):
    """``measure`` vs length, a panel per layer, a line per PE (mean over seeds; min–max band);
    ``control`` (e.g. the shuffled-label probe) dotted in the same colour."""
    m = _heads_mean(rows)
    layers = sorted(m["layer"].unique())
    fig = _figure(3.2 * len(layers) + 0.6, 3.4)
    axes = fig.subplots(1, len(layers), sharey=True, squeeze=False)[0]
    for ax, layer in zip(axes, layers):
        g = m[m["layer"] == layer]
        _shade_train(ax, g)
        for pe in sorted(g["pe"].unique()):
            curve = g[(g["pe"] == pe) & (g["measure"] == measure)].groupby("eval_length")["value"]
            curve = curve.agg(["mean", "min", "max"])
            (line,) = ax.plot(curve.index, curve["mean"], lw=1.5, label=pe)
            ax.fill_between(curve.index, curve["min"], curve["max"], color=line.get_color(), alpha=0.15, lw=0)
            if control is not None:
                c = g[(g["pe"] == pe) & (g["measure"] == control)].groupby("eval_length")["value"].mean()
                ax.plot(c.index, c.to_numpy(), ls=":", lw=1.0, color=line.get_color())
        ax.set_title(f"layer {layer}" + (" (embeddings)" if measure.startswith(("position", "to_end"))
                                         and layer == 0 else ""), fontsize=9)
        ax.set_xlabel("length")
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title, fontsize=9)
    if np.isfinite(m["value"]).any() and measure.endswith("accuracy"):
        axes[0].set_ylim(-0.02, 1.02)
    return fig
