"""``lengen analyze`` as a command: options checked, runs found and loaded, rows computed and written.

Everything a user can get wrong ends as a :class:`~lengen.errors.ConfigError` with one line;
skipped runs are warnings on stderr, the summary tables go to stdout. Outputs (all atomic):
``<analysis>.parquet`` (every row) / ``.csv`` (the head-mean rows), ``<analysis>.md`` (summary tables, the command, wall
time and hardware) and PNG plots.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from lengen.analyze import ANALYSES
from lengen.errors import ConfigError


def options(cfg: DictConfig) -> dict[str, Any]:
    """The composed ``conf/analyze.yaml`` as checked plain values."""
    from lengen.schema import AnalyzeSchema, check_options

    check_options(cfg, AnalyzeSchema)
    opts = OmegaConf.to_container(cfg, resolve=True)
    out = Path(str(opts["out"]))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} exists and is not a directory")
    return {**opts, "out": out, "title": opts["title"] or out.name}


def n_runs(rows: pd.DataFrame) -> int:
    return len(set(rows["run_id"]) | set(rows.get("run_id_b", pd.Series(dtype=str)).dropna()))


def _lengths(opts: dict[str, Any], first) -> list[int]:
    from lengen.config import eval_lengths

    if opts["lengths"] is not None:
        return sorted(set(opts["lengths"]))
    hi = opts["max_len"] if opts["max_len"] is not None else max(eval_lengths(first.cfg))
    if opts["min_len"] > hi:
        raise ConfigError(f"min_len={opts['min_len']} is above max_len={hi} (the first run's eval.max_len); "
                          f"set max_len=N")
    return list(range(opts["min_len"], hi + 1))


def _device(accelerator: str):
    import torch

    if accelerator == "cuda" and not torch.cuda.is_available():
        raise ConfigError("accelerator=cuda but torch sees no CUDA GPU on this machine; use accelerator=cpu or auto")
    return torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")


def compute(analysis: str, dirs: Sequence[str], opts: dict[str, Any], warn=print) -> pd.DataFrame:
    """The rows of one analysis over the finished runs below ``dirs``."""
    import torch

    from lengen.analyze import runner
    from lengen.analyze.inputs import Inputs
    from lengen.analyze.runs import check_same_task, collect, load

    if analysis not in ANALYSES:
        raise ConfigError(f"unknown analysis {analysis!r}; valid: {', '.join(ANALYSES)}")
    if not dirs:
        raise ConfigError(f"no run or sweep dir given: lengen analyze {analysis} RUN_OR_SWEEP_DIR... out=DIR")
    runs, skipped = collect(dirs, opts["checkpoint"])
    for path, reason in skipped:
        warn(f"skipping run {path}: {reason}")
    if not runs:
        why = f" ({len(skipped)} skipped; first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ConfigError(f"no finished run with checkpoints/{opts['checkpoint']}.ckpt under {', '.join(dirs)}{why}")
    check_same_task(runs)
    if opts["threads"]:
        torch.set_num_threads(int(opts["threads"]))
    device = _device(opts["accelerator"])
    inputs = Inputs(runs[0], _lengths(opts, runs[0]), opts["n_per_length"], opts["data_seed"])
    loaded = [load(r, opts["checkpoint"], len(inputs.tokenizer), inputs.max_tokens, device) for r in runs]
    if analysis == "attention":
        pairs = runner.plan_pairs(loaded, opts["pairs"], opts["reference"])
        rows = runner.attention(loaded, inputs, pairs, opts["batch_size"], device)
    elif analysis == "distance":
        rows = runner.distance(loaded, inputs, opts["batch_size"], device)
    else:
        rows = runner.probe(loaded, inputs, opts["batch_size"], opts["ridge"], device)
    rows["data_seed"] = inputs.seed
    rows["checkpoint"] = opts["checkpoint"]
    return rows


def tables(analysis: str, rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(heading, table) pairs of the summary."""
    from lengen.analyze import summary

    if analysis == "attention":
        return [("Which attention is closest (mean over layers; rank by JSD over all lengths)",
                 summary.attention_ranking(rows)),
                ("JSD per layer", summary.attention_by_layer(rows))]
    if analysis == "distance":
        return [("Attended distance per layer (mean over heads)", summary.per_layer(rows, summary.DISTANCE_COLUMNS))]
    return [("Linear probes per layer (layer 0 = embeddings; test: held-out examples)",
             summary.per_layer(rows, summary.PROBE_COLUMNS))]


def figures(analysis: str, rows: pd.DataFrame, title: str) -> dict[str, Any]:
    """``{file name: Figure}``."""
    from lengen.analyze import plots
    from lengen.report.plots import safe_name

    if analysis == "attention":
        out = {"attention_jsd_vs_length.png": plots.plot_jsd_vs_length(rows, f"{title}: attention JSD")}
        for _, g in rows.groupby(["run_id", "run_id_b"], sort=False):
            pe_a, s_a, pe_b, s_b = g.iloc[0][["pe", "seed", "pe_b", "seed_b"]]
            name = safe_name("attention", f"{pe_a}-s{s_a}", "vs", f"{pe_b}-s{s_b}") + ".png"
            out[name] = plots.plot_pair_heatmap(g, f"{title}: JSD {pe_a} seed {s_a} vs {pe_b} seed {s_b}")
        return out
    if analysis == "distance":
        return {f"distance_{m}.png": plots.plot_measure_by_layer(rows, m, m.replace("_", " "), f"{title}: {m}")
                for m in ("mean_distance", "relative_distance", "argmax_distance")}
    return {f"probe_{t}.png": plots.plot_measure_by_layer(rows, f"{t}_accuracy", "probe accuracy",
                                                          f"{title}: {t} probe (dotted: shuffled labels)",
                                                          control=f"{t}_shuffled_accuracy")
            for t in ("position", "to_end")}


def write(analysis: str, rows: pd.DataFrame, opts: dict[str, Any], command: str, seconds: float) -> list[Path]:
    from lengen.analyze.explain import EXPLAIN
    from lengen.hardware import hardware_info
    from lengen.io import atomic_write
    from lengen.report.plots import save
    from lengen.report.render import markdown, write_csv, write_text

    out: Path = opts["out"]
    # The CSV keeps the head-mean rows (readable, small); every per-head row is in the Parquet file.
    per_head = "head" in rows and rows["head"].isna().any()
    written = [write_csv(out / f"{analysis}.csv", rows[rows["head"].isna()] if per_head else rows),
               atomic_write(out / f"{analysis}.parquet", lambda p: rows.to_parquet(p, index=False))]
    parts = [f"# {opts['title']}: {analysis}\n", f"`{command}`\n",
             f"{n_runs(rows)} run(s), lengths {rows['eval_length'].min()}–{rows['eval_length'].max()}, "
             f"data seed {rows['data_seed'].iloc[0]}; {seconds:.0f} s on {hardware_info()['label']}.\n",
             EXPLAIN[analysis]]
    for heading, table in tables(analysis, rows):
        parts.append(f"## {heading}\n\n{markdown(table, ['left'] * table.shape[1])}")
    written.append(write_text(out / f"{analysis}.md", "\n".join(parts)))
    if opts["plots"]:
        for name, fig in figures(analysis, rows, opts["title"]).items():
            written.append(save(fig, out / name))
    return written


def run(analysis: str, dirs: Sequence[str], cfg: DictConfig, command: str) -> int:
    """``lengen analyze``: 0 on success; bad input raises ConfigError."""
    import datasets
    from rich.console import Console
    from rich.markup import escape

    datasets.disable_progress_bars()  # the shared inputs are cached on first use; no bars for that
    opts = options(cfg)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    start = time.perf_counter()
    rows = compute(analysis, dirs, opts, warn=lambda m: err.print(f"[yellow]warning:[/] {escape(m)}"))
    seconds = time.perf_counter() - start
    try:
        written = write(analysis, rows, opts, command, seconds)
    except OSError as exc:
        raise ConfigError(f"cannot write the analysis to {opts['out']}: {exc}") from None
    console = Console(highlight=False, soft_wrap=True)
    for heading, table in tables(analysis, rows):
        console.print(f"[bold]{escape(heading)}[/]")
        console.print(escape(table.to_string(index=False)))
    console.print(f"{n_runs(rows)} run(s) analysed in {seconds:.1f} s; wrote {len(written)} file(s) "
                  f"to {opts['out']}")
    return 0
