"""Training throughput of the model as ``lengen train`` builds it, against two references.

    python scripts/bench_train.py [--lengths 64 256] [--batch 64] [--pes nope ape ...] [--repeats 2]
                                  [--steps 1] [--threads 2] [--bf16 auto|on|off] [--no-real]

Subjects, measured side by side in one process and alternated round by round (the table shows
medians over every timed step, so a busy machine slows all of them alike):

- **lengen**: ``LengenModule`` (``build_model`` from the PE's ``conf/pe`` defaults) trained by a
  Lightning ``Trainer`` configured as in ``lengen train`` (gradient clipping 1.0, deterministic,
  32-true) without logger, progress bar or checkpointing; one warm-up step per fit, then the wall
  time between consecutive batch starts (data fetch, forward, backward, clipping, AdamW, logging).
- **bare**: the same model in a bare PyTorch loop (forward, cross-entropy, backward,
  ``clip_grad_norm_(1.0)``, AdamW step).
- **GPT-2**: ``transformers.GPT2LMHeadModel`` (sdpa attention, ReLU MLP, no dropout) of the same
  shape in the same bare loop (needs the ``bench`` extra: ``pip install -e '.[bench]'``).

Batches are synthetic full-length rows (every position carries loss). FLOPs per token are
``6 * N + 6 * n_layers * L * d_model`` (N = non-embedding parameters; causal attention), and the
matmul peak is the best fp32 ``2048^3`` matmul measured in the same process. A second part runs
real task batches (``TaskData`` -> ``TokenStore`` -> ``TrainBatches``, the defaults of
``conf/config.yaml``): padding fraction for every task, useful (loss-carrying) tokens/s of the
lengen path on ``copy``, and the data pipeline's own samples/s against the model's consumption.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_common as C

TARGETS = {"bare": 0.9, "gpt2@64": 1.0, "gpt2@256": 1.3, "bias_step": 1.15, "peak": 0.6, "padding": 0.10}


def gpt2_factory(vocab: int, length: int):
    """A builder for a same-shape GPT-2 LM, or None when transformers is not installed."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging as hf_logging
    except ImportError:
        return None
    hf_logging.set_verbosity_error()
    m = C.BENCH_MODEL
    cfg = GPT2Config(
        vocab_size=vocab, n_positions=length, n_embd=m["d_model"], n_layer=m["n_layers"], n_head=m["n_heads"],
        n_inner=m["d_ff"], activation_function=m["activation"], resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, tie_word_embeddings=True,
    )

    def build():
        return GPT2LMHeadModel._from_config(cfg, attn_implementation="sdpa")

    return build


class BareLoop:
    """forward, cross-entropy, backward, clip_grad_norm_(1.0), AdamW (the recipe's settings)."""

    def __init__(self, model, forward, batch, optim: dict) -> None:
        import torch

        self.model, self.forward, self.batch = model.train(), forward, batch
        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": optim["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=optim["lr"], betas=tuple(optim["betas"]),
        )
        self.step()  # warm-up: optimizer state, allocator, kernels

    def step(self) -> None:
        import torch
        import torch.nn.functional as F

        logits = self.forward(self.batch["input_ids"])
        loss = F.cross_entropy(logits.flatten(0, 1), self.batch["labels"].flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()

    def times(self, steps: int) -> list[float]:
        out = []
        for _ in range(steps):
            t = time.perf_counter()
            self.step()
            out.append(time.perf_counter() - t)
        return out


def fixed_length(args, vocab: int, console) -> dict:
    import torch

    from lengen.model.build import build_model
    from lengen.training import LengenModule

    optim = C.optim_cfg()
    results: dict = {}
    peaks = [C.matmul_peak()]
    for length in args.lengths:
        batch = C.synthetic_batch(args.batch, length, vocab)
        loader = torch.utils.data.DataLoader(C.RepeatBatch(batch), batch_size=None)
        subjects: dict[str, object] = {}
        for pe in args.pes:
            torch.manual_seed(0)
            module = LengenModule(C.BENCH_MODEL, C.pe_cfg(pe, length), vocab, optim, seed=0)
            subjects[f"{pe}/lengen"] = ("fit", module, "32-true")
            if pe == "nope" and args.bf16:
                torch.manual_seed(0)
                subjects["nope/lengen-bf16"] = (
                    "fit", LengenModule(C.BENCH_MODEL, C.pe_cfg(pe, length), vocab, optim, seed=0), "bf16-mixed"
                )
            torch.manual_seed(0)
            model = build_model(C.BENCH_MODEL, C.pe_cfg(pe, length), vocab)
            subjects[f"{pe}/bare"] = ("loop", BareLoop(model, model, batch, optim))
        build_gpt2 = gpt2_factory(vocab, length) if args.gpt2 else None
        if build_gpt2 is not None:
            torch.manual_seed(0)
            gpt2 = build_gpt2()
            subjects["gpt2"] = ("loop", BareLoop(gpt2, lambda x, m=gpt2: m(x).logits, batch, optim))
        times: dict[str, list[float]] = {k: [] for k in subjects}
        for r in range(args.repeats):
            for name, subject in subjects.items():
                if subject[0] == "fit":
                    times[name] += C.fit_steps(subject[1], loader, args.steps, warmup=1, precision=subject[2])
                else:
                    times[name] += subject[1].times(args.steps)
            console.print(f"  length {length}: round {r + 1}/{args.repeats} done", style="dim")
        peaks.append(C.matmul_peak())
        n_params = C.non_embedding_params(subjects[f"{args.pes[0]}/bare"][1].model)
        flops = C.train_flops_per_token(n_params, C.BENCH_MODEL["n_layers"], C.BENCH_MODEL["d_model"], length)
        results[length] = {"times": {k: C.median(v) for k, v in times.items()}, "flops_per_token": flops,
                           "n_params": n_params}
    return {"by_length": results, "peak": max(peaks), "peaks": peaks}


def print_fixed(res: dict, args, console) -> dict:
    from rich.table import Table

    peak = res["peak"]
    table = Table(title=f"training throughput, fp32, batch {args.batch}, synthetic full-length rows "
                        f"(matmul peak {peak:.0f} GFLOP/s)")
    for col in ("PE", "length", "lengen tok/s", "bare tok/s", "lengen/bare", "GPT-2 tok/s", "lengen/GPT-2",
                "GFLOP/s", "of peak", "step / nope"):
        table.add_column(col, justify="left" if col == "PE" else "right")
    summary: dict = {}
    for length, r in res["by_length"].items():
        t = r["times"]
        tokens = args.batch * length
        gpt2 = t.get("gpt2")
        for pe in args.pes:
            full, bare = t[f"{pe}/lengen"], t[f"{pe}/bare"]
            gflops = r["flops_per_token"] * tokens / full / 1e9
            vs_gpt2 = gpt2 / full if gpt2 else None
            rel = full / t["nope/lengen"] if "nope/lengen" in t else None
            summary[f"{pe}@{length}"] = {"tok_s": tokens / full, "vs_bare": bare / full, "vs_gpt2": vs_gpt2,
                                         "gflops": gflops, "of_peak": gflops / peak, "step_vs_nope": rel}
            table.add_row(
                pe, str(length), f"{tokens / full:,.0f}", f"{tokens / bare:,.0f}", f"{bare / full:.2f}",
                f"{tokens / gpt2:,.0f}" if gpt2 else C.NA_GPT2, f"{vs_gpt2:.2f}" if gpt2 else "n/a",
                f"{gflops:.0f}", f"{gflops / peak:.2f}", f"{rel:.2f}" if rel else "",
            )
        if "nope/lengen-bf16" in t:
            bf = t["nope/lengen-bf16"]
            summary[f"bf16@{length}"] = {"tok_s": tokens / bf, "speedup": t["nope/lengen"] / bf}
            table.add_row("nope bf16-mixed", str(length), f"{tokens / bf:,.0f}", "", "", "", "", "", "",
                          f"x{t['nope/lengen'] / bf:.2f} vs fp32")
    console.print(table)
    console.print(
        "FLOPs/token = 6*N + 6*n_layers*L*d_model, N = non-embedding params "
        f"({next(iter(res['by_length'].values()))['n_params']:,}); matmul peak runs: "
        + ", ".join(f"{p:.0f}" for p in res["peaks"]) + " GFLOP/s"
    )
    return summary


# -- real task batches -----------------------------------------------------------------------------
def task_names() -> list[str]:
    import lengen.conf

    return sorted(p.stem for p in (Path(lengen.conf.__file__).parent / "task").glob("*.yaml"))


def real_split(task: str, n_train: int, cache_dir: str, seed: int = 1):
    from lengen.data.dataset import TaskData

    cfg = C.conf_yaml("task", task)
    lengths = (sorted(int(x) for x in cfg["train_lengths"]) if cfg.get("train_lengths")
               else list(range(int(cfg["train_min"]), int(cfg["train_max"]) + 1)))
    data = TaskData(cfg, seed=seed, train_lengths=lengths, test_lengths=lengths, n_train=n_train,
                    n_val_per_length=1, n_test_per_length=1, cache_dir=cache_dir)
    t = time.perf_counter()
    ds = data.split("train")
    return data, ds, time.perf_counter() - t


def real_data(args, console) -> dict:
    import numpy as np
    import torch
    from rich.table import Table

    from lengen.data.batching import IGNORE, TokenStore, TrainBatches
    from lengen.training import LengenModule

    main_cfg = C.conf_yaml("", "config")
    pack_width, bucket = int(main_cfg["data"]["pack_width"]), int(main_cfg["data"]["bucket_batches"])
    batch_size = int(C.conf_yaml("trainer", "cpu")["batch_size"])
    out: dict = {"padding": {}}
    with tempfile.TemporaryDirectory() as cache:
        table = Table(title=f"padding of real training batches (batch {batch_size}, {args.real_n:,} examples, "
                            f"first {args.pad_batches} batches)")
        for col in ("task", "lengths", "pack width", "rows/batch", "padding (packed, default)",
                    "padding (bucketed, pack_width=0)", "useful tokens", "gen+tokenise ex/s"):
            table.add_column(col, justify="left" if col == "task" else "right")
        copy_store = copy_data = None
        for task in args.tasks:
            data, ds, gen_s = real_split(task, args.real_n, cache)
            store = TokenStore(ds, data.tokenizer.pad_id)
            packed = TrainBatches(store, batch_size, bucket, seed=1, pack_width=pack_width)
            bucketed = TrainBatches(store, batch_size, bucket, seed=1, pack_width=0)
            pad_p, pad_b = packed.padding_fraction(args.pad_batches), bucketed.padding_fraction(args.pad_batches)
            rows = useful = positions = 0
            for i, b in zip(range(args.pad_batches), packed):
                rows += b["input_ids"].shape[0]
                useful += int((b["labels"] != IGNORE).sum())
                positions += b["labels"].numel()
                del i
            out["padding"][task] = {"packed": pad_p, "bucketed": pad_b}
            table.add_row(task, f"{int(store.lengths.min())}-{int(store.lengths.max())} tok", str(packed.width),
                          f"{rows / args.pad_batches:.1f}", _flag(pad_p, TARGETS["padding"]),
                          _flag(pad_b, TARGETS["padding"]), f"{useful / positions:.0%}", f"{len(ds) / gen_s:,.0f}")
            if task == "copy":
                copy_store, copy_data = store, data
        console.print(table)
        if copy_store is None:
            return out

        # the data pipeline alone: how many samples/s TrainBatches yields (pack + collate)
        stream = TrainBatches(copy_store, batch_size, bucket, seed=1, pack_width=pack_width)
        it = iter(torch.utils.data.DataLoader(stream, batch_size=None))
        next(it)
        t = time.perf_counter()
        n_batches = 50
        for _ in range(n_batches):
            next(it)
        pipe_samples = n_batches * batch_size / (time.perf_counter() - t)

        table = Table(title=f"lengen train path on real copy batches (packed, width {stream.width}, "
                            f"batch {batch_size} examples), fp32")
        for col in ("PE", "tok/s (positions)", "useful tok/s", "samples/s consumed", "pipeline samples/s",
                    "pipeline / model"):
            table.add_column(col, justify="left" if col == "PE" else "right")
        vocab = len(copy_data.tokenizer)
        useful_frac = float(np.mean([
            float((b["labels"] != IGNORE).float().mean()) for _, b in zip(range(20), iter(stream))
        ]))
        positions = float(np.mean([b["labels"].numel() for _, b in zip(range(20), iter(stream))]))
        out["real"] = {}
        for pe in args.pes:
            torch.manual_seed(0)
            module = LengenModule(C.BENCH_MODEL, C.pe_cfg(pe), vocab, C.optim_cfg(), seed=1)
            holder: dict = {}
            stream = TrainBatches(copy_store, batch_size, bucket, seed=1, pack_width=pack_width,
                                  start_step=lambda h=holder: h["trainer"].global_step if "trainer" in h else 0)
            loader = torch.utils.data.DataLoader(stream, batch_size=None)
            step = C.median(C.fit_steps(module, loader, args.real_steps, warmup=1))
            samples = batch_size / step
            out["real"][pe] = {"tok_s": positions / step, "useful_tok_s": positions * useful_frac / step,
                               "samples_s": samples, "pipeline_samples_s": pipe_samples}
            table.add_row(pe, f"{positions / step:,.0f}", f"{positions * useful_frac / step:,.0f}",
                          f"{samples:,.0f}", f"{pipe_samples:,.0f}", f"x{pipe_samples / samples:,.0f}")
        console.print(table)
    return out


def _flag(x: float, limit: float) -> str:
    return f"{x:.1%}" + ("" if x <= limit else f" (> {limit:.0%})")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pes", nargs="+", default=list(C.PES))
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds over all subjects")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per subject per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                        help="also time nope with trainer.precision=bf16-mixed (auto: on CUDA or a CPU with "
                             "native bf16 -- avx512_bf16 / amx_bf16; elsewhere bf16 is emulated, ~30x slower)")
    parser.add_argument("--no-gpt2", dest="gpt2", action="store_false", help="skip the GPT-2 reference")
    parser.add_argument("--no-real", dest="real", action="store_false", help="skip the real-data part")
    parser.add_argument("--tasks", nargs="+", default=None, help="tasks for the padding table (default: all)")
    parser.add_argument("--real-n", type=int, default=6400, help="training examples per task (real part)")
    parser.add_argument("--pad-batches", type=int, default=100)
    parser.add_argument("--real-steps", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=20)
    args = parser.parse_args(argv)
    args.tasks = args.tasks or task_names()
    hw = C.hardware()
    args.bf16, bf16_reason = C.bf16_choice(args.bf16, hw)

    from rich.console import Console

    C.quiet_lightning()
    C.set_threads(args.threads)
    console = Console(width=max(Console().width, 130))
    console.print(f"processor: {hw['label']}; bf16-mixed: {bf16_reason}")
    t0 = time.perf_counter()
    res = fixed_length(args, args.vocab, console)
    summary = {"hardware": hw["label"], "bf16": {"measured": args.bf16, "reason": bf16_reason},
               "fixed": print_fixed(res, args, console), "peak": res["peak"]}
    if args.real:
        summary.update(real_data(args, console))
    console.print(f"{C.machine_line()}; model {C.BENCH_MODEL}; total {time.perf_counter() - t0:.0f}s")
    return summary


if __name__ == "__main__":
    main()
