"""Time generating N examples (default 100,000) of every task, as the training split would.

    python scripts/bench_data.py [--n 100000] [--tasks addition sort] [--no-scratchpad]

Examples are drawn with ``lengen.data.splits.draw_split`` over each task's training lengths
(``conf/task/<name>.yaml``), so prompt hashing is included; tasks with steps are timed again with
the full scratchpad. Budget (issue 3): under 20 s per 100,000 examples of any task.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

import lengen.conf
from lengen.data.splits import balanced_counts, draw_split
from lengen.tasks import TASKS, build_task
from lengen.tasks.scratchpad import StepTask

BUDGET_S = 20.0


def train_lengths(cfg: dict) -> list[int]:
    if cfg.get("train_lengths"):
        return sorted(int(x) for x in cfg["train_lengths"])
    return list(range(int(cfg["train_min"]), int(cfg["train_max"]) + 1))


def bench(cfg: dict, n: int) -> tuple[int, float, float]:
    task = build_task(cfg)
    lengths = train_lengths(cfg)
    t0 = time.perf_counter()
    examples = draw_split(task, "train", lengths, balanced_counts(n, len(lengths)), seed=0, unique=False)
    dt = time.perf_counter() - t0
    mean_len = sum(len(e.prompt) + len(e.target) for e in examples) / max(len(examples), 1)
    return len(examples), dt, mean_len


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--tasks", nargs="*", default=sorted(TASKS))
    parser.add_argument("--no-scratchpad", action="store_true", help="skip the full-scratchpad runs")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 110))
    table = Table(title=f"generating {args.n:,} training examples per task")
    for col in ("task", "variant", "lengths", "examples", "seconds", "examples/s", "symbols/example", "budget"):
        table.add_column(col, justify="left" if col in ("task", "variant") else "right")
    worst = 0.0
    for name in args.tasks:
        cfg = yaml.safe_load((Path(lengen.conf.__file__).parent / "task" / f"{name}.yaml").read_text())
        variants = [("default", cfg)]
        if issubclass(TASKS[name], StepTask) and not args.no_scratchpad:
            variants.append(("scratchpad=full", {**cfg, "scratchpad": "full"}))
        for label, vcfg in variants:
            count, dt, mean_len = bench(vcfg, args.n)
            scaled = dt * args.n / max(count, 1)
            worst = max(worst, scaled)
            lengths = train_lengths(vcfg)
            ok = "[green]ok[/]" if scaled < BUDGET_S else "[red]over[/]"
            table.add_row(name, label, f"{lengths[0]}..{lengths[-1]}", f"{count:,}", f"{dt:.2f}",
                          f"{count / dt:,.0f}", f"{mean_len:.0f}", ok)
            console.print(f"{name} {label}: {count:,} in {dt:.2f}s", highlight=False)
    console.print(table)
    console.print(f"slowest: {worst:.2f} s per {args.n:,} examples (budget {BUDGET_S:.0f} s)")
    return 0 if worst < BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
