"""The report as a command: options checked, runs loaded, warnings shown, files written, tables printed.

Kept apart from the computation so that everything a user can get wrong ends the same way: a
:class:`~lengen.errors.ConfigError` with one line naming the value, which the command turns into
``lengen: error: ...`` and exit status 2. Warnings (skipped runs, mixed hardware, a failed plot)
go to stderr, one line each; the tables go to stdout.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lengen.errors import ConfigError


def options(cfg: DictConfig) -> dict[str, Any]:
    """The composed ``conf/report.yaml`` as checked plain values."""
    from lengen.results.schema import METRICS

    if OmegaConf.is_missing(cfg, "out"):
        raise ConfigError("out=DIR is required: where the tables and plots go (e.g. out=results/my-study)")
    opts = OmegaConf.to_container(cfg, resolve=True)
    if opts["metric"] not in METRICS:
        raise ConfigError(f"unknown metric {opts['metric']!r}; valid: {', '.join(METRICS)}")
    threshold = opts["learned_threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ConfigError(f"learned_threshold={threshold!r} must be a number in [0, 1]")
    if isinstance(opts["bootstrap"], bool) or not isinstance(opts["bootstrap"], int) or opts["bootstrap"] < 0:
        raise ConfigError(f"bootstrap={opts['bootstrap']!r} must be a whole number of samples >= 0 (0 = off)")
    if opts.get("produced_by") is not None and not str(opts["produced_by"]).strip():
        raise ConfigError("produced_by='' names no command; leave it out (null) to name this command line")
    for key in ("evals", "plots"):
        if not isinstance(opts[key], bool):
            raise ConfigError(f"{key}={opts[key]!r} must be true or false")
    group_by = opts["group_by"]
    group_by = [group_by] if isinstance(group_by, str) else group_by
    if not isinstance(group_by, list) or not all(isinstance(k, str) for k in group_by):
        raise ConfigError(f"group_by={opts['group_by']!r} must be a list of column names, "
                          f"e.g. group_by=[hardware]")
    if opts["out"] is None or not str(opts["out"]).strip():
        raise ConfigError("out= is empty: name the output dir, e.g. out=results/my-study")
    out = Path(str(opts["out"]))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} exists and is not a directory")
    analysis = opts.get("analysis")
    if analysis is not None:
        analysis = Path(str(analysis))
        if not analysis.is_dir() or not any(analysis.glob("*.parquet")):
            raise ConfigError(f"analysis={analysis} is not a `lengen analyze` out dir (no <analysis>.parquet in it)")
    return {**opts, "out": out, "group_by": tuple(group_by), "title": opts["title"] or out.name,
            "analysis": analysis}


def analysis_markdown(folder: Path, title: str) -> str:
    """The summary tables of every analysis in `folder` (attention, distance, probe), as one page."""
    import pandas as pd

    from lengen.analyze.app import tables
    from lengen.analyze.explain import EXPLAIN
    from lengen.report.render import markdown

    parts = [f"# {title}: analysis\n", f"Summaries of the `lengen analyze` rows in `{folder}` "
             "(per-run rows and plots there).\n"]
    for name in ("attention", "distance", "probe"):
        path = folder / f"{name}.parquet"
        if not path.is_file():
            continue
        rows = pd.read_parquet(path)
        parts += [f"## {name}\n", EXPLAIN[name]]
        for heading, table in tables(name, rows):
            parts.append(f"### {heading}\n\n{markdown(table, ['left'] * table.shape[1])}")
    return "\n".join(parts)


def run(dirs: Sequence[str], cfg: DictConfig, command: str) -> int:
    """``lengen report``: 0 on success; bad input raises ConfigError."""
    from rich.console import Console
    from rich.markup import escape

    from lengen import report
    from lengen.report.render import hardware_note

    opts = options(cfg)
    command = str(opts["produced_by"]) if opts.get("produced_by") is not None else command
    if not dirs:
        raise ConfigError("no run or sweep dir given: lengen report RUN_OR_SWEEP_DIR... out=DIR")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", report.SkippedRunWarning)  # printed below, or folded into the error
        try:
            df, skipped = report.load_runs(dirs, evals=opts["evals"])
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ConfigError(str(exc)) from None
    if df.empty:
        why = f" ({len(skipped)} skipped; first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ConfigError(f"no finished run (with results.parquet) found under {', '.join(dirs)}{why}")
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for run_dir, reason in skipped:
        err.print(f"[yellow]warning:[/] {escape(f'skipping run {run_dir}: {reason}')}")
    spec = {k: opts[k] for k in ("group_by", "learned_threshold", "bootstrap")}
    tables = report.build_tables(df, opts["metric"], **spec)
    note = hardware_note(report.hardware_labels(df), "hardware" in opts["group_by"])
    if note:
        err.print(f"[yellow]warning:[/] {escape(note)}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            written = report.write_report(df, opts["out"], metric=opts["metric"], title=opts["title"],
                                          command=command, skipped=skipped, plots=opts["plots"],
                                          tables=tables)
        except OSError as exc:
            raise ConfigError(f"cannot write report to {opts['out']}: {exc}") from None
    if opts["analysis"] is not None:
        from lengen.report.render import write_text

        written.append(write_text(opts["out"] / "analysis.md", analysis_markdown(opts["analysis"], opts["title"])))
    for w in caught:
        err.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    console = Console()
    for table in report.rich_tables(tables.summary, tables.ranking):
        console.print(table)
    console.print(f"{df['run_id'].nunique()} run(s) read, {len(skipped)} skipped; "
                  f"wrote {len(written)} file(s) to {opts['out']}:", highlight=False, soft_wrap=True)
    for path in written:
        console.print(f"  {path}", highlight=False, soft_wrap=True)
    return 0
