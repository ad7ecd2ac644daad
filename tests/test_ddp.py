"""Data-parallel training for real: ``lengen train trainer.accelerator=cpu trainer.devices=2`` runs
Lightning's DDP over two processes (gloo), is killed mid-training and rerun, and is compared with a
single-process run of the same config:

(a) its result rows have the single-process run's shape, identity columns and sane values;
(b) the two ranks trained on disjoint examples whose union, step by step, is exactly the
    single-process batch (none twice, none skipped; across the kill too);
(c) exactly one set of run files is written (rank 1 adds only its own log);
(d) the killed run resumes from ``last.ckpt`` on both ranks and finishes.

Which examples each process trains on is recorded by a ``sitecustomize`` module put on the child
processes' ``PYTHONPATH``: it wraps ``TrainBatches.step_indices`` in every process, including the
rank that Lightning re-executes, without any hook in lengen itself.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pandas as pd
import pytest

from lengen.progress import read_progress
from tests.conftest import run_lengen, spawn_lengen, tiny_overrides, wait_for_progress

MAX_STEPS = 100
CUT_AT = 3
STEPS = {"trainer.max_steps": MAX_STEPS, "trainer.val_every": 25, "data.n_train": 1200, "trainer.accelerator": "cpu"}

TRACER = '''
import importlib.util, json, os, sys

# Another sitecustomize further down the path (scripts/mutation_check.py maps lengen with one) runs first.
_here = os.path.dirname(os.path.abspath(__file__))
for _d in sys.path:
    _f = os.path.join(_d or ".", "sitecustomize.py")
    if os.path.abspath(_d or ".") != _here and os.path.isfile(_f):
        _spec = importlib.util.spec_from_file_location("_next_sitecustomize", _f)
        _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
        break

from lengen.data import batching

_real = batching.TrainBatches.step_indices


def _traced(self, step, rank=0, world_size=1):
    idx = _real(self, step, rank, world_size)
    with open(os.path.join(os.environ["LENGEN_TEST_TRACE"], f"rank{rank}-of{world_size}.jsonl"), "a") as f:
        f.write(json.dumps([int(step), sorted(int(i) for i in idx)]) + "\\n")
    return idx


batching.TrainBatches.step_indices = _traced
'''


def overrides(root: Path, cache: Path, devices: int) -> list[str]:
    return ["train", "+pe=t5", *tiny_overrides(root, **STEPS, **{"data.cache_dir": cache, "trainer.devices": devices})]


def traced_steps(trace_dir: Path, rank: int, world: int) -> dict[int, frozenset[int]]:
    """step -> examples of ``rank``; a step read twice (prefetched before a kill, then resumed) must agree."""
    steps: dict[int, frozenset[int]] = {}
    for line in (trace_dir / f"rank{rank}-of{world}.jsonl").read_text().splitlines():
        step, idx = json.loads(line)
        assert steps.setdefault(step, frozenset(idx)) == frozenset(idx), f"step {step} changed on resume"
    return {s: v for s, v in steps.items() if s < MAX_STEPS}  # the loader may prefetch one batch past the end


def run_dir(root: Path) -> Path:
    (path,) = [p for p in (root / "runs").rglob("config.yaml")]
    return path.parent


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root / "runs")) for p in (root / "runs").rglob("*") if p.is_file()}


@pytest.fixture
def traced(tmp_path, monkeypatch):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(TRACER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
    return tmp_path


def test_two_process_ddp_shards_the_stream_writes_once_and_resumes(traced):
    cache = traced / "cache"
    (traced / "trace1").mkdir()
    single = run_lengen(*overrides(traced / "single", cache, 1), env={"LENGEN_TEST_TRACE": str(traced / "trace1")})
    assert single.returncode == 0, single.stderr[-3000:]

    ddp_root, trace2 = traced / "ddp", traced / "trace2"
    trace2.mkdir()
    args = overrides(ddp_root, cache, 2)
    os.environ["LENGEN_TEST_TRACE"] = str(trace2)  # (restored after the test by conftest's autouse fixture)
    proc = spawn_lengen(*args)
    wait_for_progress(proc, lambda: next((ddp_root / "runs").rglob("progress.json"), None), CUT_AT)
    proc.send_signal(signal.SIGTERM)  # to rank 0 only: the ranks must agree to stop together
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, out[-4000:]
    assert "Rerun the same command to resume" in out
    stopped = int(re.search(r"interrupted by \w+ at step (\d+)", out).group(1))
    assert CUT_AT <= stopped < MAX_STEPS, out[-4000:]
    assert not list((ddp_root / "runs").rglob("results.parquet"))

    again = run_lengen(*args)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "resuming from" in again.stdout
    assert again.stdout.count("resuming from") == 1  # printed by rank 0 only
    assert again.stdout.count("in-range exact match") == 1  # only rank 0 evaluates, writes rows, prints the table
    end = read_progress(run_dir(ddp_root))  # rank 0's record: the resumed run's second session
    assert (end["step"], end["max_steps"], end["sessions"]) == (MAX_STEPS, MAX_STEPS, 2)

    # (a) the rows: same shape and identity columns as one process, sane values
    one = pd.read_parquet(run_dir(traced / "single") / "results.parquet")
    two = pd.read_parquet(run_dir(ddp_root) / "results.parquet")
    assert list(two.columns) == list(one.columns) and two.shape == one.shape
    for col in ("run_id", "task", "pe", "seed", "train_min", "train_max", "eval_length", "in_range", "n"):
        assert two[col].tolist() == one[col].tolist(), col
    for col in ("exact_match", "token_accuracy"):
        assert two[col].between(0, 1).all(), col
    assert two["loss"].gt(0).all() and two["loss"].lt(10).all()  # finite, and a trained model's scale

    # (b) disjoint shards whose union is the single-process batch, at every step, across the kill
    reference = traced_steps(traced / "trace1", 0, 1)
    rank0, rank1 = traced_steps(trace2, 0, 2), traced_steps(trace2, 1, 2)
    assert set(reference) == set(rank0) == set(rank1) == set(range(MAX_STEPS))
    for step in range(MAX_STEPS):
        assert not rank0[step] & rank1[step], step
        assert rank0[step] | rank1[step] == reference[step], step
        assert abs(len(rank0[step]) - len(rank1[step])) <= 1

    # (c) one set of files: the single-process run's, plus rank 1's own log, nothing anywhere else
    one_files, two_files = files(traced / "single"), files(ddp_root)
    rel = str(run_dir(ddp_root).relative_to(ddp_root / "runs"))
    assert two_files - one_files == {f"{rel}/train_ddp_process_1.log"}, two_files ^ one_files
    assert one_files - two_files == set()
    assert sorted(p.name for p in (run_dir(ddp_root) / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
