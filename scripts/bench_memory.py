"""Peak memory of one evaluation forward pass (batch 1) at long lengths, for every PE.

    python scripts/bench_memory.py [--lengths 2048 4096 8192 16384] [--pes nope t5 ...] [--threads 2]

Each (PE, length) runs in a fresh subprocess: on CPU the figure is the process RSS high-water mark
after the forward minus the RSS just before it (model and inputs already built). On Linux that is
``VmHWM`` of ``/proc/self/status``, reset to the current RSS just before the forward (``clear_refs``);
not ``ru_maxrss``, which a child inherits from the process that forked it (a benchmark started from
a 500 MB pytest process would report 500 MB at every length). Elsewhere ``ru_maxrss``;
on CUDA it is ``torch.cuda.max_memory_allocated`` minus the allocation before the forward. The model
is the benchmark shape (4 layers, d_model 256, 4 heads, d_ff 1024) in eval mode under
``torch.inference_mode``. Target (issue 5): attention-bias PEs within 1.5x of nope at 16k tokens;
the learned-function biases of issue 11 (fire, kerple) and CoPE's contextual bias within 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_common as C

TARGET = 1.5
#: issue 11's own target for its learned-function biases
TARGETS = {"fire": 2.0, "kerple": 2.0, "cope": 2.0}
#: the benchmark's PEs (those of the other benchmarks) and the later bias and rotary families
PES = (*C.PES, "fire", "kerple", "xpos", "rope_alibi", "cope", "abacus")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> None:
    """Reset this process's ``VmHWM`` to its current RSS (Linux >= 4.0; a no-op elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_bytes() -> int:
    """``VmHWM`` (this process's own peak since the last reset), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def measure_one(pe: str, length: int, vocab: int, threads: int, device: str) -> dict:
    """Runs inside the child process: build, forward once, report the peak above the baseline."""
    import torch

    from lengen.model.build import build_model

    C.set_threads(threads)
    torch.manual_seed(0)
    model = build_model(C.BENCH_MODEL, C.pe_cfg(pe, length), vocab).to(device).eval()
    ids = torch.randint(0, vocab, (1, length), device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        _reset_peak_rss()
        before = _rss_bytes()
    t = time.perf_counter()
    with torch.inference_mode():
        logits = model(ids)
    seconds = time.perf_counter() - t
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _peak_rss_bytes() - before
    assert torch.isfinite(logits).all()
    return {"pe": pe, "length": length, "peak_mb": max(peak, 0) / 2**20, "seconds": seconds}


def run_child(pe: str, length: int, vocab: int, threads: int, device: str) -> dict:
    cmd = [sys.executable, __file__, "--child", pe, str(length), str(vocab), str(threads), device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 4096, 8192, 16384])
    parser.add_argument("--pes", nargs="+", default=list(PES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=20)
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        pe, length, vocab, threads, device = args.child
        print(json.dumps(measure_one(pe, int(length), int(vocab), int(threads), device)))
        return {}

    import torch
    from rich.console import Console
    from rich.table import Table

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    C.set_threads(args.threads)
    results: dict[tuple[str, int], dict] = {}
    for length in args.lengths:
        for pe in args.pes:
            results[pe, length] = run_child(pe, length, args.vocab, args.threads, device)
    console = Console(width=max(Console().width, 110))
    metric = "max_memory_allocated" if device == "cuda" else "RSS high-water mark"
    table = Table(title=f"peak memory of one eval forward, batch 1, {device} ({metric} above baseline, MiB)")
    table.add_column("PE")
    for length in args.lengths:
        table.add_column(f"{length:,} tok", justify="right")
    table.add_column(f"x nope @ {max(args.lengths):,}", justify="right")
    table.add_column("forward s @ max", justify="right")
    longest = max(args.lengths)
    nope = results.get(("nope", longest))
    for pe in args.pes:
        ratio = ""
        if nope and nope["peak_mb"] > 0:
            r = results[pe, longest]["peak_mb"] / nope["peak_mb"]
            target = TARGETS.get(pe, TARGET)
            ratio = f"{r:.2f}" + ("" if r <= target else f" (> {target})")
        table.add_row(pe, *(f"{results[pe, n]['peak_mb']:.0f}" for n in args.lengths), ratio,
                      f"{results[pe, longest]['seconds']:.2f}")
    console.print(table)
    console.print(f"{C.machine_line()}; model {C.BENCH_MODEL}")
    return {"hardware": C.hardware()["label"], "device": device, **{f"{pe}@{n}": r for (pe, n), r in results.items()}}


if __name__ == "__main__":
    main()
