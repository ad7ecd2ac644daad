"""`lengen report RUN_OR_SWEEP_DIR... --out DIR`: tables, MRR ranking and plots from finished runs."""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

from lengen import report

DESCRIPTION = """\
Collect the result rows of every finished run below the given run or sweep directories and write
table.csv/.md (in-range and beyond-range accuracy per task and PE, mean ± std over seeds),
ranking.csv/.md (PEs ranked per task and seed by beyond-range accuracy, as mean reciprocal
rank), runs.csv, ranks.csv and plots (accuracy vs length per task, MRR bars, operand-length and
depth heatmaps when the rows carry len_a/len_b or depth). Unfinished or damaged runs are skipped
with a warning naming them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lengen report", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", metavar="RUN_OR_SWEEP_DIR",
                        help="run dirs or sweep dirs (searched recursively for results.parquet)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output dir, e.g. results/<study>")
    parser.add_argument("--metric", choices=report.METRICS, default="exact_match",
                        help="accuracy column to tabulate, rank and plot (default: %(default)s)")
    parser.add_argument("--title", default=None, help="title for tables and plots (default: the out dir name)")
    parser.add_argument("--evals", action="store_true",
                        help="also read <run>/evals/<name>/results.parquet, reported as PE '<pe>+<name>'")
    return parser


def _error(message: str) -> int:
    print(f"lengen report: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the report; 0 on success, 2 when an input path is missing or no finished run is found."""
    from rich.console import Console

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: hand the code back to the dispatcher
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2

    for raw in args.dirs:
        if not Path(raw).exists():
            return _error(f"path does not exist: {raw}")

    err = Console(stderr=True, highlight=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", report.SkippedRunWarning)
        try:
            df, skipped = report.load_runs(args.dirs, evals=args.evals)
        except (FileNotFoundError, NotADirectoryError) as exc:
            return _error(str(exc))
    for w in caught:  # re-raise anything that is not ours, print ours readably
        if not issubclass(w.category, report.SkippedRunWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for run_dir, reason in skipped:
        err.print(f"[yellow]warning:[/] skipping run {run_dir}: {reason}", soft_wrap=True)

    if df.empty:
        return _error(f"no finished run (with results.parquet) found under {', '.join(args.dirs)}")

    out = Path(args.out)
    title = args.title or out.name
    command = "lengen report " + shlex.join(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            written = report.write_report(df, out, metric=args.metric, title=title, command=command,
                                          skipped=skipped)
        except OSError as exc:
            return _error(f"cannot write report to {out}: {exc}")
    for w in caught:
        err.print(f"[yellow]warning:[/] {w.message}", soft_wrap=True)

    console = Console()
    summary = report.summarise(df, args.metric)
    ranking = report.mrr(df, args.metric)
    for table in report.rich_tables(summary, ranking):
        console.print(table)
    n_runs = df["run_id"].nunique()
    console.print(f"{n_runs} run(s) read, {len(skipped)} skipped; wrote {len(written)} file(s) to {out}:")
    for path in written:
        console.print(f"  {path}", highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
