"""Training throughput at the paper shape on a GPU: the ``lengen train`` path against a bare loop.

    python scripts/bench_gpu.py [--pes nope t5 ...] [--length 512] [--rows 64] [--steps 20] [--warmup 3]
                                [--model paper] [--dropout X] [--device auto|cuda|cpu] [--out bench.json]

For every PE, two subjects train the model ``conf/model/<model>.yaml`` builds on the same synthetic
*packed* batch (``--rows`` rows of ``--length`` positions, each filled with examples of 8 to
``length / 4`` tokens, positions from 0 and a segment id per example, the rest padding -- what
``TrainBatches`` yields with packing on):

- **lengen**: ``LengenModule`` in a Lightning ``Trainer`` set up as ``lengen train`` sets it up
  (precision, gradient clipping 1.0, deterministic mode as :func:`lengen.trainer.deterministic_mode`
  chooses it), without logger, progress bar or checkpoints;
- **bare**: the same model in a bare PyTorch loop (autocast, cross-entropy, backward,
  ``clip_grad_norm_(1.0)``, AdamW).

Step time = wall time of ``--steps`` steps after ``--warmup`` (the device synchronized at both ends)
divided by the steps. FLOPs per token are ``6 * N + 6 * n_layers * L * d_model`` (``N``
non-embedding parameters; dense causal attention, the usual MFU convention -- packed rows do less
attention work than that). The peak is the best bf16 ``8192^3`` matmul on the GPU measured in the
same run (fp32 ``2048^3`` on a CPU). Peak memory is ``torch.cuda.max_memory_allocated`` per subject.
Results go to ``--out`` as JSON (``scripts/gpu_summary.py`` tabulates them with the issue's targets).
On a CPU, ``--model tiny --length 32 --rows 4`` checks that the script runs (``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_common as C
import numpy as np
import torch

IGNORE = -100


def all_pes() -> list[str]:
    import lengen.conf

    return sorted(p.stem for p in (Path(lengen.conf.__file__).parent / "pe").glob("*.yaml"))


def packed_batch(rows: int, width: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Rows of ``width`` positions packed with examples of 8 to ``width // 4`` tokens (at least 4)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (rows, width))
    labels = np.full((rows, width), IGNORE)
    pos = np.zeros((rows, width), dtype=np.int64)
    seg = np.full((rows, width), -1, dtype=np.int64)
    hi = max(5, width // 4)
    for r in range(rows):
        off = slot = 0
        while True:
            n = int(rng.integers(min(8, hi - 1), hi))
            if off + n > width:
                break
            pos[r, off : off + n], seg[r, off : off + n] = np.arange(n), slot
            labels[r, off : off + n] = rng.integers(1, vocab, n)
            off, slot = off + n, slot + 1
    t = {"input_ids": ids, "labels": labels, "pos": pos, "segments": seg}
    return {k: torch.from_numpy(np.ascontiguousarray(v)).long() for k, v in t.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def matmul_peak_tflops(device: torch.device) -> tuple[float, str]:
    """Best TFLOP/s of one large matmul: bf16 8192^3 on CUDA, fp32 2048^3 on a CPU."""
    if device.type != "cuda":
        return C.matmul_peak() / 1e3, "fp32 2048^3 matmul"
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(10):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12, "bf16 8192^3 matmul"


class Clock:
    """Lightning callback: wall time from the start of step ``warmup`` to the end of training."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        import lightning as L

        clock = self

        class _CB(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                if trainer.global_step == clock.warmup:
                    sync(clock.device)
                    clock.t0 = time.perf_counter()

            def on_train_end(self, trainer, pl_module) -> None:
                sync(clock.device)
                clock.t1 = time.perf_counter()

        self.warmup, self.device, self.t0, self.t1 = warmup, device, 0.0, 0.0
        self.callback = _CB()


def lengen_step(model_cfg, pe_cfg, vocab, batch, args, device) -> float:
    import lightning as L
    from omegaconf import OmegaConf

    from lengen.trainer import deterministic_mode
    from lengen.training import LengenModule

    trainer_cfg = C.conf_yaml("trainer", "cpu")
    torch.manual_seed(0)
    module = LengenModule(model_cfg, pe_cfg, vocab, C.optim_cfg(), seed=0)
    clock = Clock(args.warmup, device)
    mode = deterministic_mode(OmegaConf.create({"deterministic": trainer_cfg["deterministic"],
                                                "accelerator": device.type}))
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision=args.precision, max_steps=args.warmup + args.steps,
        max_epochs=-1, num_sanity_val_steps=0, limit_val_batches=0,
        gradient_clip_val=float(trainer_cfg["gradient_clip"]) or None, logger=False, callbacks=[clock.callback],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, deterministic=mode,
        log_every_n_steps=50, default_root_dir=args.tmp,
    )
    loader = torch.utils.data.DataLoader(C.RepeatBatch(batch), batch_size=None)
    trainer.fit(module, loader)
    return (clock.t1 - clock.t0) / args.steps


def bare_step(model_cfg, pe_cfg, vocab, batch, args, device) -> tuple[float, int]:
    import torch.nn.functional as F

    from lengen.model.build import build_model

    torch.manual_seed(0)
    model = build_model(model_cfg, pe_cfg, vocab).to(device).train()
    o = C.optim_cfg()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=o["lr"], betas=tuple(o["betas"]))
    b = {k: v.to(device) for k, v in batch.items()}
    bf16 = "bf16" in args.precision

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(b["input_ids"], pos=b["pos"], segments=b["segments"])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), b["labels"].flatten(), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(args.warmup):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    return (time.perf_counter() - t) / args.steps, C.non_embedding_params(model)


def run(args) -> dict:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          (args.device if args.device != "auto" else "cpu"))
    model_cfg = C.conf_yaml("model", args.model)
    if args.dropout is not None:
        model_cfg["dropout"] = args.dropout
    batch = packed_batch(args.rows, args.length, args.vocab)
    tokens = int((batch["segments"] >= 0).sum())  # positions that hold an example
    peak, peak_what = matmul_peak_tflops(device)
    out: dict = {"device": C.hardware()["label"], "device_type": device.type, "precision": args.precision,
                 "peak_tflops": peak, "peak_what": peak_what, "model": args.model, "model_cfg": model_cfg,
                 "length": args.length, "rows": args.rows, "tokens_per_step": tokens,
                 "positions_per_step": args.rows * args.length, "steps": args.steps, "pes": {}}
    for pe in args.pes:
        pe_cfg = C.pe_cfg(pe, args.length)
        reset_memory(device)
        full = lengen_step(model_cfg, pe_cfg, args.vocab, batch, args, device)
        lengen_mem = peak_memory_gib(device)
        reset_memory(device)
        bare, n_params = bare_step(model_cfg, pe_cfg, args.vocab, batch, args, device)
        flops = C.train_flops_per_token(n_params, int(model_cfg["n_layers"]), int(model_cfg["d_model"]), args.length)
        positions = args.rows * args.length
        out["pes"][pe] = {"lengen_step_s": full, "bare_step_s": bare, "vs_bare": bare / full,
                          "tok_s": tokens / full, "positions_s": positions / full,
                          "of_peak": flops * positions / full / (peak * 1e12),
                          "peak_memory_gib": lengen_mem, "bare_peak_memory_gib": peak_memory_gib(device)}
        print(f"{pe:12s} lengen {full * 1e3:8.1f} ms  bare {bare * 1e3:8.1f} ms  x{bare / full:.2f}", flush=True)
    nope = out["pes"].get("nope")
    for r in out["pes"].values():
        r["step_vs_nope"] = r["lengen_step_s"] / nope["lengen_step_s"] if nope else None
    return out


def main(argv: list[str] | None = None) -> dict:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pes", nargs="+", default=None, help="default: every conf/pe option")
    parser.add_argument("--length", type=int, default=512, help="positions per packed row (paper shape: 512)")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--model", default="paper", help="a conf/model option")
    parser.add_argument("--dropout", type=float, default=None, help="override model.dropout (0 = FlexAttention on CUDA)")
    parser.add_argument("--precision", default=None, help="default: bf16-mixed on CUDA, 32-true on a CPU")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--vocab", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.length < 8 or args.rows < 1:
        parser.error("need --steps >= 1, --warmup >= 1, --length >= 8 and --rows >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA GPU")
    args.pes = args.pes or all_pes()
    on_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.precision = args.precision or ("bf16-mixed" if on_cuda else "32-true")
    C.quiet_lightning()
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        t0 = time.perf_counter()
        out = run(args)
        out["seconds"] = time.perf_counter() - t0
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
