"""``lengen <command> ...``: dispatch to the subcommands.

``train`` is a Hydra app; every other argument is passed to Hydra unchanged (``-m`` multirun
included). Before Hydra runs, config-group choices (``+pe=NAME``, ``task=NAME``, ...) are checked
so a typo stops with one line listing the valid names instead of a stack of Hydra output.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lengen.errors import fail, guarded

HELP = """usage: lengen <command> [args]

Train small decoder-only Transformers on short task instances and measure exact match at every
length up to far beyond training.

commands:
  train   train + evaluate one run (or a sweep with -m):  lengen train +pe=nope [task=reverse] [KEY=VALUE ...]
  eval    re-evaluate a trained run:                      lengen eval run_dir=DIR eval.max_len=80
  data    look at or export task data:                    lengen data show task=addition n=3 | lengen data export task=copy out=DIR
  report  tables and plots from run/sweep dirs:           lengen report runs/STUDY --out results/NAME

config groups (train): task, pe (required: +pe=NAME), model, trainer, eval, logger, experiment
  lengen train --help   lists every option of each group and the composed config.
"""

COMMANDS = ("train", "eval", "data", "report")


def conf_root() -> Path:
    import lengen.conf

    return Path(lengen.conf.__file__).parent


def check_group_choices(args: list[str]) -> None:
    """Fail fast on an unknown option of a config group (``[+]group=a[,b...]``)."""
    root = conf_root()
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        folder = root / group
        if "." in group or not folder.is_dir() or group.startswith("hydra"):
            continue
        if any(c in value for c in "()[]*"):
            continue  # sweep functions / globs: let Hydra expand them
        valid = sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))
        for choice in filter(None, value.split(",")):
            if choice not in valid and choice != "null":
                fail(f"unknown {group} {choice!r}; valid: {', '.join(valid)}")


def quiet_libraries() -> None:
    """Drop library chatter that says nothing about the run (tips, deprecations, cache bars)."""
    import logging
    import warnings

    import datasets

    datasets.disable_progress_bars()
    for pattern in (".*treespec.*", ".*Experiment logs directory.*", ".*weights_only.*", ".*litlogger.*"):
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )


def _run_train(args: list[str]) -> None:
    from lengen.commands import train as train_cmd

    check_group_choices(args)
    # Leave an argv that re-enters this command (Lightning DDP re-executes sys.argv).
    sys.argv = [str(Path(train_cmd.__file__).resolve()), *args]
    train_cmd.main()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        fail(f"unknown command {cmd!r}; valid: {', '.join(COMMANDS)}")
    quiet_libraries()
    if cmd == "train":
        _run_train(rest)
        return 0
    if cmd == "eval":
        if rest and rest[0] in ("-h", "--help"):
            from lengen.commands.eval import USAGE

            print(USAGE)
            return 0
        from lengen.commands.eval import evaluate_run

        guarded(evaluate_run, rest)
        return 0
    if cmd == "data":
        from lengen.commands import data as data_cmd

        sub = rest[0] if rest else ""
        if sub not in ("show", "export"):
            fail(f"unknown data command {sub!r}; valid: show, export")
        return int(guarded(getattr(data_cmd, sub), rest[1:]) or 0)
    from lengen.commands import report as report_cmd

    return int(report_cmd.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
