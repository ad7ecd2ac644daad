"""``lengen report RUN_OR_SWEEP_DIR... out=DIR [KEY=VALUE ...]``: argv in, exit status out.

Options are Hydra overrides of ``conf/report.yaml``, composed like every other lengen command;
the positional arguments are the run or sweep dirs. Nothing heavy is imported before the work
starts, so ``--help`` answers at once; the report itself lives in :mod:`lengen.report`.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from lengen.errors import ConfigError, guarded

USAGE = """\
usage: lengen report RUN_OR_SWEEP_DIR... out=DIR [KEY=VALUE ...]

Collect the result rows of every finished run below the given run or sweep dirs and write
table.csv/.md (in-range and beyond-range accuracy per task and PE, mean ± std over seeds, and
whether the task was learned in range), ranking.csv/.md (learned PEs ranked per task and seed by
beyond-range accuracy: MRR with a bootstrap interval over seeds and P(rank 1)), runs.csv,
ranks.csv and plots (accuracy vs length, MRR bars, heatmaps over a task's grouping keys such as
len_a/len_b or depth). Unfinished or damaged runs are skipped with a warning naming them.

  lengen report runs/my-study out=results/my-study
  lengen report runs/a runs/b out=results/ab metric=token_accuracy group_by=[hardware]

options (conf/report.yaml; set any with KEY=VALUE):
"""
_OVERRIDE = re.compile(r"^[+~]?[A-Za-z_][A-Za-z0-9_.]*=")


def help_text() -> str:
    from lengen.compose import conf_dir

    lines = (conf_dir() / "report.yaml").read_text(encoding="utf-8").splitlines()[1:]
    return USAGE + "\n".join(f"  {line}" for line in lines) + "\n"


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(dirs, overrides): KEY=VALUE is an override unless it names an existing path."""
    dirs, overrides = [], []
    for i, arg in enumerate(argv):
        if arg.startswith("--") and len(arg) > 2:
            key, _, value = arg[2:].partition("=")
            following = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else "VALUE"
            value = "true" if key == "evals" else value or following
            raise ConfigError(f"--{key} is not an option: options are KEY=VALUE, write {key}={value} "
                              f"(see lengen report --help)")
        if arg[:1] in "+~" and _OVERRIDE.match(arg):
            raise ConfigError(f"{arg}: lengen report has no keys to add or remove; set options with KEY=VALUE")
        (overrides if _OVERRIDE.match(arg) and not Path(arg).exists() else dirs).append(arg)
    return dirs, overrides


def _report(argv: list[str]) -> int:
    from lengen.compose import compose
    from lengen.report.app import run

    dirs, overrides = split_args(argv)
    return run(dirs, compose("report", overrides), "lengen report " + shlex.join(argv))


def main(argv: list[str] | None = None) -> int:
    """0 on success, 2 (after one ``lengen: error:`` line) on bad input."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    try:
        return int(guarded(_report, argv))
    except SystemExit as exc:  # guarded() printed the error line; hand the status to the dispatcher
        return int(exc.code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
