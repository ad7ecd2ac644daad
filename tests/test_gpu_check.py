"""The parts of ``scripts/gpu_check.sh`` that run without a GPU: its argument handling and the
commands it would run (``--dry-run``), its refusal without CUDA, the summary table
(``scripts/gpu_summary.py``) on a fabricated output folder, and ``scripts/bench_gpu.py`` end to end
with a tiny model on the CPU (so the benchmark's first run on a GPU is not its first run at all)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lengen.compose import conf_dir

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
PES = sorted(p.stem for p in (conf_dir() / "pe").glob("*.yaml"))


def check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def load(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(f"_check_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_prints_every_part_with_the_issues_commands(tmp_path):
    proc = check("--dry-run", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    lines = [shlex.split(line) for line in proc.stdout.splitlines()]
    tests, *trains, bench, bench0, summary = lines
    assert tests[:2] == ["timeout", "240"] and tests[3:7] == ["-m", "pytest", "-m", "gpu"]
    assert f"--junitxml={tmp_path}/out/pytest.xml" in tests
    assert [t[t.index("train") + 1] for t in trains] == [f"+pe={pe}" for pe in PES]  # every PE, in order
    for t in trains:
        assert {"task=copy", "model=paper", "trainer=paper", "trainer.max_steps=200",
                f"runs_root={tmp_path}/out/runs"} <= set(t)
    assert bench[3].endswith("scripts/bench_gpu.py") and bench[bench.index("--pes") + 1:-4] == PES
    assert bench[-2:] == ["--out", f"{tmp_path}/out/bench-paper.json"]
    biased = [pe for pe in PES if pe in ("nope", "t5", "alibi", "fire", "kerple")]
    assert bench0[bench0.index("--pes") + 1:bench0.index("--dropout")] == biased and "0" in bench0
    assert summary[-2:] == ["scripts/gpu_summary.py", f"{tmp_path}/out"]
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_options_choose_pes_steps_and_parts():
    proc = check("--dry-run", "--pes", "nope t5", "--steps", "50", "--skip", "tests,bench")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all("lengen.cli train" in line for line in lines[:2])
    assert "+pe=nope" in lines[0] and "+pe=t5" in lines[1] and "trainer.max_steps=50" in lines[0]
    assert "gpu_summary.py" in lines[2]
    helped = check("--help")
    assert helped.returncode == 0 and "--dry-run  print the commands" in helped.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "unknown option '--bogus'; valid: --out DIR, --pes \"A B\", --steps N, --jobs N, --skip PARTS, "
                  "--dry-run, --help"),
    (["--jobs", "x"], "--jobs needs an integer >= 1, got 'x'"),
    (["--pes", "nope sinus"], "unknown PE 'sinus' in --pes; valid: " + " ".join(PES)),
    (["--skip", "tests,eval"], "unknown part 'eval' in --skip; valid: tests, train, bench"),
    (["--steps", "0"], "--steps needs an integer >= 1, got '0'"),
    (["--steps"], "--steps needs an integer >= 1, got ''"),
    (["--out"], "--out needs a folder"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    proc = check(*args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"gpu_check.sh: {message}"
    assert proc.stdout == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU: the check would run")
def test_refuses_to_run_without_a_gpu(tmp_path):
    proc = check("--out", str(tmp_path / "out"))
    assert proc.returncode == 3
    assert "torch sees no CUDA GPU here" in proc.stderr and "--dry-run" in proc.stderr
    assert not (tmp_path / "out").exists()


def fake_output(out: Path, *, train_exit: int = 0, failures: int = 0, bench: dict | None = None) -> None:
    """What gpu_check.sh leaves: status lines, a JUnit report, two finished runs and bench.json."""
    out.mkdir(parents=True)
    (out / "status.tsv").write_text("tests\tgpu\t0\t95.2\n" f"train\tnope\t{train_exit}\t31.0\ntrain\tt5\t0\t33.5\n"
                                    "bench\tpaper\t0\t80.1\n")
    (out / "pytest.xml").write_text(
        f'<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="10" failures="{failures}" '
        'errors="0" skipped="1"/></testsuites>')
    for pe, em in (("nope", 0.5), ("t5", 1.0)):
        run = out / "runs" / "gpu_check" / "copy" / pe / "cfg-x" / "seed1"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump({"pe": {"name": pe}}))
        (run / "meta.yaml").write_text(yaml.safe_dump({"timing": {"train_seconds": 20.5, "eval_seconds": 3.0}}))
        (run / "progress.json").write_text(json.dumps({"step": 200, "max_steps": 200}))
        if not (pe == "nope" and train_exit):
            pd.DataFrame({"eval_length": [4, 8, 16], "train_max": 8, "in_range": [True, True, False], "n": 10,
                          "exact_match": [em, em, 0.0]}).to_parquet(run / "results.parquet")
    bench = bench or {
        "device": "NVIDIA H100", "precision": "bf16-mixed", "rows": 64, "length": 512, "peak_tflops": 700.0,
        "peak_what": "bf16 8192^3 matmul",
        "pes": {"nope": {"lengen_step_s": 0.1, "bare_step_s": 0.095, "vs_bare": 0.95, "tok_s": 3e5,
                         "of_peak": 0.55, "step_vs_nope": 1.0, "peak_memory_gib": 20.0},
                "t5": {"lengen_step_s": 0.14, "bare_step_s": 0.12, "vs_bare": 0.86, "tok_s": 2e5,
                       "of_peak": 0.4, "step_vs_nope": 1.4, "peak_memory_gib": 22.5}}}
    (out / "bench-paper.json").write_text(json.dumps(bench))


def rows_of(table: str) -> dict[tuple[str, str], list[str]]:
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {(c[0], c[1]): c[2:] for c in cells}


def test_summary_table_reads_every_part_and_judges_the_targets(tmp_path, capsys):
    summary = load("gpu_summary")
    fake_output(tmp_path / "out")
    assert summary.main([str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "out" / "summary.md").read_text().strip() == printed.strip()
    rows = rows_of(printed)
    assert rows[("tests", "gpu")] == ["ok", "9 passed, 0 failed, 1 skipped; 95 s"]
    assert rows[("train", "nope")][0] == "ok" and "in-range EM 0.50, beyond 0.00" in rows[("train", "nope")][1]
    assert "200 steps, train 20.5 s, eval 3.0 s" in rows[("train", "t5")][1]
    assert rows[("bench", "paper")][0] == "ok" and "NVIDIA H100, bf16-mixed" in rows[("bench", "paper")][1]
    assert "lengen 140.0 ms/step, bare 120.0 (x0.86)" in rows[("bench paper", "t5")][1]
    assert "peak mem 22.5 GiB" in rows[("bench paper", "t5")][1]
    assert rows[("target (paper)", "lengen train >= 0.9x bare loop")] == ["MISSED", "lowest 0.86 (t5)"]
    assert rows[("target (paper)", ">= 0.5 of bf16 8192^3 matmul peak (nope, L=512)")] == ["met", "0.55 of 700 TFLOP/s"]
    assert rows[("target (paper)", "t5 step <= 1.3x nope's (packed)")] == ["MISSED", "t5 1.40"]
    assert rows[("total", "4 steps")][0] == "ok"  # missed targets are reported, not failures


@pytest.mark.parametrize("broken", ["train", "tests"])
def test_summary_fails_when_a_part_failed(tmp_path, capsys, broken):
    summary = load("gpu_summary")
    fake_output(tmp_path / "out", train_exit=124 if broken == "train" else 0, failures=int(broken == "tests"))
    assert summary.main([str(tmp_path / "out")]) == 1
    rows = rows_of(capsys.readouterr().out)
    if broken == "train":
        assert rows[("train", "nope")][0] == "TIMEOUT" and "in-range EM n/a" in rows[("train", "nope")][1]
    else:
        assert rows[("tests", "gpu")][0] == "FAILED"
    assert rows[("total", "4 steps")][0] == "FAILED"


def test_summary_of_a_missing_folder_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_summary.py"), str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr.strip().splitlines()[-1]


def test_bench_gpu_runs_on_the_cpu_and_feeds_the_summary(tmp_path):
    """Tiny model, 2 PEs, one timed step each: every number finite and positive, ratios consistent."""
    bench = load("bench_gpu").main(["--device", "cpu", "--model", "tiny", "--length", "32", "--rows", "3",
                                    "--steps", "1", "--warmup", "1", "--pes", "nope", "alibi",
                                    "--out", str(tmp_path / "bench.json")])
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(json.dumps(bench))
    assert bench["device_type"] == "cpu" and bench["precision"] == "32-true" and bench["peak_tflops"] > 0
    assert 0 < bench["tokens_per_step"] <= bench["positions_per_step"] == 3 * 32
    for pe, r in bench["pes"].items():
        for key in ("lengen_step_s", "bare_step_s", "vs_bare", "tok_s", "of_peak", "step_vs_nope"):
            assert math.isfinite(r[key]) and r[key] > 0, (pe, key)
        assert r["vs_bare"] == pytest.approx(r["bare_step_s"] / r["lengen_step_s"])
        assert r["peak_memory_gib"] is None  # CPU: not measured
    assert bench["pes"]["nope"]["step_vs_nope"] == 1.0
    targets = load("gpu_summary").target_rows(bench)
    assert [t[1] for t in targets] == ["lengen train >= 0.9x bare loop",
                                       ">= 0.5 of fp32 2048^3 matmul peak (nope, L=32)",
                                       "alibi step <= 1.3x nope's (packed)"]


FAKE_PYTHON = """#!{python}
# Stands in for python in gpu_check.sh: pretends to have a GPU and fakes each part in a moment.
import json, os, subprocess, sys, time
from pathlib import Path
args = sys.argv[1:]
real = {python!r}
log = Path(os.environ["FAKE_LOG"])
with log.open("a") as f:
    f.write(f"{{time.monotonic():.3f}} start {{' '.join(args)[:60]}}\\n")
if args[:1] == ["-c"] and "torch.cuda.is_available" in args[1]:
    sys.exit(0)  # "a GPU"
if args[:2] == ["-m", "pytest"]:
    xml = next(a.split("=", 1)[1] for a in args if a.startswith("--junitxml="))
    Path(xml).write_text('<testsuite tests="3" failures="0" errors="0" skipped="0"/>')
    sys.exit(0)
if args[:3] == ["-m", "lengen.cli", "train"]:
    kv = dict(a.split("=", 1) for a in args[3:] if "=" in a)
    pe = kv["+pe"]
    time.sleep(float(os.environ.get("FAKE_SLEEP_" + pe, "0.5")))
    run = Path(kv["runs_root"]) / "gpu_check" / "copy" / pe / "cfg" / "seed1"
    run.mkdir(parents=True)
    code = ("import pandas as pd, sys; pd.DataFrame({{'eval_length': [2, 9], 'train_max': 5, 'in_range': [True, False],"
            " 'n': 4, 'exact_match': [1.0, 0.25]}}).to_parquet(sys.argv[1])")
    subprocess.run([real, "-c", code, str(run / "results.parquet")], check=True)
    (run / "config.yaml").write_text(f"pe: {{{{name: {{pe}}}}}}\\n")
    (run / "progress.json").write_text(json.dumps({{"step": int(kv["trainer.max_steps"]), "max_steps": 1}}))
    with log.open("a") as f:
        f.write(f"{{time.monotonic():.3f}} end {{pe}}\\n")
    sys.exit(0)
if args[:1] == ["scripts/bench_gpu.py"]:
    out = Path(args[args.index("--out") + 1])
    pes = args[args.index("--pes") + 1:args.index("--steps")]
    pes = [p for p in pes if not p.startswith("--") and p != "0"]
    r = {{"lengen_step_s": 0.1, "bare_step_s": 0.095, "vs_bare": 0.95, "tok_s": 1e5, "of_peak": 0.6,
          "step_vs_nope": 1.0, "peak_memory_gib": 3.0}}
    out.write_text(json.dumps({{"device": "fake", "model_cfg": {{"dropout": 0.0 if "--dropout" in args else 0.1}},
                                "peak_tflops": 100, "length": 512, "pes": {{p: r for p in pes}}}}))
    sys.exit(0)
os.execv(real, [real, *args])  # the PE list and the summary: for real
"""


def test_the_check_runs_every_part_with_a_fake_gpu(tmp_path):
    """The orchestration itself, with a stand-in for python: the first run alone, then --jobs at a time;
    a run over its time limit is a TIMEOUT and does not stop the others; the summary's exit status."""
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {**os.environ, "PYTHON": str(fake), "FAKE_LOG": str(log), "TRAIN_TIMEOUT": "3", "FAKE_SLEEP_rope": "30"}
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), "--out", str(out), "--pes", "nope t5 alibi rope ape", "--jobs", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # rope timed out
    rows = rows_of(proc.stdout[proc.stdout.index("| part |"):])
    assert rows[("tests", "gpu")][0] == "ok"
    assert rows[("train", "rope")][0] == "TIMEOUT"
    assert [rows[("train", pe)][0] for pe in ("nope", "t5", "alibi", "ape")] == ["ok"] * 4
    assert rows[("bench", "paper")][0] == rows[("bench", "dropout0")][0] == "ok"
    assert "(dropout 0.0)" in rows[("bench", "dropout0")][1]
    assert set(json.loads((out / "bench-dropout0.json").read_text())["pes"]) == {"nope", "t5", "alibi"}
    status = (out / "status.tsv").read_text().splitlines()
    assert sorted(line.split("\t")[1] for line in status if line.startswith("train")) == sorted(
        ["nope", "t5", "alibi", "rope", "ape"])
    events = [line.split(maxsplit=2) for line in log.read_text().splitlines()]
    starts = {e[2].split("+pe=")[1].split()[0]: float(e[0]) for e in events if "lengen.cli train" in e[2]}
    ends = {e[2]: float(e[0]) for e in events if e[1] == "end"}
    assert all(starts[pe] >= ends["nope"] for pe in ("t5", "alibi", "rope", "ape"))  # the first one alone
    assert starts["alibi"] < ends["t5"]  # then two at a time
    assert (out / "summary.md").exists() and (out / "logs" / "train-rope.log").exists()
