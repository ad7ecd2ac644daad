"""The result-row contract, shared by every writer (train, eval) and every reader (report).

One row per run x evaluated length (x grouping key such as ``depth`` or ``len_a``/``len_b``).
A run directory is finished exactly when :data:`RESULTS_FILE` exists: it is written last and
atomically, after the CSV copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lengen.errors import ConfigError
from lengen.io import atomic_write

RESULTS_FILE = "results.parquet"
RESULTS_CSV = "results.csv"
CONFIG_FILE = "config.yaml"
META_FILE = "meta.yaml"

#: who produced the rows (constant within a run), first in every file.
META_COLUMNS = ("run_id", "study", "task", "variant", "pe", "seed", "train_min", "train_max")
#: what was measured at one length.
MEASURE_COLUMNS = ("eval_length", "in_range", "n")
#: accuracy columns a report can tabulate, rank and plot (``lengen report --metric``); a new
#: metric adds its name here and its computation in ``lengen.metrics``.
METRICS = ("exact_match", "answer_exact_match", "token_accuracy", "step_accuracy", "per_token_accuracy")
#: other numeric columns of the contract.
OTHER_NUMERIC = ("loss",)
#: the evaluation-time extension method of ``lengen eval extend=NAME`` (``lengen.extend``): its name
#: (``none`` when absent), its factor (NaN without one) and every option it used (``k=v,...``).
EXTEND_COLUMNS = ("extend", "extend_factor", "extend_options")
#: columns every row has; any other numeric column is a task's grouping key (``depth``, ...).
STANDARD_COLUMNS = frozenset((*META_COLUMNS, *MEASURE_COLUMNS, *METRICS, *OTHER_NUMERIC, *EXTEND_COLUMNS,
                              "checkpoint"))
#: columns without which a run cannot be placed in a table at all.
REQUIRED_COLUMNS = ("run_id", "task", "pe", "seed", "train_min", "train_max", "eval_length", "in_range", "n",
                    "exact_match")
#: columns that older or partial writers may omit; filled in on reading.
OPTIONAL_DEFAULTS: dict[str, Any] = {"study": "", "variant": "default", "checkpoint": "",
                                     **{m: np.nan for m in METRICS if m != "exact_match"}, "loss": np.nan,
                                     "extend": "none", "extend_factor": np.nan, "extend_options": ""}


def with_metadata(rows: pd.DataFrame, meta: Mapping[str, Any]) -> pd.DataFrame:
    """Prefix the measured rows with the run's identity columns."""
    out = rows.copy()
    for i, col in enumerate(META_COLUMNS):
        out.insert(i, col, meta[col])
    return out


def group_keys(rows: pd.DataFrame) -> list[str]:
    """A task's per-row grouping keys: every column outside the contract."""
    return [c for c in rows.columns if c not in STANDARD_COLUMNS and c != "run_dir"]


def write_results(rows: pd.DataFrame, out_dir: Path) -> Path:
    """CSV first, Parquet last: ``results.parquet`` existing means the run finished."""
    out_dir = Path(out_dir)
    atomic_write(out_dir / RESULTS_CSV, lambda p: rows.to_csv(p, index=False))
    return atomic_write(out_dir / RESULTS_FILE, lambda p: rows.to_parquet(p, index=False))


def coerce(rows: pd.DataFrame) -> pd.DataFrame:
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
    for col in ("run_id", "task", "pe", "study", "variant", "checkpoint", "extend", "extend_options"):
        fill = OPTIONAL_DEFAULTS.get(col, "")
        rows[col] = rows[col].astype(object).where(rows[col].notna(), fill).astype(str)
    for col in ("seed", "train_min", "train_max", "eval_length"):
        try:
            rows[col] = pd.to_numeric(rows[col], errors="raise").astype("int64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {col} is not integer ({exc})") from None
    for col in ("n", *METRICS, *OTHER_NUMERIC, "extend_factor", *group_keys(rows)):
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


def read_results(run_dir: Path) -> pd.DataFrame:
    """The typed rows of one finished run (or evaluation) dir; a ConfigError (a ValueError) with a
    short reason and the fix when the file is damaged."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        rows = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # damaged files raise many arrow/OS error types
        raise ConfigError(f"unreadable {path} ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                          f"move it aside and rerun to regenerate it") from None
    try:
        return coerce(rows)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}; move it aside and rerun to regenerate it") from None
