"""The recipe search of a study: in-range validation accuracy of each candidate recipe, per task.

A study chooses one training recipe per task family (``conf/recipe/``), the same for every PE, on
*in-range validation only*: for each run it takes the best ``val/exact_match`` that training
logged (the in-range validation split that also picks the checkpoint), averages it over the PEs
of one seed, and the recipe with the highest mean wins (ties go to the cheaper one: fewer steps).
Beyond-range accuracy is never read. Reads ``<study>/<task>/<pe>/recipe=<name>/seed<k>/``::

    python scripts/recipe_table.py results/kazemnejad2023-cpu/rundirs/kazemnejad2023-cpu \\
        --seed 1 --out results/kazemnejad2023-cpu/recipes.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

PES = ("nope", "t5", "alibi", "rope", "ape")
#: the in-range exact match a task family's recipe should reach (a cell is "learned" at 0.95)
TARGET = 0.95


def best_val(run: Path) -> float | None:
    """Best in-range validation exact match a finished run logged (None while unfinished)."""
    if not (run / "results.parquet").exists() or not (run / "metrics.csv").exists():
        return None
    val = pd.read_csv(run / "metrics.csv").get("val/exact_match")
    return None if val is None or val.dropna().empty else float(val.max())


def scan(study: Path, seed: int) -> pd.DataFrame:
    rows = []
    for run in sorted(study.glob(f"*/*/recipe=*/seed{seed}")):
        task, pe, recipe = run.parts[-4], run.parts[-3], run.parts[-2].split("=", 1)[1]
        meta = yaml.safe_load((run / "meta.yaml").read_text()) if (run / "meta.yaml").exists() else {}
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        rows.append({"task": task, "recipe": recipe, "pe": pe, "val_exact_match": best_val(run),
                     "steps": cfg["trainer"]["max_steps"],
                     "train_seconds": ((meta or {}).get("timing") or {}).get("train_seconds")})
    return pd.DataFrame(rows)


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, recipe): validation accuracy per PE, the mean over PEs and the choice."""
    wide = runs.pivot_table(index=["task", "recipe"], columns="pe", values="val_exact_match", aggfunc="first")
    wide = wide.reindex(columns=[p for p in PES if p in wide.columns])
    out = wide.copy()
    out["pes_done"] = wide.notna().sum(axis=1)
    out["mean"] = wide.mean(axis=1)
    out["steps"] = runs.groupby(["task", "recipe"])["steps"].first()
    out["train_min_per_run"] = runs.groupby(["task", "recipe"])["train_seconds"].mean() / 60
    out = out.reset_index()
    complete = out[out["pes_done"] == len(PES)]  # a recipe competes once every PE has run
    best = complete.sort_values(["mean", "steps"], ascending=[False, True]).groupby("task").head(1)
    out["chosen"] = out.index.isin(best.index)
    return out


def markdown(t: pd.DataFrame, seed: int) -> str:
    pes = [p for p in PES if p in t.columns]
    head = ["task", "recipe", "steps", *pes, "mean over PEs", "min/run", "chosen"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(pes) + 2) + [":-:"]) + "|"]
    for r in t.itertuples(index=False):
        d = r._asdict()
        cells = [d["task"], f"`{d['recipe']}`", str(int(d["steps"])),
                 *("–" if pd.isna(d[p]) else f"{100 * d[p]:.1f}" for p in pes),
                 "–" if pd.isna(d["mean"]) else f"**{100 * d['mean']:.1f}**",
                 "–" if pd.isna(d["train_min_per_run"]) else f"{d['train_min_per_run']:.1f}",
                 ("✓" if d["mean"] >= TARGET else "best so far, below target") if d["chosen"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return (f"In-range validation exact match (%, best logged `val/exact_match`, seed {seed}) of each "
            "candidate recipe, per PE and averaged over the PEs; the highest mean is chosen (ties: fewer "
            "steps); a family whose best mean is below 95 % gets the next candidate. Beyond-range accuracy "
            "plays no part. `min/run`: wall minutes per run (shared machine: upper bounds).\n\n" + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", type=Path, help="<runs_root>/<study>")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the markdown table here (default: print it)")
    args = ap.parse_args(argv)
    if not args.study.is_dir():
        print(f"recipe_table: error: {args.study} is not a directory", file=sys.stderr)
        return 2
    runs = scan(args.study, args.seed)
    if runs.empty:
        print(f"recipe_table: error: no <task>/<pe>/recipe=<name>/seed{args.seed} runs under {args.study}",
              file=sys.stderr)
        return 2
    text = markdown(table(runs), args.seed)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
