"""Collect result rows from run directories into tables, a PE ranking and plots.

The report is the only place where runs meet, so it is deliberately forgiving on input
(unfinished or damaged runs are skipped with a warning naming them) and strict on output
(every file is written atomically, so an interrupted report never leaves half a table).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS_FILE = "results.parquet"
CONFIG_FILE = "config.yaml"
METRICS = ("exact_match", "answer_exact_match", "token_accuracy")
# Columns without which a run cannot be placed in the tables at all.
REQUIRED_COLUMNS = (
    "run_id", "task", "pe", "seed", "train_min", "train_max", "eval_length", "in_range", "n",
    "exact_match",
)
# Columns that the contract names but that older or partial writers may omit; filled in.
OPTIONAL_DEFAULTS = {
    "study": "", "variant": "default", "answer_exact_match": np.nan, "token_accuracy": np.nan,
    "loss": np.nan,
}
# Per-row grouping keys beneath eval_length (several rows per length when present).
EXTRA_KEYS = ("depth", "len_a", "len_b")
# Subtrees that never hold run dirs but can be huge (or hold Hydra's own config.yaml).
_PRUNE = {"checkpoints", "wandb", "evals", "__pycache__", "node_modules"}
GROUP = ["task", "variant", "pe"]
ALL_TASKS = "all"
DASH = "–"
_TIE_DECIMALS = 9


class SkippedRunWarning(UserWarning):
    """A run dir left out of the report (unfinished, unreadable, or malformed)."""


# --------------------------------------------------------------------------------------- loading


def find_run_dirs(root: Path) -> list[Path]:
    """Run dirs (holding config.yaml or results.parquet) at any depth below `root`, sorted."""
    found = []
    for here, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _PRUNE and not d.startswith("."))
        if RESULTS_FILE in filenames or CONFIG_FILE in filenames:
            found.append(Path(here))
    return found


def _coerce(rows: pd.DataFrame) -> pd.DataFrame:
    """Give the contract's columns their types; raise ValueError naming the bad column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    if rows.empty:
        raise ValueError("no result rows")
    rows = rows.copy()
    for col, default in OPTIONAL_DEFAULTS.items():
        if col not in rows.columns:
            rows[col] = default
    for col in ("run_id", "task", "pe", "seed", "eval_length", "n"):
        if rows[col].isna().any():
            raise ValueError(f"missing values in column {col}")
    for col in ("run_id", "task", "pe", "study", "variant"):
        fill = OPTIONAL_DEFAULTS.get(col, "")
        rows[col] = rows[col].astype(object).where(rows[col].notna(), fill).astype(str)
    for col in ("seed", "train_min", "train_max", "eval_length"):
        try:
            rows[col] = pd.to_numeric(rows[col], errors="raise").astype("int64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {col} is not integer ({exc})") from None
    for col in ("n", *METRICS, "loss", *(k for k in EXTRA_KEYS if k in rows.columns)):
        try:
            rows[col] = pd.to_numeric(rows[col], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {col} is not numeric ({exc})") from None
    flag = rows["in_range"]
    if flag.dtype != bool:
        text = flag.astype(str).str.strip().str.lower()
        mapped = text.map({"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False})
        if mapped.isna().any():
            raise ValueError("column in_range is not boolean")
        rows["in_range"] = mapped.astype(bool)
    return rows


def _read_results(path: Path) -> pd.DataFrame:
    """One results.parquet, typed; any failure becomes a ValueError with a short reason."""
    try:
        rows = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # damaged files raise many arrow/OS error types
        raise ValueError(f"unreadable {path.name} ({type(exc).__name__}: {str(exc)[:120]})") from None
    return _coerce(rows)


def load_runs(
    paths: Iterable[str | os.PathLike], *, evals: bool = False
) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """All finished runs below `paths` as one DataFrame, plus the (dir, reason) pairs skipped.

    Each skip is also emitted as a SkippedRunWarning, so a damaged run never stops the report.
    With `evals=True`, re-evaluations in `<run>/evals/<name>/results.parquet` are added as
    extra "PEs" named `<pe>+<name>` (they are usually inference-time extrapolation methods,
    which the tables should compare against the plain PE). A nonexistent path raises
    FileNotFoundError: that is a typo, not a damaged run.
    """
    roots = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"path does not exist: {path}")
        if path.is_file():
            if path.name not in (RESULTS_FILE, CONFIG_FILE):
                raise NotADirectoryError(f"not a run or sweep directory: {path}")
            path = path.parent
        roots.append(path)

    candidates: dict[Path, Path] = {}  # resolved -> as found (for readable messages)
    for root in roots:
        for run_dir in find_run_dirs(root):
            candidates.setdefault(run_dir.resolve(), run_dir)

    frames, skipped, seen_ids = [], [], {}
    finished = [key for key in candidates if (key / RESULTS_FILE).is_file()]

    def skip(run_dir: Path, reason: str) -> None:
        skipped.append((run_dir, reason))
        warnings.warn(f"skipping run {run_dir}: {reason}", SkippedRunWarning, stacklevel=3)

    def add(run_dir: Path, rows: pd.DataFrame) -> None:
        for run_id in rows["run_id"].unique():
            if run_id in seen_ids:
                skip(run_dir, f"duplicate run_id {run_id!r} (already read from {seen_ids[run_id]})")
                return
        for run_id in rows["run_id"].unique():
            seen_ids[run_id] = run_dir
        frames.append(rows.assign(run_dir=str(run_dir)))

    for key, run_dir in sorted(candidates.items()):
        if key not in finished:
            # A config.yaml above other run dirs belongs to a sweep, not to an unfinished run.
            if not any(other != key and other.is_relative_to(key) for other in candidates):
                skip(run_dir, f"unfinished (no {RESULTS_FILE})")
            continue
        try:
            add(run_dir, _read_results(key / RESULTS_FILE))
        except ValueError as exc:
            skip(run_dir, str(exc))
            continue
        if evals:
            for eval_file in sorted((key / "evals").glob(f"*/{RESULTS_FILE}")):
                name = eval_file.parent.name
                try:
                    rows = _read_results(eval_file)
                except ValueError as exc:
                    skip(run_dir / "evals" / name, str(exc))
                    continue
                rows["pe"] = rows["pe"] + "+" + name
                rows["run_id"] = rows["run_id"] + "@" + name
                add(run_dir / "evals" / name, rows)

    if not frames:
        return pd.DataFrame(columns=[*REQUIRED_COLUMNS, *OPTIONAL_DEFAULTS, "run_dir"]), skipped
    with warnings.catch_warnings():  # concat of frames lacking some optional keys is intended
        warnings.simplefilter("ignore", FutureWarning)
        df = pd.concat(frames, ignore_index=True)
    return df, skipped


# ----------------------------------------------------------------------------------- aggregation


def _check_metric(df: pd.DataFrame, metric: str) -> None:
    if metric not in df.columns:
        raise KeyError(f"metric column {metric!r} not in results (have {', '.join(df.columns)})")


def _weighted(df: pd.DataFrame, keys: list[str], metric: str) -> pd.Series:
    """n-weighted mean of `metric` per `keys`; rows with a NaN metric carry no weight."""
    ok = df[metric].notna() & df["n"].notna()
    weight = df["n"].where(ok, 0.0)
    parts = pd.DataFrame({"w": weight, "wx": (df[metric] * weight).where(ok, 0.0)})
    sums = parts.groupby([df[k] for k in keys], sort=True, dropna=False).sum()
    return (sums["wx"] / sums["w"].where(sums["w"] > 0)).rename(metric)


def per_run(df: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """One row per run: n-weighted `metric` over in-range rows and over beyond-range rows.

    Beyond-range means *longer* than anything trained on (``eval_length > train_max``); lengths
    below ``train_min`` are neither, so easy short lengths never dilute the extrapolation number.
    """
    _check_metric(df, metric)
    meta = df.groupby("run_id", sort=True).agg(
        study=("study", "first"), task=("task", "first"), variant=("variant", "first"),
        pe=("pe", "first"), seed=("seed", "first"), train_min=("train_min", "min"),
        train_max=("train_max", "max"),
    )
    region = np.where(df["in_range"], "in", np.where(df["eval_length"] > df["train_max"], "beyond", "below"))
    acc = _weighted(df.assign(region=region), ["run_id", "region"], metric).unstack("region")
    meta["acc_in_range"] = acc["in"] if "in" in acc.columns else np.nan
    meta["acc_beyond_range"] = acc["beyond"] if "beyond" in acc.columns else np.nan
    return meta.reset_index()[
        ["task", "variant", "pe", "seed", "run_id", "study", "train_min", "train_max",
         "acc_in_range", "acc_beyond_range"]
    ].sort_values(["task", "variant", "pe", "seed", "run_id"], ignore_index=True)


def _std(values: pd.Series) -> float:
    """Sample std (ddof=1) over seeds; NaN when fewer than two values make it meaningless."""
    values = values.dropna()
    return float(values.std(ddof=1)) if len(values) >= 2 else math.nan


def _train_range(runs: pd.DataFrame) -> str:
    pairs = sorted(set(zip(runs["train_min"], runs["train_max"])))
    return ", ".join(f"{lo}–{hi}" for lo, hi in pairs)


def summarise(df: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """Per (task, variant, pe): mean ± std over runs of in-range and beyond-range accuracy.

    Sorted by task, variant, then beyond-range mean descending (NaN last), which is the
    order the paper's tables read in.
    """
    runs = per_run(df, metric)
    out = []
    for (task, variant, pe), g in runs.groupby(GROUP, sort=True):
        out.append({
            "task": task, "variant": variant, "pe": pe, "metric": metric,
            "train_range": _train_range(g),
            "in_range_mean": g["acc_in_range"].mean(), "in_range_std": _std(g["acc_in_range"]),
            "beyond_range_mean": g["acc_beyond_range"].mean(),
            "beyond_range_std": _std(g["acc_beyond_range"]),
            "n_runs": len(g), "seeds": ",".join(str(s) for s in sorted(g["seed"].unique())),
        })
    cols = ["task", "variant", "pe", "metric", "train_range", "in_range_mean", "in_range_std",
            "beyond_range_mean", "beyond_range_std", "n_runs", "seeds"]
    table = pd.DataFrame(out, columns=cols)
    # Round the sort key so float noise in equal means does not decide the order (ties go by name).
    key = table["beyond_range_mean"].round(_TIE_DECIMALS)
    order = table.assign(_key=key).sort_values(
        ["task", "variant", "_key", "pe"], ascending=[True, True, False, True], na_position="last").index
    return table.loc[order].reset_index(drop=True)


def ranks(df: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """PEs ranked per (task, variant, seed) by beyond-range accuracy (1 = best, ties share min rank).

    Several runs of one PE and seed (e.g. a hyperparameter grid) are averaged first. Groups
    where fewer than two PEs have a beyond-range number are dropped: a lone PE would get a
    free rank 1 and inflate its MRR.
    """
    runs = per_run(df, metric)
    acc = (runs.groupby(["task", "variant", "seed", "pe"], sort=True)["acc_beyond_range"].mean()
           .dropna().reset_index())
    size = acc.groupby(["task", "variant", "seed"])["pe"].transform("size")
    acc = acc[size >= 2].copy()
    rounded = acc["acc_beyond_range"].round(_TIE_DECIMALS)  # equal counts must tie despite float noise
    acc["rank"] = (rounded.groupby([acc["task"], acc["variant"], acc["seed"]])
                   .rank(method="min", ascending=False).astype("int64"))
    acc["reciprocal_rank"] = 1.0 / acc["rank"]
    acc["n_pes"] = acc.groupby(["task", "variant", "seed"])["pe"].transform("size")
    return acc.reset_index(drop=True)


def mrr(df: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """Mean reciprocal rank per PE, overall (task == "all") and per (task, variant).

    Columns: task, variant, pe, mrr, mean_rank, n_rankings (how many (task, seed) rankings
    the PE took part in). Overall rows come first, each block sorted by MRR descending.
    """
    r = ranks(df, metric)
    cols = ["task", "variant", "pe", "mrr", "mean_rank", "n_rankings"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    agg = {"mrr": ("reciprocal_rank", "mean"), "mean_rank": ("rank", "mean"),
           "n_rankings": ("rank", "size")}
    overall = r.groupby("pe").agg(**agg).reset_index().assign(task=ALL_TASKS, variant="")
    per_task = r.groupby(GROUP).agg(**agg).reset_index()
    overall = overall.sort_values(["mrr", "pe"], ascending=[False, True])
    per_task = per_task.sort_values(["task", "variant", "mrr", "pe"], ascending=[True, True, False, True])
    return pd.concat([overall[cols], per_task[cols]], ignore_index=True)


def curves(df: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """Per (task, variant, pe, eval_length): mean, std, min, max of `metric` over runs.

    Rows split by extra keys (depth, operand lengths) are first merged per run and length,
    weighted by n, so every run counts once per length.
    """
    per_len = _weighted(df, ["task", "variant", "pe", "run_id", "eval_length"], metric).reset_index()
    stats = per_len.groupby(["task", "variant", "pe", "eval_length"], sort=True)[metric].agg(
        mean="mean", std=lambda s: _std(s), min="min", max="max", n_runs="count")
    return stats.reset_index()


def grid(df: pd.DataFrame, x: str, y: str, metric: str = "exact_match") -> pd.DataFrame:
    """Per (task, variant, pe, x, y): mean over runs of the n-weighted metric, plus in-range flag."""
    rows = df.dropna(subset=[x, y])
    cell = _weighted(rows, ["task", "variant", "pe", "run_id", x, y], metric).reset_index()
    out = cell.groupby(["task", "variant", "pe", x, y], sort=True)[metric].mean().reset_index()
    inside = rows.groupby(["task", "variant", "pe", x, y], sort=True)["in_range"].all().reset_index()
    return out.merge(inside, on=["task", "variant", "pe", x, y], how="left")


# ------------------------------------------------------------------------------------ formatting


def _pct(value: float) -> str:
    return DASH if value is None or pd.isna(value) else f"{100 * value:.1f}"


def mean_std(mean: float, std: float) -> str:
    """'87.5 ± 3.2' in percent; the std reads '–' when there is no spread to report."""
    if pd.isna(mean):
        return DASH
    return f"{_pct(mean)} ± {_pct(std)}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
                   align: Sequence[str] | None = None) -> str:
    """A GitHub-markdown table (own formatter: `tabulate` is not a dependency)."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    body = [[cell(v) for v in row] for row in rows]
    head = [cell(h) for h in headers]
    widths = [max([len(h), 3, *(len(r[i]) for r in body)]) for i, h in enumerate(head)]
    align = align or ["l"] * len(head)

    def rule(width: int, a: str) -> str:
        return "-" * (width - 1) + ":" if a == "r" else "-" * width

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align)]
        return "| " + " | ".join(padded) + " |"

    out = [line(head), "| " + " | ".join(rule(w, a) for w, a in zip(widths, align)) + " |"]
    out += [line(r) for r in body]
    return "\n".join(out) + "\n"


def _show_variant(frame: pd.DataFrame) -> bool:
    return "variant" in frame.columns and bool((frame["variant"].fillna("default") != "default").any())


def _task_label(task: str, variant: str, show_variant: bool) -> str:
    return f"{task} ({variant})" if show_variant and variant not in ("", "default") else task


def summary_markdown(summary: pd.DataFrame, *, title: str | None = None, command: str | None = None,
                     n_skipped: int = 0) -> str:
    """table.md: one row per (task, variant, pe) with in/beyond-range mean ± std and n runs."""
    metric = summary["metric"].iloc[0] if len(summary) else "exact_match"
    show_variant = _show_variant(summary)
    ranges = sorted(set(summary["train_range"]))
    one_range = len(ranges) == 1
    headers = ["task", *(["variant"] if show_variant else []), "pe",
               *([] if one_range else ["train"]),
               f"in-range {metric} (%)", f"beyond-range {metric} (%)", "n runs"]
    align = ["l"] * (len(headers) - 3) + ["r", "r", "r"]
    rows = [
        [r.task, *([r.variant] if show_variant else []), r.pe, *([] if one_range else [r.train_range]),
         mean_std(r.in_range_mean, r.in_range_std), mean_std(r.beyond_range_mean, r.beyond_range_std),
         r.n_runs]
        for r in summary.itertuples()
    ]
    lines = [f"# {title}\n" if title else ""]
    notes = [f"Mean ± sample std over seeds of the n-weighted `{metric}` per run."]
    if one_range and ranges:
        notes.append(f"Training lengths {ranges[0]}; beyond-range = every evaluated length above it.")
    if n_skipped:
        notes.append(f"{n_skipped} run dir(s) skipped (unfinished or damaged).")
    if command:
        notes.append(f"Produced by `{command}`.")
    lines.append(" ".join(notes) + "\n")
    lines.append(markdown_table(headers, rows, align))
    return "\n".join(line for line in lines if line)


def ranking_markdown(ranking: pd.DataFrame, *, title: str | None = None, command: str | None = None) -> str:
    """ranking.md: PEs by overall MRR, with the per-task MRR beside it."""
    notes = ("PEs ranked per (task, seed) by beyond-range accuracy (1 = best, ties share the best rank); "
             "MRR = mean of 1/rank over those rankings.")
    head = [f"# {title} — ranking\n" if title else "", notes + (f" Produced by `{command}`." if command else "")
            + "\n"]
    if ranking.empty:
        return "\n".join([*(h for h in head if h), "No ranking: fewer than two PEs with beyond-range results.\n"])
    show_variant = _show_variant(ranking[ranking["task"] != ALL_TASKS])
    overall = ranking[ranking["task"] == ALL_TASKS].set_index("pe")
    per_task = ranking[ranking["task"] != ALL_TASKS]
    tasks = list(dict.fromkeys(zip(per_task["task"], per_task["variant"])))
    headers = ["rank", "pe", "MRR", "mean rank", "rankings",
               *(f"MRR {_task_label(t, v, show_variant)}" for t, v in tasks)]
    lookup = per_task.set_index(["task", "variant", "pe"])["mrr"]
    rows = []
    for i, (pe, r) in enumerate(overall.iterrows(), start=1):
        cells = [lookup.get((t, v, pe), math.nan) for t, v in tasks]
        rows.append([i, pe, f"{r.mrr:.3f}", f"{r.mean_rank:.2f}", int(r.n_rankings),
                     *(DASH if pd.isna(c) else f"{c:.3f}" for c in cells)])
    align = ["r", "l", "r", "r", "r", *["r"] * len(tasks)]
    parts = [*(h for h in head if h), markdown_table(headers, rows, align)]
    if overall["n_rankings"].nunique() > 1:
        parts.append("\nPEs took part in different numbers of rankings (column `rankings`): their overall MRRs "
                     "are only comparable between PEs ranked in the same (task, seed) groups.\n")
    return "\n".join(parts)


def rich_tables(summary: pd.DataFrame, ranking: pd.DataFrame) -> list:
    """The same numbers as table.md and ranking.md, as rich tables for the terminal."""
    from rich.table import Table

    metric = summary["metric"].iloc[0] if len(summary) else "exact_match"
    show_variant = _show_variant(summary)
    t = Table(title=f"{metric} (%), mean ± std over seeds", title_justify="left")
    t.add_column("task")
    if show_variant:
        t.add_column("variant")
    t.add_column("pe", style="bold")
    t.add_column("train")
    t.add_column("in-range", justify="right")
    t.add_column("beyond-range", justify="right", style="cyan")
    t.add_column("runs", justify="right")
    previous = None
    for r in summary.itertuples():
        key = (r.task, r.variant)
        if previous is not None and key != previous:
            t.add_section()
        previous = key
        t.add_row(r.task, *([r.variant] if show_variant else []), r.pe, r.train_range,
                  mean_std(r.in_range_mean, r.in_range_std),
                  mean_std(r.beyond_range_mean, r.beyond_range_std), str(r.n_runs))
    tables = [t]
    overall = ranking[ranking["task"] == ALL_TASKS] if not ranking.empty else ranking
    if not overall.empty:
        m = Table(title="MRR over (task, seed) rankings", title_justify="left")
        for name, justify in (("#", "right"), ("pe", "left"), ("MRR", "right"), ("mean rank", "right"),
                              ("rankings", "right")):
            m.add_column(name, justify=justify)
        for i, r in enumerate(overall.itertuples(), start=1):
            m.add_row(str(i), r.pe, f"{r.mrr:.3f}", f"{r.mean_rank:.2f}", str(r.n_rankings))
        tables.append(m)
    return tables


# -------------------------------------------------------------------------------------- plotting


def safe_name(*parts: object) -> str:
    """File-name-safe join of parts ('scratchpad=full' -> 'scratchpad-full')."""
    cleaned = [re.sub(r"[^A-Za-z0-9._-]+", "-", str(p)).strip("-.") for p in parts]
    return "_".join(c for c in cleaned if c) or "unnamed"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_length(df: pd.DataFrame, task: str, variant: str = "default",
                            metric: str = "exact_match", title: str | None = None):
    """Accuracy vs length for one task: a line per PE (mean over seeds, min–max band), training range grey."""
    plt = _pyplot()
    sub = df[(df["task"] == task) & (df["variant"] == variant)]
    c = curves(sub, metric)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for lo, hi in sorted(set(zip(sub["train_min"], sub["train_max"]))):
        lo, hi = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
        ax.axvspan(lo, hi, color="0.85", zorder=0, label=f"train {lo:g}–{hi:g}")
    order = summarise(sub, metric)["pe"].tolist()
    for pe in order:
        g = c[c["pe"] == pe]
        marker = "o" if len(g) <= 30 else None
        (line,) = ax.plot(g["eval_length"], g["mean"], marker=marker, ms=3, lw=1.6,
                          label=f"{pe} (n={int(g['n_runs'].max())})")
        if (g["n_runs"] > 1).any():
            ax.fill_between(g["eval_length"], g["min"], g["max"], color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("length")
    ax.set_ylabel(f"{metric} (mean over seeds; band = min–max)")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    label = _task_label(task, variant, variant != "default")
    ax.set_title(f"{title}: {label}" if title else label)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_mrr(ranking: pd.DataFrame, title: str | None = None):
    """Bar per PE of overall MRR, with each task's MRR as a dot so disagreement is visible."""
    plt = _pyplot()
    overall = ranking[ranking["task"] == ALL_TASKS]
    per_task = ranking[ranking["task"] != ALL_TASKS]
    pes = overall["pe"].tolist()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(pes) + 2), 3.8), dpi=110)
    x = np.arange(len(pes))
    bars = ax.bar(x, overall["mrr"], color="tab:blue", alpha=0.8, label="all tasks")
    ax.bar_label(bars, fmt="%.2f", fontsize=8, label_type="center", color="w")
    tasks = list(dict.fromkeys(zip(per_task["task"], per_task["variant"])))
    if len(tasks) > 1:
        markers = "osD^v<>ph*"
        for k, (t, v) in enumerate(tasks):
            g = per_task[(per_task["task"] == t) & (per_task["variant"] == v)].set_index("pe")["mrr"]
            ys = [g.get(pe, np.nan) for pe in pes]
            ax.scatter(x + (k - (len(tasks) - 1) / 2) * 0.08, ys, s=14, marker=markers[k % len(markers)],
                       color="k", alpha=0.6, zorder=3, label=_task_label(t, v, v not in ("", "default")))
    ax.set_xticks(x, pes, rotation=30 if len(pes) > 5 else 0, ha="right" if len(pes) > 5 else "center")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("mean reciprocal rank")
    ax.set_title(f"{title}: MRR (beyond-range)" if title else "MRR (beyond-range)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_heatmap(df: pd.DataFrame, task: str, variant: str, pe: str, x: str = "len_a", y: str = "len_b",
                 metric: str = "exact_match", title: str | None = None):
    """Mean `metric` over (x, y) cells for one PE; the in-range cells are outlined in red."""
    plt = _pyplot()
    sub = df[(df["task"] == task) & (df["variant"] == variant) & (df["pe"] == pe)]
    cells = grid(sub, x, y, metric)
    xs = np.sort(cells[x].unique())
    ys = np.sort(cells[y].unique())
    values = np.full((len(ys), len(xs)), np.nan)
    inside = np.zeros_like(values, dtype=bool)
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: i for i, v in enumerate(ys)}
    for r in cells.itertuples(index=False):
        row = r._asdict()
        values[yi[row[y]], xi[row[x]]] = row[metric]
        inside[yi[row[y]], xi[row[x]]] = bool(row["in_range"])
    fig, ax = plt.subplots(figsize=(min(2 + 0.35 * len(xs), 12), min(1.6 + 0.3 * len(ys), 10)), dpi=110)
    im = ax.imshow(np.ma.masked_invalid(values), origin="lower", cmap="viridis", vmin=0, vmax=1,
                   aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, label=metric)
    # Outline the in-range region: draw every cell edge between an in-range and an out-of-range cell.
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not inside[i, j]:
                continue
            if i == 0 or not inside[i - 1, j]:
                ax.plot([j - 0.5, j + 0.5], [i - 0.5, i - 0.5], color="red", lw=1.2)
            if i == len(ys) - 1 or not inside[i + 1, j]:
                ax.plot([j - 0.5, j + 0.5], [i + 0.5, i + 0.5], color="red", lw=1.2)
            if j == 0 or not inside[i, j - 1]:
                ax.plot([j - 0.5, j - 0.5], [i - 0.5, i + 0.5], color="red", lw=1.2)
            if j == len(xs) - 1 or not inside[i, j + 1]:
                ax.plot([j + 0.5, j + 0.5], [i - 0.5, i + 0.5], color="red", lw=1.2)
    if len(xs) * len(ys) <= 400:
        for i in range(len(ys)):
            for j in range(len(xs)):
                if not np.isnan(values[i, j]):
                    ax.text(j, i, f"{100 * values[i, j]:.0f}", ha="center", va="center", fontsize=6,
                            color="w" if values[i, j] < 0.6 else "k")
    step = max(1, len(xs) // 20)
    ax.set_xticks(range(0, len(xs), step), [f"{v:g}" for v in xs[::step]], fontsize=7)
    step = max(1, len(ys) // 20)
    ax.set_yticks(range(0, len(ys), step), [f"{v:g}" for v in ys[::step]], fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    label = f"{_task_label(task, variant, variant != 'default')} — {pe}"
    ax.set_title(f"{title}: {label}" if title else label, fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------- writing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write via a temp file in the same dir + os.replace, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def _write_fig(path: Path, fig) -> Path:
    plt = _pyplot()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def _has_grid(frame: pd.DataFrame, x: str, y: str) -> bool:
    return x in frame.columns and y in frame.columns and bool(frame[[x, y]].notna().all(axis=1).any())


def write_report(df: pd.DataFrame, out_dir: str | os.PathLike, *, metric: str = "exact_match",
                 title: str | None = None, command: str | None = None,
                 skipped: Sequence[tuple[Path, str]] = ()) -> list[Path]:
    """Write tables (csv + md), the MRR ranking and plots into `out_dir`; return the paths written.

    Tables go first and each plot is guarded, so one failing plot costs only that file (with a
    warning), never the report.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_metric(df, metric)
    summary = summarise(df, metric)
    ranking = mrr(df, metric)
    written = [
        _write_csv(out / "table.csv", summary),
        _write_text(out / "table.md", summary_markdown(summary, title=title, command=command,
                                                       n_skipped=len(skipped))),
        _write_csv(out / "ranking.csv", ranking),
        _write_text(out / "ranking.md", ranking_markdown(ranking, title=title, command=command)),
        _write_csv(out / "runs.csv", per_run(df, metric)),
        _write_csv(out / "ranks.csv", ranks(df, metric)),
    ]

    def plot(name: str, make: Callable[[], object]) -> None:
        try:
            written.append(_write_fig(out / name, make()))
        except Exception as exc:  # a plot is never worth losing the rest of the report
            warnings.warn(f"could not write {name}: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=3)

    for task, variant in summary[["task", "variant"]].drop_duplicates().itertuples(index=False):
        suffix = () if variant == "default" else (variant,)
        plot(f"accuracy_vs_length_{safe_name(task, *suffix)}.png",
             lambda t=task, v=variant: plot_accuracy_vs_length(df, t, v, metric, title))
    if not ranking.empty:
        plot("mrr.png", lambda: plot_mrr(ranking, title))
    for (task, variant, pe), g in df.groupby(GROUP, sort=True):
        suffix = () if variant == "default" else (variant,)
        if _has_grid(g, "len_a", "len_b"):
            plot(f"heatmap_{safe_name(task, *suffix, pe)}.png",
                 lambda t=task, v=variant, p=pe: plot_heatmap(df, t, v, p, "len_a", "len_b", metric, title))
        if _has_grid(g, "eval_length", "depth"):
            plot(f"heatmap_depth_{safe_name(task, *suffix, pe)}.png",
                 lambda t=task, v=variant, p=pe: plot_heatmap(df, t, v, p, "eval_length", "depth", metric,
                                                             title))
    return written
