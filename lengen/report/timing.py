"""Compute spent: wall time per run and per task, read from each run's ``meta.yaml`` ``timing``.

A study states its budget from what its runs recorded (``Run.record_timing``), not from memory;
the load average at the end of each run says whether the cores were shared, so a reader can
tell an idle machine's minutes from a busy one's. Runs from before timings were recorded are
counted as "no timing".
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from lengen.results.schema import META_FILE


def run_timings(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trained run of `df` (evaluation-only dirs left out) with its recorded times."""
    rows = []
    runs = df.drop_duplicates("run_dir")[["run_dir", "task", "pe", "hardware"]]
    for r in runs.itertuples(index=False):
        if "/evals/" in r.run_dir.replace("\\", "/"):
            continue
        try:
            meta = yaml.safe_load((Path(r.run_dir) / META_FILE).read_text(encoding="utf-8")) or {}
            timing = meta.get("timing") or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError, AttributeError):
            timing = {}
        rows.append({"task": r.task, "pe": r.pe, "hardware": r.hardware,
                     "train_seconds": timing.get("train_seconds"), "eval_seconds": timing.get("eval_seconds"),
                     "load": timing.get("load_average_1min_at_end"), "sessions": timing.get("sessions")})
    return pd.DataFrame(rows, columns=["task", "pe", "hardware", "train_seconds", "eval_seconds", "load", "sessions"])


def _summary(t: pd.DataFrame) -> dict[str, float]:
    """One row of the timing table: the runs of `t` (one task, or all of them)."""
    return {"runs": len(t), "timed": t["seconds"].count(), "resumed": t["resumed"].sum(),
            "min_per_run": t["seconds"].mean() / 60, "max_min_per_run": t["seconds"].max() / 60,
            "total_hours": t["seconds"].sum() / 3600, "mean_load": t["load"].mean()}


def timing_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task: runs, runs with a timing, minutes per run (train + eval, mean and max), total hours."""
    t = run_timings(df)
    if t.empty or t["train_seconds"].isna().all():
        return pd.DataFrame()
    t = t.assign(seconds=t["train_seconds"].astype(float) + t["eval_seconds"].astype(float).fillna(0.0),
                 resumed=t["sessions"].astype(float).fillna(1.0) > 1)
    per_task = {task: _summary(rows) for task, rows in t.groupby("task", sort=True)}
    out = pd.DataFrame.from_dict({**per_task, "all": _summary(t)}, orient="index")
    return out.round(3).reset_index(names="task")


def timing_markdown(table: pd.DataFrame, hardware: list[str], title: str | None = None) -> str:
    lines = [f"# {title}: compute" if title else "# Compute", "",
             "Wall time of each run (training + evaluation, one process each) from the runs' `meta.yaml`; "
             "`mean load` is the 1-minute load average when runs ended (above the cores in use means the "
             "machine was shared and the minutes are upper bounds); `resumed`: runs trained in several "
             "sessions, whose minutes sum all sessions (runs from before lengen recorded sessions count "
             "only their last one). Hardware: "
             + (", ".join(hardware) or "unknown") + ".", "",
             "| task | runs | timed | resumed | min/run | max min/run | total h | mean load |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.task} | {r.runs} | {r.timed} | {r.resumed} | {r.min_per_run:.1f} | {r.max_min_per_run:.1f} | "
                     f"{r.total_hours:.2f} | {r.mean_load:.1f} |")
    return "\n".join(lines) + "\n"
