"""Finding run directories and reading their rows into one DataFrame.

The report is the only place where runs meet, so reading is deliberately forgiving: an
unfinished or damaged run is skipped with a :class:`SkippedRunWarning` naming it, never a
crash. A path that does not exist is different -- that is a typo, and it raises.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from lengen.results.schema import (
    CONFIG_FILE,
    META_FILE,
    OPTIONAL_DEFAULTS,
    REQUIRED_COLUMNS,
    RESULTS_FILE,
    read_results,
)

#: label of runs whose meta.yaml is missing, unreadable or has no ``hardware.label``.
UNKNOWN_HARDWARE = "unknown"
# Subtrees that never hold run dirs but can be huge (or hold Hydra's own config.yaml).
_PRUNE = {"checkpoints", "wandb", "evals", "__pycache__", "node_modules"}


class SkippedRunWarning(UserWarning):
    """A run dir left out of the report (unfinished, unreadable, or malformed)."""


def find_run_dirs(root: Path) -> list[Path]:
    """Run dirs (holding config.yaml or results.parquet) at any depth below `root`, sorted."""
    found = []
    for here, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _PRUNE and not d.startswith("."))
        if RESULTS_FILE in filenames or CONFIG_FILE in filenames:
            found.append(Path(here))
    return found


def hardware_label(run_dir: Path) -> str:
    """``hardware.label`` from ``<run_dir>/meta.yaml``; "unknown" when absent or malformed.

    Old runs have no meta.yaml and a hand-edited one may be broken: neither may cost the run.
    """
    import yaml

    try:
        meta = yaml.safe_load((Path(run_dir) / META_FILE).read_text(encoding="utf-8"))
        label = meta["hardware"]["label"]
    except (OSError, UnicodeError, yaml.YAMLError, KeyError, TypeError):
        return UNKNOWN_HARDWARE
    return label.strip() if isinstance(label, str) and label.strip() else UNKNOWN_HARDWARE


def _roots(paths: Iterable[str | os.PathLike]) -> list[Path]:
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
    return roots


def load_runs(
    paths: Iterable[str | os.PathLike], *, evals: bool = False
) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """All finished runs below `paths` as one DataFrame, plus the (dir, reason) pairs skipped.

    Adds the columns ``run_dir`` and ``hardware`` (see :func:`hardware_label`). With
    `evals=True`, re-evaluations in ``<run>/evals/<name>/results.parquet`` are added as extra
    "PEs" named ``<pe>+<name>`` (usually inference-time extrapolation methods, which the tables
    should compare against the plain PE); their hardware is the eval dir's own meta.yaml when it
    has one, else the run's.
    """
    candidates: dict[Path, Path] = {}  # resolved -> as found (for readable messages)
    for root in _roots(paths):
        for run_dir in find_run_dirs(root):
            candidates.setdefault(run_dir.resolve(), run_dir)

    frames, skipped, seen_ids = [], [], {}

    def skip(run_dir: Path, reason: str) -> None:
        skipped.append((run_dir, reason))
        warnings.warn(f"skipping run {run_dir}: {reason}", SkippedRunWarning, stacklevel=3)

    def add(run_dir: Path, source: Path, hardware: str, rename: str | None = None) -> bool:
        try:
            rows = read_results(source)
        except ValueError as exc:
            skip(run_dir, str(exc))
            return False
        if rename:
            rows["pe"] = rows["pe"] + "+" + rename
            rows["run_id"] = rows["run_id"] + "@" + rename
        for run_id in rows["run_id"].unique():
            if run_id in seen_ids:
                skip(run_dir, f"duplicate run_id {run_id!r} (already read from {seen_ids[run_id]})")
                return False
        seen_ids.update(dict.fromkeys(rows["run_id"].unique(), run_dir))
        frames.append(rows.assign(run_dir=str(run_dir), hardware=hardware))
        return True

    for key, run_dir in sorted(candidates.items()):
        if not (key / RESULTS_FILE).is_file():
            # A config.yaml above other run dirs belongs to a sweep, not to an unfinished run.
            if not any(other != key and other.is_relative_to(key) for other in candidates):
                skip(run_dir, f"unfinished (no {RESULTS_FILE})")
            continue
        hardware = hardware_label(key)
        if add(run_dir, key, hardware) and evals:
            for eval_file in sorted((key / "evals").glob(f"*/{RESULTS_FILE}")):
                eval_dir = eval_file.parent
                own = hardware_label(eval_dir) if (eval_dir / META_FILE).is_file() else hardware
                add(run_dir / "evals" / eval_dir.name, eval_dir, own, rename=eval_dir.name)

    if not frames:
        columns = [*REQUIRED_COLUMNS, *OPTIONAL_DEFAULTS, "run_dir", "hardware"]
        return pd.DataFrame(columns=columns), skipped
    with warnings.catch_warnings():  # concat of frames lacking some grouping keys is intended
        warnings.simplefilter("ignore", FutureWarning)
        return pd.concat(frames, ignore_index=True), skipped
