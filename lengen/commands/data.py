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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lengen.config import ConfigError, eval_lengths, train_lengths, validate

SHOW_USAGE = "usage: lengen data show [task=NAME] [task.KEY=VALUE ...] [n=3] [split=test|val|train] [length=L] [full=true]"
EXPORT_USAGE = "usage: lengen data export out=DIR [task=NAME] [task.KEY=VALUE ...] [seed=N] [data.n_train=N] ..."
SPLITS = ("train", "val", "test")
#: this command's own top-level keys (conf/data.yaml).
DATA_KEYS = ("n", "split", "length", "full", "out")


# -- config ----------------------------------------------------------------------------------------


def compose_data(argv: Sequence[str], usage: str) -> DictConfig:
    """``conf/data.yaml`` (the train config plus this command's options) with ``argv`` as overrides."""
    from lengen.compose import compose

    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r} is not KEY=VALUE; {usage}")
    return compose("data", argv)


def task_config(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg.task, resolve=True)  # type: ignore[return-value]


def _int_option(cfg: DictConfig, key: str, minimum: int) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}={value!r} must be an integer >= {minimum}")
    return value


def _lengths(value: Any) -> list[int]:
    items = list(value) if OmegaConf.is_list(value) or isinstance(value, list) else [value]
    if not items or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in items):
        raise ConfigError(f"length={value!r} must be a length >= 1 or a list of them; e.g. length=12 or length=[4,9]")
    return [int(x) for x in items]


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
    cfg = compose_data(argv, SHOW_USAGE)
    validate(cfg, pe=False, extra=DATA_KEYS)
    n = _int_option(cfg, "n", 1)
    split = cfg.split
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}; valid: {', '.join(SPLITS)}")
    if not isinstance(cfg.full, bool):
        raise ConfigError(f"full={cfg.full!r} must be true or false")
    full = cfg.full
    tcfg = task_config(cfg)
    task = build_task(tcfg)
    tokenizer = Tokenizer(task.symbols)
    train = train_lengths(cfg)
    evals = eval_lengths(cfg)
    if cfg.length is not None:
        lengths = _lengths(cfg.length)
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
    from lengen.io import atomic_dir
    from lengen.rundir import task_data

    if argv and argv[0] in ("-h", "--help"):
        print(EXPORT_USAGE)
        return 0
    cfg = compose_data(argv, EXPORT_USAGE)
    if not cfg.out:
        raise ConfigError(f"missing out=DIR (where the Parquet files go); {EXPORT_USAGE}")
    out = Path(str(cfg.out))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out={out} already exists and is not an empty directory; pick a new one or remove it")
    validate(cfg, pe=False, extra=DATA_KEYS)
    data = task_data(cfg)
    splits = {s: data.split(s) for s in SPLITS}
    with atomic_dir(out) as tmp:
        for name, ds in splits.items():
            ds.to_parquet(str(tmp / f"{name}.parquet"))
        (tmp / "README.md").write_text(_card(cfg, data, splits, argv))
    rows = ", ".join(f"{s} {len(ds)}" for s, ds in splits.items())
    print(f"wrote {out} ({rows} rows; README.md dataset card)")
    return 0
