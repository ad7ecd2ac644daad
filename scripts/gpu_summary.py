"""One table from what ``scripts/gpu_check.sh`` left in its output folder, with the GPU targets.

    python scripts/gpu_summary.py OUT

Reads ``OUT/status.tsv`` (one ``part<TAB>item<TAB>exit status<TAB>seconds`` line per step the
check ran), ``OUT/pytest.xml`` (JUnit report of ``pytest -m gpu``), the run directories under
``OUT/runs`` (``results.parquet``, ``meta.yaml`` timing, ``progress.json``) and each benchmark,
``OUT/bench-<item>.json`` (``scripts/bench_gpu.py``). Prints one markdown table -- every part, every PE's training run and
benchmark, and the issue's targets met or missed -- and writes it to ``OUT/summary.md``. Exit
status 1 when a part failed (a non-zero exit, a failed test, a run without results), else 0;
missed targets are reported, not failures.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

#: issue 15's GPU targets
TARGETS = {"vs_bare": 0.9, "of_peak": 0.5, "bias_step": 1.3}
BIAS_PES = ("t5", "alibi", "fire")


def read_status(out: Path) -> list[dict[str, Any]]:
    path = out / "status.tsv"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = line.split("\t")
        if len(parts) == 4 and parts[2].lstrip("-").isdigit():
            rows.append({"part": parts[0], "item": parts[1], "exit": int(parts[2]), "seconds": float(parts[3])})
    return rows


def read_junit(path: Path) -> dict[str, int] | None:
    """Counts of a JUnit XML report (``<testsuites>`` or one ``<testsuite>``), None if absent/unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    total["passed"] = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return total


def read_runs(runs: Path) -> dict[str, dict[str, Any]]:
    """PE name -> what its run left: steps, timing, in-range and beyond exact match (None if unfinished)."""
    import pandas as pd
    import yaml

    found: dict[str, dict[str, Any]] = {}
    for config in sorted(runs.rglob("config.yaml")) if runs.is_dir() else []:
        run = config.parent
        cfg = yaml.safe_load(config.read_text()) or {}
        pe = str((cfg.get("pe") or {}).get("name", run.parts[-4] if len(run.parts) >= 4 else run.name))
        meta = yaml.safe_load((run / "meta.yaml").read_text()) if (run / "meta.yaml").exists() else {}
        progress = json.loads((run / "progress.json").read_text()) if (run / "progress.json").exists() else {}
        info: dict[str, Any] = {"dir": str(run), "step": progress.get("step"), "max_steps": progress.get("max_steps"),
                                **((meta or {}).get("timing") or {}), "gpu": ((meta or {}).get("hardware") or {}).get("label")}
        if (run / "results.parquet").exists():
            rows = pd.read_parquet(run / "results.parquet")
            w = rows["exact_match"] * rows["n"]
            beyond = rows["eval_length"] > rows["train_max"]
            info["in_range"] = float(w[rows["in_range"]].sum() / max(rows.loc[rows["in_range"], "n"].sum(), 1))
            info["beyond"] = float(w[beyond].sum() / max(rows.loc[beyond, "n"].sum(), 1))
        found[pe] = info
    return found


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def target_rows(bench: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    pes = bench.get("pes") or {}
    rows = []
    if pes:
        worst = min(pes, key=lambda p: pes[p]["vs_bare"])
        v = pes[worst]["vs_bare"]
        rows.append(("target", f"lengen train >= {TARGETS['vs_bare']}x bare loop", "met" if v >= TARGETS["vs_bare"]
                     else "MISSED", f"lowest {v:.2f} ({worst})"))
    if "nope" in pes:
        v = pes["nope"]["of_peak"]
        rows.append(("target", f">= {TARGETS['of_peak']} of {bench.get('peak_what', 'matmul')} peak (nope, "
                     f"L={bench.get('length')})", "met" if v >= TARGETS["of_peak"] else "MISSED",
                     f"{v:.2f} of {bench.get('peak_tflops', 0):.0f} TFLOP/s"))
        bias = {p: pes[p]["step_vs_nope"] for p in BIAS_PES if p in pes}
        if bias:
            worst = max(bias, key=bias.get)
            rows.append(("target", f"{'/'.join(bias)} step <= {TARGETS['bias_step']}x nope's (packed)",
                         "met" if bias[worst] <= TARGETS["bias_step"] else "MISSED",
                         ", ".join(f"{p} {v:.2f}" for p, v in bias.items())))
    return rows


def summarize(out: Path) -> tuple[str, bool]:
    """The markdown table and whether every part that ran succeeded."""
    status = read_status(out)
    ok = True
    rows: list[tuple[str, str, str, str]] = []
    junit = read_junit(out / "pytest.xml")
    for s in (s for s in status if s["part"] == "tests"):
        bad = s["exit"] != 0 or junit is None or junit["failures"] + junit["errors"] > 0
        counts = (f"{junit['passed']} passed, {junit['failures'] + junit['errors']} failed, {junit['skipped']} skipped"
                  if junit else "no report")
        ok &= not bad
        rows.append(("tests", s["item"], "FAILED" if bad else "ok", f"{counts}; {s['seconds']:.0f} s"))
    runs = read_runs(out / "runs")
    for s in (s for s in status if s["part"] == "train"):
        r = runs.get(s["item"], {})
        finished = "in_range" in r
        bad = s["exit"] != 0 or not finished
        ok &= not bad
        what = "TIMEOUT" if s["exit"] == 124 else "FAILED" if bad else "ok"
        detail = (f"{r.get('step')} steps, train {_f(r.get('train_seconds'), '.1f')} s, eval "
                  f"{_f(r.get('eval_seconds'), '.1f')} s, in-range EM {_f(r.get('in_range'), '.2f')}, beyond "
                  f"{_f(r.get('beyond'), '.2f')}" if r else f"exit {s['exit']}, no run dir")
        rows.append(("train", s["item"], what, f"{detail}; {s['seconds']:.0f} s wall"))
    for s in (s for s in status if s["part"] == "bench"):
        path = out / f"bench-{s['item']}.json"
        bench: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        bad = s["exit"] != 0 or not bench
        ok &= not bad
        dropout = (bench.get("model_cfg") or {}).get("dropout")
        rows.append(("bench", s["item"], "FAILED" if bad else "ok",
                     f"{bench.get('device', '?')}, {bench.get('precision', '?')}, model {bench.get('model', '?')} "
                     f"(dropout {dropout}), {bench.get('rows')} rows x {bench.get('length')} (packed), peak "
                     f"{_f(bench.get('peak_tflops'), '.0f')} TFLOP/s ({bench.get('peak_what', '?')}); "
                     f"{s['seconds']:.0f} s"))
        for pe, r in (bench.get("pes") or {}).items():
            mem = r.get("peak_memory_gib")
            rows.append((f"bench {s['item']}", pe, "",
                         f"lengen {r['lengen_step_s'] * 1e3:.1f} ms/step, bare {r['bare_step_s'] * 1e3:.1f} "
                         f"(x{r['vs_bare']:.2f}), {r['tok_s']:,.0f} tok/s, {r['of_peak']:.2f} of peak, step/nope "
                         f"{_f(r.get('step_vs_nope'), '.2f')}, peak mem {_f(mem, '.1f')} GiB"))
        rows += [(f"target ({s['item']})", *t[1:]) for t in target_rows(bench)]
    total = sum(s["seconds"] for s in status)
    lines = ["| part | item | status | detail |", "| --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    lines.append(f"| total | {len(status)} steps | {'ok' if ok else 'FAILED'} | {total:.0f} s |")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the output folder of scripts/gpu_check.sh")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        parser.error(f"{args.out} is not a folder (the --out of scripts/gpu_check.sh)")
    table, ok = summarize(args.out)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
