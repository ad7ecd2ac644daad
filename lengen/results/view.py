"""The terminal view of one run's rows: exact match by length bucket and the in/beyond summary."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from lengen.results.schema import group_keys

SPARK = " ▁▂▃▄▅▆▇█"


def weighted(rows: pd.DataFrame, metric: str, mask) -> float:
    sub = rows[mask]
    return float((sub[metric] * sub["n"]).sum() / sub["n"].sum()) if len(sub) and sub["n"].sum() else float("nan")


def summary(rows: pd.DataFrame) -> dict[str, float]:
    """n-weighted exact match inside the training range and beyond it (longer than trained)."""
    return {
        "in_range": weighted(rows, "exact_match", rows["in_range"]),
        "beyond": weighted(rows, "exact_match", rows["eval_length"] > rows["train_max"]),
    }


def _spark(values) -> str:
    return "".join(SPARK[min(len(SPARK) - 1, round(v * (len(SPARK) - 1)))] for v in values)


def print_table(rows: pd.DataFrame, console: Console | None = None, title: str = "") -> None:
    """Per-length exact match (one line per length bucket, sparkline of the lengths in it)."""
    console = console or Console()
    per_len = (
        rows.assign(w=rows["exact_match"] * rows["n"], t=rows["token_accuracy"] * rows["n"])
        .groupby("eval_length")
        .agg(n=("n", "sum"), w=("w", "sum"), t=("t", "sum"), in_range=("in_range", "first"))
    )
    per_len["em"] = per_len["w"] / per_len["n"]
    per_len["tok"] = per_len["t"] / per_len["n"]
    table = Table(title=title or "exact match by length", show_lines=False)
    for col in ("lengths", "range", "exact match", "token acc", "per length"):
        table.add_column(col, justify="right" if col != "per length" else "left")
    lengths = per_len.index.to_list()
    step = max(1, -(-len(lengths) // 12))
    for i in range(0, len(lengths), step):
        chunk = per_len.iloc[i : i + step]
        inside = chunk["in_range"].all()
        mixed = chunk["in_range"].any() and not inside
        em = (chunk["w"].sum()) / chunk["n"].sum()
        tok = (chunk["t"].sum()) / chunk["n"].sum()
        label = f"{chunk.index[0]}" if len(chunk) == 1 else f"{chunk.index[0]}–{chunk.index[-1]}"
        rng = "mixed" if mixed else ("in" if inside else "beyond")
        style = "green" if em >= 0.99 else ("yellow" if em >= 0.5 else "red")
        table.add_row(label, rng, f"[{style}]{em:.3f}[/]", f"{tok:.3f}", _spark(chunk["em"]))
    console.print(table)
    s = summary(rows)
    console.print(f"in-range exact match [bold]{s['in_range']:.4f}[/]   beyond-range exact match [bold]{s['beyond']:.4f}[/]")
    extra = group_keys(rows)
    if len(extra) == 1:  # e.g. passkey depth: exact match per (length, depth)
        print_pivot(rows, extra[0], console)


def print_pivot(rows: pd.DataFrame, key: str, console: Console) -> None:
    pivot = rows.pivot_table(index="eval_length", columns=key, values="exact_match", aggfunc="mean")
    table = Table(title=f"exact match by length x {key}")
    table.add_column("length", justify="right")
    for col in pivot.columns:
        table.add_column(f"{key}={col:g}", justify="right")
    for length, values in pivot.iterrows():
        table.add_row(str(length), *("–" if pd.isna(v) else f"{v:.2f}" for v in values))
    console.print(table)
