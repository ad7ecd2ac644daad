"""Tables for people: one display DataFrame per table, written as markdown, CSV or a rich table.

Each table is built once as a frame of formatted strings (:func:`summary_view`,
:func:`ranking_view`); markdown (``DataFrame.to_markdown``, i.e. tabulate) and the terminal
(rich) both render that same frame, so the file and the screen can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lengen.io import atomic_write
from lengen.report.aggregate import ALL_TASKS

DASH = "–"
NOT_LEARNED = "not learned in range"
_BOOT = {"95% interval": "right", "P(rank 1)": "right"}


def pct(value: float) -> str:
    return DASH if value is None or pd.isna(value) else f"{100 * value:.1f}"


def mean_std(mean: float, std: float) -> str:
    """'87.5 ± 3.2' in percent; the std reads '–' when there is no spread to report."""
    return DASH if pd.isna(mean) else f"{pct(mean)} ± {pct(std)}"


def _num(value: float, fmt: str) -> str:
    return DASH if pd.isna(value) else format(value, fmt)


def show_variant(frame: pd.DataFrame) -> bool:
    return "variant" in frame.columns and bool((frame["variant"].fillna("default") != "default").any())


def task_label(task: str, variant: str, with_variant: bool = True) -> str:
    return f"{task} ({variant})" if with_variant and variant not in ("", "default") else task


def context_label(values: Sequence[object], with_variant: bool = True) -> str:
    """'copy', 'addition (scratchpad=full)', 'copy @ AMD EPYC': a context for humans."""
    task, variant, *rest = values
    return " @ ".join([task_label(task, variant, with_variant), *(str(v) for v in rest)])


def context_columns(frame: pd.DataFrame) -> list[str]:
    """The context keys of a summary or ranking frame: every column before ``pe``."""
    return list(frame.columns[: frame.columns.get_loc("pe")])


def summary_view(summary: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The summary as display strings (percent, mean ± std, learned), with column alignments."""
    metric = summary["metric"].iloc[0] if len(summary) else "exact_match"
    keys = [c for c in context_columns(summary) if c != "variant" or show_variant(summary)]
    view = summary[[*keys, "pe"]].astype(str)
    if summary["train_range"].nunique() > 1:
        view["train"] = summary["train_range"]
    for region in ("in", "beyond"):
        view[f"{region}-range {metric} (%)"] = [
            mean_std(m, s) for m, s in zip(summary[f"{region}_range_mean"], summary[f"{region}_range_std"])]
    view["learned"] = ["yes" if ok else NOT_LEARNED for ok in summary["learned"]]
    view["n runs"] = summary["n_runs"].astype(str)
    align = ["left"] * (view.shape[1] - 4) + ["right", "right", "left", "right"]
    return view, align


def ranking_view(ranking: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Overall MRR per PE (with its bootstrap when present) and each context's MRR beside it."""
    ctx = context_columns(ranking)
    overall = ranking[ranking["task"] == ALL_TASKS]
    per_ctx = ranking[ranking["task"] != ALL_TASKS]
    with_variant = show_variant(per_ctx)
    view = pd.DataFrame({"rank": [str(i) for i in range(1, len(overall) + 1)], "pe": overall["pe"].to_numpy(),
                         "MRR": [_num(v, ".3f") for v in overall["mrr"]]})
    if overall["mrr_boot_mean"].notna().any():
        view["95% interval"] = [f"[{_num(lo, '.2f')}, {_num(hi, '.2f')}]"
                                for lo, hi in zip(overall["mrr_ci_low"], overall["mrr_ci_high"])]
        view["P(rank 1)"] = [_num(v, ".2f") for v in overall["p_rank1"]]
    view["mean rank"] = [_num(v, ".2f") for v in overall["mean_rank"]]
    view["rankings"] = [str(int(v)) for v in overall["n_rankings"]]
    lookup = per_ctx.set_index([*ctx, "pe"])["mrr"]
    for values in dict.fromkeys(per_ctx[ctx].itertuples(index=False, name=None)):
        view[f"MRR {context_label(values, with_variant)}"] = [
            _num(lookup.get((*values, pe), math.nan), ".3f") for pe in overall["pe"]]
    align = ["right", "left", *(["right"] * (view.shape[1] - 2))]
    return view, align


def markdown(view: pd.DataFrame, align: Sequence[str]) -> str:
    """GitHub markdown via tabulate; '|' inside a cell is escaped so it cannot split a column."""
    escaped = view.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    escaped.columns = [str(c).replace("|", "\\|") for c in view.columns]
    return escaped.to_markdown(index=False, colalign=list(align), disable_numparse=True) + "\n"


def hardware_note(labels: Sequence[str], grouped: bool) -> str | None:
    """One line about runs from several hardware setups (None when there is only one)."""
    if len(labels) <= 1:
        return None
    effect = ("tables are split by hardware" if grouped
              else "their numbers are pooled in these tables; group_by=[hardware] keeps them apart")
    return f"runs come from {len(labels)} hardware setups ({'; '.join(labels)}): {effect}."


def summary_markdown(summary: pd.DataFrame, *, title: str | None = None, command: str | None = None,
                     n_skipped: int = 0, learned_threshold: float | None = None,
                     hardware: Sequence[str] = ()) -> str:
    """table.md: one row per cell with in/beyond-range mean ± std, the learned flag and n runs."""
    metric = summary["metric"].iloc[0] if len(summary) else "exact_match"
    notes = [f"Mean ± sample std over seeds of the n-weighted `{metric}` per run."]
    ranges = sorted(set(summary["train_range"]))
    if len(ranges) == 1:
        notes.append(f"Training lengths {ranges[0]}; beyond-range = every evaluated length above it.")
    if learned_threshold is not None:
        notes.append(f"A cell is learned when its in-range mean reaches {100 * learned_threshold:g}%; cells "
                     f"{NOT_LEARNED} are left out of the beyond-range ranking.")
    if n_skipped:
        notes.append(f"{n_skipped} run dir(s) skipped (unfinished or damaged).")
    note = hardware_note(hardware, "hardware" in context_columns(summary))
    if note:
        notes.append(f"**Mixed hardware:** {note[0].upper()}{note[1:]}")
    if command:
        notes.append(f"Produced by `{command}`.")
    head = f"# {title}\n\n" if title else ""
    return head + " ".join(notes) + "\n\n" + markdown(*summary_view(summary))


def ranking_markdown(ranking: pd.DataFrame, *, title: str | None = None, command: str | None = None,
                     not_learned: Sequence[str] = ()) -> str:
    """ranking.md: PEs by overall MRR, its bootstrap interval and P(rank 1), per-context MRR beside it."""
    per = ", ".join(["task", *context_columns(ranking)[2:], "seed"])
    notes = (f"PEs ranked per ({per}) by beyond-range accuracy among the cells learned in range "
             "(1 = best, ties share the best rank); MRR = mean of 1/rank over those rankings.")
    if not ranking.empty and ranking["mrr_boot_mean"].notna().any():
        notes += (" Bootstrap: seeds resampled with replacement within each task; 95% interval = 2.5–97.5 "
                  "percentiles of the resampled MRR; P(rank 1) = share of samples in which the PE has the "
                  "highest MRR (ties split).")
    if command:
        notes += f" Produced by `{command}`."
    parts = [f"# {title} — ranking\n" if title else "", notes + "\n"]
    if ranking.empty:
        parts.append("No ranking: fewer than two learned PEs with beyond-range results in any "
                     "(task, seed).\n")
    else:
        parts.append(markdown(*ranking_view(ranking)))
        if ranking.loc[ranking["task"] == ALL_TASKS, "n_rankings"].nunique() > 1:
            parts.append("PEs took part in different numbers of rankings (column `rankings`): their overall "
                         "MRRs are only comparable between PEs ranked in the same (task, seed) groups.\n")
    if not_learned:
        parts.append(f"Left out, {NOT_LEARNED}: {', '.join(not_learned)}.\n")
    return "\n".join(p for p in parts if p)


def rich_table(view: pd.DataFrame, align: Sequence[str], title: str, sections: Sequence[str] = ()):
    """The same display frame as a rich table; a rule between groups of `sections` columns."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, justify in zip(view.columns, align):
        table.add_column(str(name), justify="right" if justify == "right" else "left",
                         style="bold" if name == "pe" else None)
    previous = None
    for row in view.itertuples(index=False, name=None):
        key = tuple(row[view.columns.get_loc(c)] for c in sections if c in view.columns)
        if previous is not None and key != previous:
            table.add_section()
        previous = key
        table.add_row(*(escape(str(cell)) for cell in row))
    return table


def rich_tables(summary: pd.DataFrame, ranking: pd.DataFrame) -> list:
    """The numbers of table.md and ranking.md as rich tables for the terminal."""
    metric = summary["metric"].iloc[0] if len(summary) else "exact_match"
    tables = [rich_table(*summary_view(summary), title=f"{metric} (%), mean ± std over seeds",
                         sections=context_columns(summary))]
    if not ranking.empty:
        view, align = ranking_view(ranking)
        keep = [c for c in view.columns if not c.startswith("MRR ")]
        tables.append(rich_table(view[keep], align[: len(keep)], title="MRR over (task, seed) rankings"))
    return tables


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
