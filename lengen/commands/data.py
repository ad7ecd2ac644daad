"""``lengen data show|export [KEY=VALUE ...]``: look at task data, or write it out as Parquet.

Both take the same Hydra overrides as ``lengen train`` (``task=addition task.scratchpad=full
task.format.reverse_answer=true seed=2 data.n_train=1000 ...``) plus a few of their own:

- ``show``: ``n=3`` examples (default 3), ``split=test|val|train`` (default test), ``length=L`` or
  ``length=[4,9]`` (default: spread over the training and evaluation lengths), ``full=true`` to
  print long sequences whole. Examples come straight from the split's deterministic stream, so
  showing is instant and never writes a cache.
- ``export``: ``out=DIR`` (required; refused when it exists and is not empty). Writes
  ``train/val/test.parquet`` and a dataset card ``README.md``, first into a temporary folder that
  is renamed at the end, so an interrupted export never leaves a half-written dataset.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lengen.config import ConfigError, eval_lengths, train_lengths

SHOW_USAGE = "usage: lengen data show [task=NAME] [task.KEY=VALUE ...] [n=3] [split=test|val|train] [length=L] [full=true]"
EXPORT_USAGE = "usage: lengen data export out=DIR [task=NAME] [task.KEY=VALUE ...] [seed=N] [data.n_train=N] ..."
SPLITS = ("train", "val", "test")


# -- config ----------------------------------------------------------------------------------------


def split_args(argv: Sequence[str], own: Sequence[str], usage: str) -> tuple[dict[str, str], list[str]]:
    """This command's own ``key=value`` options, and the rest as Hydra overrides."""
    mine: dict[str, str] = {}
    overrides: list[str] = []
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r} is not KEY=VALUE; {usage}")
        key, value = arg.split("=", 1)
        if key in own:
            mine[key] = value
        else:
            overrides.append(arg)
    return mine, overrides


def compose(overrides: Sequence[str]) -> DictConfig:
    """The train config with these overrides (Hydra compose; errors become one line)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    import lengen.conf

    tasks = sorted(p.stem for p in (Path(lengen.conf.__file__).parent / "task").glob("*.yaml"))
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "task" and value not in tasks:
            raise ConfigError(f"unknown task {value!r}; valid: {', '.join(tasks)}")
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="lengen.conf", version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(" ".join(str(e).split())) from None


def task_config(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg.task, resolve=True)  # type: ignore[return-value]


def _int(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} must be an integer") from None


def _bool(value: str, key: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"{key}={value!r} must be true or false")


def _lengths(value: str) -> list[int]:
    items = [x for x in re.split(r"[\s,\[\]]+", value) if x]
    if not items:
        raise ConfigError(f"length={value!r} names no length; e.g. length=12 or length=[4,9]")
    return [_int(x, "length") for x in items]


# -- show ------------------------------------------------------------------------------------------


def _clip(symbols: Sequence[str], limit: int) -> str:
    if limit and len(symbols) > limit:
        half = limit // 2
        return " ".join(symbols[:half]) + f" … ({len(symbols) - 2 * half} more) … " + " ".join(symbols[-half:])
    return " ".join(symbols)


def _spread(lengths: Sequence[int], n: int) -> list[int]:
    """``n`` lengths from smallest to largest, evenly spaced (repeating when n > len(lengths))."""
    if n <= len(lengths):
        return [lengths[round(i * (len(lengths) - 1) / max(n - 1, 1))] for i in range(n)]
    return [lengths[i * len(lengths) // n] for i in range(n)]


def show(argv: list[str], console: Console | None = None) -> int:
    """Print ``n`` examples with their lengths in symbols and tokens."""
    from lengen.data.splits import split_rng
    from lengen.data.tokenizer import Tokenizer
    from lengen.tasks import build_task

    if argv and argv[0] in ("-h", "--help"):
        print(SHOW_USAGE)
        return 0
    opts, overrides = split_args(argv, ("n", "split", "length", "full"), SHOW_USAGE)
    n = _int(opts.get("n", "3"), "n")
    if n < 1:
        raise ConfigError(f"n={n} must be >= 1")
    split = opts.get("split", "test")
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}; valid: {', '.join(SPLITS)}")
    full = _bool(opts.get("full", "false"), "full")
    cfg = compose(overrides)
    tcfg = task_config(cfg)
    task = build_task(tcfg)
    tokenizer = Tokenizer(task.symbols)
    train = train_lengths(cfg)
    evals = eval_lengths(cfg)
    if "length" in opts:
        lengths = _lengths(opts["length"])
    else:
        pool = sorted(set(train) | set(evals)) if split == "test" else train
        pool = [x for x in pool if x >= task.min_length()] or pool
        lengths = _spread(pool, n)
    lengths = [lengths[i % len(lengths)] for i in range(n)]
    rngs: dict[int, Any] = {}
    console = console or Console()
    sp = tcfg.get("scratchpad")
    fmt = {k: v for k, v in (tcfg.get("format") or {}).items() if v not in (None, False, 0, 0.0)}
    console.print(
        f"[bold]{task.name}[/]  scratchpad={sp if sp is not None else 'none'}  format={fmt or 'plain'}  "
        f"seed={cfg.seed}  vocabulary={len(task.symbols)}+4 special  "
        f"train lengths {_span(train)}  eval lengths {_span(evals)}  ({split} stream)"
    )
    table = Table(show_edge=False, pad_edge=False)
    for col in ("#", "length", *task.group_keys, "prompt symbols", "target symbols", "answer symbols", "tokens"):
        table.add_column(col, justify="right")
    limit = 0 if full else 120
    shown: list[str] = []
    for k, length in enumerate(lengths, 1):
        rng = rngs.setdefault(length, split_rng(int(cfg.seed), split, length))
        ex = task.example(rng, length)
        ids, _ = tokenizer.encode_pair(ex.prompt, ex.target)
        where = "" if min(train) <= length <= max(train) else " (beyond)"
        table.add_row(str(k), f"{length}{where}", *(f"{ex.extra.get(key)}" for key in task.group_keys),
                      str(len(ex.prompt)), str(len(ex.target)), str(ex.answer_len), str(len(ids)))
        shown.append(f"[bold]#{k}[/] [dim]prompt[/] {escape(_clip(ex.prompt, limit))}")
        shown.append(f"   [dim]target[/] {escape(_clip(ex.target, limit))}")
        if ex.answer_len < len(ex.target):
            shown.append(f"   [dim]answer[/] {escape(' '.join(ex.answer))}")
    console.print(table)
    for line in shown:
        console.print(line)
    return 0


# -- export ----------------------------------------------------------------------------------------


def _card(cfg: DictConfig, data, splits: dict[str, Any], argv: Sequence[str]) -> str:
    tcfg = task_config(cfg)
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        *(f"  - split: {s}\n    path: {s}.parquet" for s in SPLITS),
        "---",
        "",
        f"# lengen task data: {data.task.name}",
        "",
        f"Written by `lengen data export {' '.join(argv)}`. Every example is a deterministic function of",
        "(task config, seed, split, length); no test prompt occurs in val or train, no val prompt in train",
        "(checked by prompt hash).",
        "",
        "## Task config",
        "",
        "```yaml",
        OmegaConf.to_yaml(OmegaConf.create(tcfg)).rstrip(),
        "```",
        "",
        "## Splits",
        "",
        f"- seed: {data.seed}",
        f"- train lengths: {_span(data.train_lengths)} ({data.n_train} examples requested, balanced per length)",
        f"- val lengths: {_span(data.train_lengths)} ({data.n_val} per length)",
        f"- test lengths: {_span(data.test_lengths)} ({data.n_test} per length)",
        "",
        "| split | rows | lengths |",
        "|---|---|---|",
        *(f"| {s} | {len(ds)} | {_span(sorted(set(ds['length'])))} |" for s, ds in splits.items()),
        "",
        "Lengths whose instance space is small hold fewer examples (evaluation prompts are never repeated",
        "and are excluded from training).",
        "",
        "## Columns",
        "",
        "- `prompt`, `target`: the example as lists of symbols (one digit per symbol).",
        "- `length`: the task's natural size (symbols, digits, items or context tokens).",
        "- `answer_len`: how many trailing target symbols are the final answer (the rest is scratchpad).",
        "- `input_ids`: `<bos> prompt <sep> target <eos>` as token ids (vocabulary below).",
        "- `n_prompt`: number of tokens up to and including `<sep>`; loss and scoring cover the rest.",
        *(f"- `{k}`: grouping key of the results (per-example value)." for k in data.task.group_keys),
        "",
        "## Vocabulary (token id: symbol)",
        "",
        ", ".join(f"{i}: `{s}`" for i, s in enumerate(data.tokenizer.vocab)),
        "",
        "## Loading",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("parquet", data_files={s: f"DIR/{s}.parquet" for s in ("train", "val", "test")})',
        "```",
        "",
    ]
    return "\n".join(lines)


def _span(lengths: Sequence[int]) -> str:
    xs = sorted(lengths)
    if not xs:
        return "none"
    if xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}..{xs[-1]}"
    return ", ".join(map(str, xs))


def export(argv: list[str]) -> int:
    """Write the three splits as Parquet plus a dataset card into ``out``."""
    from lengen.data.dataset import TaskData

    if argv and argv[0] in ("-h", "--help"):
        print(EXPORT_USAGE)
        return 0
    opts, overrides = split_args(argv, ("out",), EXPORT_USAGE)
    if not opts.get("out"):
        raise ConfigError(f"missing out=DIR (where the Parquet files go); {EXPORT_USAGE}")
    out = Path(opts["out"])
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out={out} already exists and is not an empty directory; pick a new one or remove it")
    cfg = compose(overrides)
    data = TaskData(
        task_config(cfg),
        seed=int(cfg.seed),
        train_lengths=train_lengths(cfg),
        test_lengths=eval_lengths(cfg),
        n_train=int(cfg.data.n_train),
        n_val_per_length=int(cfg.data.n_val_per_length),
        n_test_per_length=int(cfg.eval.n_per_length),
        cache_dir=cfg.data.get("cache_dir"),
    )
    splits = {s: data.split(s) for s in SPLITS}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, ds in splits.items():
            ds.to_parquet(str(tmp / f"{name}.parquet"))
        (tmp / "README.md").write_text(_card(cfg, data, splits, argv))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary folder
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = ", ".join(f"{s} {len(ds)}" for s, ds in splits.items())
    print(f"wrote {out} ({rows} rows; README.md dataset card)")
    return 0
