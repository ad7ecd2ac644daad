"""``lengen analyze attention|distance|probe RUN_OR_SWEEP_DIR... out=DIR [KEY=VALUE ...]``.

Options are Hydra overrides of ``conf/analyze.yaml`` (composed like every lengen command, checked
against :class:`lengen.schema.AnalyzeSchema`); the first positional argument names the analysis,
the others are run or sweep dirs. Nothing heavy is imported before the work starts, so ``--help``
answers at once; the analysis itself lives in :mod:`lengen.analyze`.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from lengen.analyze import ANALYSES
from lengen.errors import ConfigError, guarded

USAGE = """\
usage: lengen analyze attention|distance|probe RUN_OR_SWEEP_DIR... out=DIR [KEY=VALUE ...]

Read finished runs (their best checkpoints, or checkpoint=last) on one shared set of inputs per
length and write <analysis>.parquet/.csv (rows with run ids, pe, seed, layer, head, length,
measure, value), <analysis>.md (summary tables) and plots. Attention is streamed over batches
with a hook on the model's attention, never stored for all inputs at once.

  attention  JSD and symmetric KL between runs' attention (each head matched to its closest
             head), every run vs the reference PE's run of its seed, plus the reference PE's
             seed-to-seed baseline; heatmaps layers x lengths per pair and a ranking
  distance   how far back each head attends: mean, argmax and relative distance per layer/head
  probe      linear probes of absolute position and tokens-to-end per layer, fit in range,
             tested at every length, with a shuffled-label control

  lengen analyze attention runs/study/sort out=results/study/analysis reference=nope max_len=40
  lengen analyze probe runs/study/sort/ape runs/study/sort/nope out=/tmp/probe lengths=[4,8,16,32]

options (conf/analyze.yaml; set any with KEY=VALUE):
"""


_OVERRIDE = re.compile(r"^[+~]?[A-Za-z_][A-Za-z0-9_.]*=")


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(dirs, overrides): KEY=VALUE is an override unless it names an existing path."""
    dirs, overrides = [], []
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            key, _, value = arg[2:].partition("=")
            raise ConfigError(f"--{key} is not an option: options are KEY=VALUE, write {key}={value or 'VALUE'} "
                              f"(see lengen analyze --help)")
        if arg[:1] in "+~" and _OVERRIDE.match(arg):
            raise ConfigError(f"{arg}: lengen analyze has no keys to add or remove; set options with KEY=VALUE")
        (overrides if _OVERRIDE.match(arg) and not Path(arg).exists() else dirs).append(arg)
    return dirs, overrides


def help_text() -> str:
    from lengen.compose import conf_dir

    lines = (conf_dir() / "analyze.yaml").read_text(encoding="utf-8").splitlines()[1:]
    return USAGE + "\n".join(f"  {line}" for line in lines) + "\n"


def _analyze(argv: list[str]) -> int:
    from lengen.analyze.app import run
    from lengen.compose import compose

    if not argv or "=" in argv[0]:
        raise ConfigError(f"name the analysis first: lengen analyze {'|'.join(ANALYSES)} RUN_OR_SWEEP_DIR... out=DIR")
    analysis, rest = argv[0], argv[1:]
    if analysis not in ANALYSES:
        raise ConfigError(f"unknown analysis {analysis!r}; valid: {', '.join(ANALYSES)}")
    dirs, overrides = split_args(rest)
    return run(analysis, dirs, compose("analyze", overrides), "lengen analyze " + shlex.join(argv))


def main(argv: list[str] | None = None) -> int:
    """0 on success, 2 (after one ``lengen: error:`` line) on bad input."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    try:
        return int(guarded(_analyze, argv))
    except SystemExit as exc:
        return int(exc.code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
