"""``lengen report``: finished runs in, tables, a PE ranking and plots out.

The package is one pipeline, a module per step: :mod:`~lengen.report.load` (run dirs -> rows),
:mod:`~lengen.report.aggregate` (rows -> per-run, per-cell and ranking numbers),
:mod:`~lengen.report.stats` (the MRR bootstrap), :mod:`~lengen.report.extend` (accuracy by
extension method), :mod:`~lengen.report.render` (numbers ->
markdown / CSV / terminal) and :mod:`~lengen.report.plots` (numbers -> figures);
:mod:`~lengen.report.app` is the command around them. Every file is written atomically, so an
interrupted report never leaves half a table.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lengen.report import extend as methods
from lengen.report.aggregate import (
    ALL_TASKS,
    BOOTSTRAP_SAMPLES,
    LEARNED_THRESHOLD,
    cells,
    check_group_by,
    check_metric,
    contexts,
    curves,
    grid,
    hardware_labels,
    mrr,
    per_run,
    ranks,
    summarise,
    task_keys,
)
from lengen.report.load import UNKNOWN_HARDWARE, SkippedRunWarning, find_run_dirs, hardware_label, load_runs
from lengen.report.plots import (
    heatmap_array,
    plot_accuracy_vs_length,
    plot_heatmap,
    plot_mrr,
    safe_name,
    save,
)
from lengen.report.render import (
    NOT_LEARNED,
    context_label,
    markdown,
    ranking_markdown,
    ranking_view,
    rich_tables,
    summary_markdown,
    summary_view,
    write_csv,
    write_text,
)
from lengen.report.stats import bootstrap_mrr
from lengen.report.timing import timing_markdown, timing_table

__all__ = [
    "ALL_TASKS", "BOOTSTRAP_SAMPLES", "LEARNED_THRESHOLD", "NOT_LEARNED", "UNKNOWN_HARDWARE",
    "SkippedRunWarning", "Tables", "bootstrap_mrr", "build_tables", "curves", "find_run_dirs", "grid",
    "hardware_label", "hardware_labels", "heatmap_array", "load_runs", "markdown", "mrr", "per_run",
    "plot_accuracy_vs_length", "plot_heatmap", "plot_mrr", "ranking_markdown", "ranking_view", "ranks",
    "rich_tables", "safe_name", "summarise", "summary_markdown", "summary_view", "write_report",
]


@dataclass(frozen=True)
class Tables:
    """Every number a report writes, computed once for the files and the terminal alike."""

    metric: str
    group_by: tuple[str, ...]
    learned_threshold: float
    summary: pd.DataFrame
    ranking: pd.DataFrame
    runs: pd.DataFrame
    ranks: pd.DataFrame

    @property
    def not_learned(self) -> list[str]:
        rows = self.summary[~self.summary["learned"]]
        keys = rows[cells(self.group_by)].itertuples(index=False)
        return [" / ".join(str(v) for v in r if v != "default") for r in keys]


def build_tables(df: pd.DataFrame, metric: str = "exact_match", *, group_by: Sequence[str] = (),
                 learned_threshold: float = LEARNED_THRESHOLD, bootstrap: int = BOOTSTRAP_SAMPLES) -> Tables:
    """Check `metric` and `group_by` against the rows (ConfigError), then compute every table."""
    check_metric(df, metric)
    check_group_by(df, group_by)
    opts = {"group_by": tuple(group_by), "learned_threshold": learned_threshold}
    return Tables(metric, tuple(group_by), learned_threshold, summary=summarise(df, metric, **opts),
                  ranking=mrr(df, metric, bootstrap=bootstrap, **opts),
                  runs=per_run(df, metric, group_by=group_by), ranks=ranks(df, metric, **opts))


def _plots(df: pd.DataFrame, t: Tables, title: str | None) -> list[tuple[str, Callable[[], object]]]:
    """(file name, figure maker) for every plot the rows support."""
    out = []
    ctx = contexts(t.group_by)
    for values in t.summary[ctx].drop_duplicates().itertuples(index=False, name=None):
        rows = df[(df[ctx] == pd.Series(values, index=ctx)).all(axis=1)]
        task, variant, *extra = values
        stem = safe_name(task, *([] if variant == "default" else [variant]), *extra)
        label = context_label(values)
        out.append((f"accuracy_vs_length_{stem}.png",
                    lambda r=rows, lab=label: plot_accuracy_vs_length(
                        r, t.metric, label=lab, title=title, learned_threshold=t.learned_threshold)))
        for pe, g in rows.groupby("pe", sort=True):
            keys = task_keys(g)
            # Two keys (operand lengths) make one joint map; otherwise each key goes against length.
            pairs = [(*keys, "")] if len(keys) == 2 else [("eval_length", k, f"{k}_") for k in keys]
            for x, y, prefix in pairs:
                out.append((f"heatmap_{prefix}{safe_name(stem, pe)}.png",
                            lambda r=g, x=x, y=y, lab=f"{label} — {pe}": plot_heatmap(
                                r, x, y, t.metric, label=lab, title=title)))
    if not t.ranking.empty:
        out.append(("mrr.png", lambda: plot_mrr(t.ranking, title)))
    if methods.has_methods(df):
        out.extend(methods.plots(df, t.metric, title))
    return out


def write_report(df: pd.DataFrame, out_dir: str | os.PathLike, *, metric: str = "exact_match",
                 title: str | None = None, command: str | None = None,
                 skipped: Sequence[tuple[Path, str]] = (), group_by: Sequence[str] = (),
                 learned_threshold: float = LEARNED_THRESHOLD, bootstrap: int = BOOTSTRAP_SAMPLES,
                 plots: bool = True, tables: Tables | None = None) -> list[Path]:
    """Write tables (csv + md), the MRR ranking and plots into `out_dir`; return the paths written.

    Rows of evaluation-time extension methods (``lengen eval extend=...``) add ``extend.md`` /
    ``extend.csv`` (accuracy beyond range by method) and ``extend_<task>_<pe>.png``.

    Tables go first and each plot is guarded, so one failing plot costs only that file (with a
    RuntimeWarning), never the report.
    """
    t = tables or build_tables(df, metric, group_by=group_by, learned_threshold=learned_threshold,
                               bootstrap=bootstrap)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_csv(out / "table.csv", t.summary),
        write_text(out / "table.md", summary_markdown(
            t.summary, title=title, command=command, n_skipped=len(skipped),
            learned_threshold=t.learned_threshold, hardware=hardware_labels(df))),
        write_csv(out / "ranking.csv", t.ranking),
        write_text(out / "ranking.md", ranking_markdown(t.ranking, title=title, command=command,
                                                        not_learned=t.not_learned)),
        write_csv(out / "runs.csv", t.runs),
        write_csv(out / "ranks.csv", t.ranks),
    ]
    spent = timing_table(df)
    if not spent.empty:  # runs that recorded their wall times (meta.yaml): the study's budget
        written += [write_csv(out / "timing.csv", spent),
                    write_text(out / "timing.md", timing_markdown(spent, hardware_labels(df), title))]
    if methods.has_methods(df):  # lengen eval extend=...: accuracy beyond range by method
        by_method = methods.by_method(df, t.metric)
        written += [write_csv(out / "extend.csv", by_method),
                    write_text(out / "extend.md", methods.markdown(by_method, title=title, command=command))]
    for name, make in _plots(df, t, title) if plots else ():
        try:
            written.append(save(make(), out / name))
        except Exception as exc:  # a plot is never worth losing the rest of the report
            warnings.warn(f"could not write {name}: {type(exc).__name__}: {exc}", RuntimeWarning,
                          stacklevel=2)
    return written
