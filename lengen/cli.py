"""``lengen <command> ...``: the dispatcher, and nothing else.

Every command composes its config through Hydra: ``train`` and ``eval`` are Hydra apps
(``conf/config.yaml``, ``conf/eval.yaml``; ``-m`` sweeps), ``data`` and ``report`` compose
``conf/data.yaml`` / ``conf/report.yaml``. All take ``key=value`` overrides. Before a Hydra app
starts, its arguments are checked so a typo or a bad value stops with one line naming it and the
valid choices, instead of a page of Hydra output. This module imports nothing heavy: ``lengen
--help`` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lengen.compose import check_group_choices
from lengen.errors import ConfigError, fail, guarded

HELP = """usage: lengen <command> [key=value ...]

Train small decoder-only Transformers on short task instances and measure exact match at every
length up to far beyond training.

commands:
  train   train + evaluate one run (or a sweep with -m):  lengen train +pe=nope [task=reverse] [KEY=VALUE ...]
  eval    re-evaluate finished runs (or a sweep with -m): lengen eval run_dir=DIR eval.max_len=80
  data    look at or export task data:                    lengen data show task=addition n=3 | lengen data export task=copy out=DIR
  report  tables and plots from run/sweep dirs:           lengen report runs/STUDY out=results/NAME
  analyze attention, distance, position probes of runs:  lengen analyze attention runs/STUDY/TASK out=DIR

config groups (train): task, pe (required: +pe=NAME), model, trainer, eval, logger, experiment
  lengen <command> --help   explains a command; lengen train --help lists every option of each group.
"""

COMMANDS = ("train", "eval", "data", "report", "analyze")
#: Hydra flags after which the app does not run (so there is nothing to check first).
INFO_FLAGS = ("-h", "--help", "--hydra-help", "--cfg", "-c", "--info", "--resolve", "--package", "-p",
              "--shell-completion", "-sc")
#: Hydra's own location keys: a run's location is runs_root, never Hydra's output dir.
LOCATION_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "hydra.job.chdir")


def check_locations(args: list[str]) -> None:
    for arg in args:
        key = arg.split("=", 1)[0].lstrip("+~")
        if key in LOCATION_KEYS:
            raise ConfigError(f"{key} cannot move a run: set runs_root=DIR instead (runs go to "
                              f"runs_root/<study>/<task>/<pe>/<overrides>/seed<k>; evaluations to <run>/evals/)")


def check_folder(path: str, key: str) -> None:
    """A folder lengen will create must not sit below a file or in a place it cannot write."""
    import os

    here = Path(path).absolute()
    for parent in (here, *here.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{key}={path}: {parent} is a file, not a folder; pick another {key}")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{key}={path}: {parent} is not writable; pick another {key}")
            return


def precheck_train(args: list[str]) -> None:
    """Compose and validate a single run's config before Hydra starts (one line on any error)."""
    check_group_choices(args)
    check_locations(args)
    roots = [a.split("=", 1)[1] for a in args if a.split("=", 1)[0].lstrip("+") == "runs_root"]
    for root in roots[-1:] or ["runs"]:
        if "," not in root:
            check_folder(root, "runs_root")
    if "-m" in args or "--multirun" in args or any(a in INFO_FLAGS for a in args):
        return
    from lengen.compose import compose
    from lengen.config import validate

    validate(compose("config", args))


def precheck_eval(args: list[str]) -> list[str]:
    from lengen.commands.eval import check_overrides

    check_group_choices(args)
    check_locations(args)
    if not any(a in INFO_FLAGS for a in args) and not any(a.split("=", 1)[0] == "run_dir" for a in args):
        raise ConfigError("missing run_dir=DIR (a finished lengen train run directory); "
                          "usage: lengen eval run_dir=DIR [eval.max_len=N] [eval.checkpoint=best|last] ...")
    return check_overrides(args)


def quiet_libraries() -> None:
    """Drop library chatter that says nothing about the run (tips, cache bars)."""
    import logging
    import warnings

    import datasets
    import lightning.pytorch  # noqa: F401  before Hydra configures logging: Lightning then keeps its
    # own console handler and does not also propagate to Hydra's (each line would print twice)

    datasets.disable_progress_bars()
    for pattern in (".*treespec.*", ".*Experiment logs directory.*", ".*litlogger.*"):
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )


def run_hydra_app(module, args: list[str]) -> None:
    """Leave an argv that re-enters this command (Lightning DDP re-executes sys.argv), then run it."""
    sys.argv = [str(Path(module.__file__).resolve()), *args]
    module.main()


#: Hydra's run modes, each spelled two ways; only one may be given.
HYDRA_MODES = {"-m": "--multirun", "--multirun": "--multirun", "-r": "--run", "--run": "--run",
               "-c": "--cfg", "--cfg": "--cfg", "-i": "--info", "--info": "--info",
               "-sc": "--shell-completion", "--shell-completion": "--shell-completion"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        fail(f"unknown command {cmd!r}; valid: {', '.join(COMMANDS)}")
    if cmd == "analyze":
        from lengen.commands import analyze as analyze_cmd

        return int(analyze_cmd.main(rest) or 0)
    if cmd == "report":
        from lengen.commands import report as report_cmd

        return int(report_cmd.main(rest) or 0)
    if cmd == "data":
        from lengen.commands import data as data_cmd

        sub = rest[0] if rest else ""
        if sub not in ("show", "export"):
            fail(f"unknown data command {sub!r}; valid: show, export")
        quiet_libraries()
        return int(guarded(getattr(data_cmd, sub), rest[1:]) or 0)
    modes = sorted({HYDRA_MODES[a] for a in rest if a in HYDRA_MODES})
    if len(modes) > 1:  # Hydra would raise a ValueError with a traceback
        fail(f"{' and '.join(modes)} cannot be combined; use one of them (e.g. --cfg job without -m)")
    if cmd == "train":
        from lengen.commands import train as app

        guarded(precheck_train, rest)
    else:
        from lengen.commands import eval as app

        rest = guarded(precheck_eval, rest)
    if not any(a in INFO_FLAGS for a in rest):
        quiet_libraries()
    run_hydra_app(app, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
