"""Shared fixtures: every run goes to a temporary runs root and data cache, with tiny models, and
no test leaks global state (torch determinism and threads, RNGs, ``os.environ``) into the next.

Learning tests (a test that asserts a trained model reaches some accuracy) must hold on every
processor: floating-point results differ between CPUs (AVX2 vs AVX-512/AMX kernels, thread
counts), and a tiny model's training trajectory amplifies those differences the way a different
seed does. So, for every such assertion:

1. measure the asserted value over at least 4 seeds (temporarily parametrize ``seed=``);
2. choose steps/threshold so the *weakest* seed clears the threshold by a wide margin (at least
   ~0.15 of exact match, or train until every seed saturates) -- never a margin decided by rounding;
3. keep the threshold far above an untrained model / trivial strategy (measure that too), so the
   test still proves learning;
4. write the per-seed values, the untrained baseline and the margin in a comment next to the
   assertion (with the date and processor), so the next person can tell a regression from noise.

Runs made with :func:`tiny_overrides` use one torch thread, so the measured values do not depend on
the machine's core count either.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@contextmanager
def global_state_restored() -> Iterator[None]:
    """On exit, restore what an in-process run (``lengen_main``) or a benchmark may change globally:
    torch's deterministic-algorithms mode (and warn_only), cuDNN flags, thread count, default dtype,
    float32 matmul precision, the python / numpy / torch (and initialised CUDA) RNGs, the
    SIGINT/SIGTERM handlers and ``os.environ``. Cheap (well under a millisecond)."""
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    threads, dtype, matmul = torch.get_num_threads(), torch.get_default_dtype(), torch.get_float32_matmul_precision()
    rngs = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    environ = dict(os.environ)
    try:
        yield
    finally:
        now = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
        if now != deterministic:  # (only when changed: the first call imports half of torch._dynamo)
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if torch.get_default_dtype() != dtype:
            torch.set_default_dtype(dtype)
        if torch.get_float32_matmul_precision() != matmul:
            torch.set_float32_matmul_precision(matmul)
        random.setstate(rngs[0])
        np.random.set_state(rngs[1])
        torch.set_rng_state(rngs[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        for key, value in environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


@pytest.fixture(autouse=True)
def _no_leaked_global_state() -> Iterator[None]:
    """Every test starts from the global state the previous one found (module-scoped fixtures that
    run lengen in-process wrap themselves in :func:`global_state_restored` too)."""
    with global_state_restored():
        yield


def tiny_overrides(root: Path, **extra: object) -> list[str]:
    """Overrides for a run that trains in seconds on a CPU: one torch thread (a tiny model gains nothing
    from more, a shared machine loses up to 6x to OpenMP oversubscription, and the float path then does
    not depend on the core count)."""
    base = {
        "trainer.threads": 1,
        "runs_root": str(root / "runs"),
        "data.cache_dir": str(root / "cache"),
        "logger": "none",
        "trainer.enable_progress_bar": "false",
        "model.d_model": 32,
        "model.n_heads": 2,
        "model.n_layers": 2,
        "model.d_ff": 64,
        "trainer.max_steps": 30,
        "trainer.val_every": 15,
        "trainer.batch_size": 16,
        "data.n_train": 400,
        "data.n_val_per_length": 4,
        "eval.n_per_length": 4,
        "task.train_min": 2,
        "task.train_max": 6,
        "task.eval_max": 10,
    }
    base.update({k: v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture
def lengen_main(monkeypatch):
    """Call ``lengen`` in-process; returns (exit status, stderr text)."""
    from lengen import cli

    def run(*args: str, capsys=None) -> int:
        monkeypatch.setattr(sys, "argv", ["lengen", *args])
        try:
            return cli.main(list(args))
        except SystemExit as e:
            return int(e.code or 0)

    return run


def spawn_lengen(*args: str) -> subprocess.Popen:
    """``lengen ARGS`` as a real child process (for signals and kills), output merged and unbuffered."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "lengen.cli", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_progress(proc: subprocess.Popen, progress: Path | Callable[[], Path | None], min_step: int,
                      timeout: float = 300.0) -> dict:
    """Block until ``progress.json`` (a path, or a callable finding it; ``lengen.progress``) reports
    ``step >= min_step`` while ``proc`` still runs, and return that record. A signal sent now lands
    mid-training as long as ``max_steps`` leaves many steps to go (callers assert it). Fails (and kills
    ``proc``) if it exits first or ``timeout`` passes."""
    from lengen.progress import read_progress

    deadline = time.monotonic() + timeout
    while True:
        path = progress() if callable(progress) else progress
        record = read_progress(path) if path is not None else None
        if record is not None and record["step"] >= min_step:
            return record
        if proc.poll() is not None:
            pytest.fail(f"lengen exited ({proc.returncode}) before step {min_step}:\n{proc.stdout.read()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no progress.json with step >= {min_step} after {timeout:.0f}s (last: {record})")
        time.sleep(0.02)


def run_lengen(*args: str, env: dict | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    """``lengen ARGS`` as a child process, to completion (stdout and stderr captured)."""
    return subprocess.run([sys.executable, "-m", "lengen.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, exactly one ``lengen: error:`` line holding every needle."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lengen: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """A finished tiny ``+pe=nope`` run and the train arguments that made it (shared by a module)."""
    from lengen.results import RESULTS_FILE

    root = tmp_path_factory.mktemp("finished")
    args = ["train", "+pe=nope", *tiny_overrides(root)]
    proc = run_lengen(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p.parent for p in (root / "runs").rglob(RESULTS_FILE)]
    return run, args


@pytest.fixture
def run_copy(finished_run, tmp_path) -> tuple[Path, list[str]]:
    """A private copy of :func:`finished_run` under its own runs root (each test damages its own)."""
    import shutil

    run, args = finished_run
    runs_root = tmp_path / "runs"
    target = runs_root / run.relative_to(run.parents[4])
    shutil.copytree(run, target)
    return target, [a if not a.startswith("runs_root=") else f"runs_root={runs_root}" for a in args]
