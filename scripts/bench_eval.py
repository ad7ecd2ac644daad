"""The length sweep: teacher-forced exact match against greedy generation with a KV cache.

    python scripts/bench_eval.py [--lengths 512 1024] [--batch 8] [--pes nope ...] [--repeats 2]
                                 [--threads 2] [--no-sweep]

Part 1, for every PE at every length L (batch ``--batch``, prompt L/2, target L/2, the benchmark
shape: 4 layers, d_model 256, 4 heads, d_ff 1024; token table drawn at std 1 so that greedy choices
are decisive): greedy generation with a KV cache produces a continuation; even rows take it as the
target, odd rows the same with one token changed. Teacher-forced scoring (``token_scores`` over one
forward pass, as ``lengen.evaluation`` does) must give the same per-example exact match as
comparing the generation with the target -- asserted. Both are timed, alternated, median of
``--repeats``; tokens/s counts the L positions of every row.

Part 2: the wall time of the default evaluation sweep of a ``copy`` run (``conf/eval/default.yaml``:
lengths 1-40 = 1-2x training, 100 examples each, batch 128, ``conf/model/tiny.yaml``) through
``lengen.evaluation.evaluate``, against that run's training time estimated as ``max_steps`` times the
median step time of the ``lengen train`` path (Lightning, real packed copy batches). Target
(issue 5): teacher-forced >= 2.5x faster than greedy at L >= 512; the sweep < 10% of training.

Part 3, with ``--extend METHOD ...`` (``lengen eval extend=METHOD``): the cost of evaluating a run
at ``--extend-ratio`` (8) times its training length ``--extend-train`` (128 positions) with each
method against ``extend=none`` (benchmark shape, PE ``--extend-pe``, batch ``--batch``,
teacher-forced forward under ``torch.inference_mode``): time = median of ``--repeats`` rounds,
subjects alternated within each round; peak memory = RSS high-water mark of one forward above the
RSS before it, each subject in fresh subprocesses (as ``bench_memory.py``, with glibc's mmap threshold
fixed so that the peak is repeatable; median of ``--extend-memory-repeats``, 3). Rotary methods use
``factor = --extend-ratio``. Target (issue 10): yarn and lm_infinite <= 1.3x none in time and memory.
``--extend-only`` skips parts 1 and 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_common as C

TARGET_SPEEDUP, TARGET_SWEEP = 2.5, 0.10


def decisive_model(pe: str, vocab: int, length: int):
    import torch

    from lengen.model.build import build_model

    torch.manual_seed(0)
    model = build_model(C.BENCH_MODEL, C.pe_cfg(pe, length), vocab).eval()
    with torch.no_grad():
        model.tok.weight.normal_(0.0, 1.0)
    return model


def teacher_vs_greedy(pe: str, length: int, batch: int, vocab: int, repeats: int) -> dict:
    import torch

    from lengen.data.batching import IGNORE
    from lengen.metrics import token_scores
    from lengen.model.generation import greedy_generate

    model = decisive_model(pe, vocab, length)
    n_prompt = length // 2
    n_target = length - n_prompt
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, vocab, (batch, n_prompt), generator=g)

    def greedy():
        return greedy_generate(model, prompt, n_target)

    gen = greedy()
    target = gen.clone()
    flip = torch.randint(0, n_target, (batch,), generator=g)
    rows = torch.arange(1, batch, 2)
    target[rows, flip[rows]] = (target[rows, flip[rows]] + 1) % vocab
    seq = torch.cat([prompt, target], dim=1)
    inputs, labels = seq[:, :-1], seq[:, 1:].clone()
    labels[:, : n_prompt - 1] = IGNORE

    @torch.no_grad()
    def teacher():
        return token_scores(model(inputs), labels)["exact"]

    tf_exact = teacher()
    greedy_exact = (gen == target).all(-1)
    assert torch.equal(tf_exact, greedy_exact), f"{pe}@{length}: {tf_exact.tolist()} != {greedy_exact.tolist()}"
    assert bool(greedy_exact[0::2].all()) and not bool(greedy_exact[1::2].any())
    t_tf, t_gr = [], []
    for _ in range(repeats):
        t_tf.append(C.timed(teacher))
        t_gr.append(C.timed(greedy))
    tf, gr = C.median(t_tf), C.median(t_gr)
    return {"teacher_s": tf, "greedy_s": gr, "speedup": gr / tf, "teacher_tok_s": batch * length / tf,
            "greedy_tok_s": batch * length / gr, "exact_match": float(tf_exact.float().mean())}


def copy_sweep(args) -> dict:
    import torch

    from lengen.data.batching import TokenStore, TrainBatches
    from lengen.data.dataset import TaskData
    from lengen.evaluation import evaluate
    from lengen.model.build import build_model
    from lengen.training import LengenModule

    task_cfg = C.conf_yaml("task", "copy")
    eval_cfg = C.conf_yaml("eval", "default")
    main_cfg = C.conf_yaml("", "config")
    trainer_cfg = C.conf_yaml("trainer", "cpu")
    model_cfg = C.conf_yaml("model", "tiny")
    train = list(range(int(task_cfg["train_min"]), int(task_cfg["train_max"]) + 1))
    lengths = list(range(int(eval_cfg["min_len"]), int(task_cfg["eval_max"]) + 1))
    pe = args.sweep_pe
    with tempfile.TemporaryDirectory() as cache:
        data = TaskData(task_cfg, seed=1, train_lengths=train, test_lengths=lengths, n_train=args.sweep_n_train,
                        n_val_per_length=int(main_cfg["data"]["n_val_per_length"]),
                        n_test_per_length=int(eval_cfg["n_per_length"]), cache_dir=cache)
        test, train_ds = data.split("test"), data.split("train")
        vocab = len(data.tokenizer)
        model = build_model(model_cfg, C.pe_cfg(pe), vocab)
        t = time.perf_counter()
        rows = evaluate(model, data.task, test, data.tokenizer, train_range=(min(train), max(train)),
                        batch_size=int(eval_cfg["batch_size"]))
        sweep_s = time.perf_counter() - t
        store = TokenStore(train_ds, data.tokenizer.pad_id)
        torch.manual_seed(0)
        module = LengenModule(model_cfg, C.pe_cfg(pe), vocab, C.optim_cfg(), seed=1)
        holder: dict = {}
        stream = TrainBatches(store, int(trainer_cfg["batch_size"]), int(main_cfg["data"]["bucket_batches"]), 1,
                              start_step=lambda: holder["t"].global_step if "t" in holder else 0,
                              pack_width=int(main_cfg["data"]["pack_width"]))
        step = C.median(C.fit_steps(module, torch.utils.data.DataLoader(stream, batch_size=None),
                                    args.sweep_steps, warmup=2))
    max_steps = int(trainer_cfg["max_steps"])
    return {"pe": pe, "sweep_s": sweep_s, "n_examples": len(test), "n_lengths": len(rows), "step_s": step,
            "train_s": step * max_steps, "max_steps": max_steps, "ratio": sweep_s / (step * max_steps)}


TARGET_EXTEND = 1.3


def extend_model(args, method: str):
    """The benchmark model with ``method`` installed (training length ``--extend-train``)."""
    import torch

    from lengen import extend
    from lengen.model.build import build_model

    torch.manual_seed(0)
    length = args.extend_train * args.extend_ratio
    model = build_model(C.BENCH_MODEL, C.pe_cfg(args.extend_pe, length), args.vocab).eval()
    spec = {"name": method}
    if extend.METHODS[method].uses_factor:
        spec["factor"] = float(args.extend_ratio)
    extend.build(spec).install(model, original_length=args.extend_train)
    ids = torch.randint(0, args.vocab, (args.batch, length), generator=torch.Generator().manual_seed(1))
    return model, ids


def extend_memory_child(args) -> None:
    """Inside a fresh process: the peak RSS of one teacher-forced forward above the RSS before it."""
    import json

    import torch
    from bench_memory import _peak_rss_bytes, _reset_peak_rss, _rss_bytes

    C.set_threads(args.threads)
    model, ids = extend_model(args, args.extend_memory_child)
    _reset_peak_rss()
    before = _rss_bytes()
    with torch.inference_mode():
        logits = model(ids)
    peak = _peak_rss_bytes() - before
    assert torch.isfinite(logits).all()
    print(json.dumps({"method": args.extend_memory_child, "peak_mb": max(peak, 0) / 2**20}))


def extend_costs(args) -> dict:
    """Time (alternated rounds, median) and peak memory (fresh subprocesses) per method vs none."""
    import json
    import os
    import subprocess

    import torch

    methods = ["none", *(m for m in args.extend if m != "none")]
    models = {m: extend_model(args, m) for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    with torch.inference_mode():
        for m in methods:  # warm-up
            models[m][0](models[m][1])
        for _ in range(args.repeats):
            for m in methods:
                model, ids = models[m]
                times[m].append(C.timed(lambda model=model, ids=ids: model(ids)))
    # glibc's dynamic mmap threshold makes the RSS peak of the same forward bimodal (~105 or ~170 MB here,
    # whatever the method); a fixed threshold returns large blocks at once and the peak repeats to 0.1 MB.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    peaks: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.extend_memory_repeats):  # RSS peaks scatter by allocator state: median of fresh children
        for m in methods:
            cmd = [sys.executable, __file__, "--extend-memory-child", m, "--extend-pe", args.extend_pe,
                   "--extend-train", str(args.extend_train), "--extend-ratio", str(args.extend_ratio),
                   "--batch", str(args.batch), "--threads", str(args.threads), "--vocab", str(args.vocab)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            peaks[m].append(json.loads(out.strip().splitlines()[-1])["peak_mb"])
    memory = {m: C.median(v) for m, v in peaks.items()}
    base_t, base_m = C.median(times["none"]), memory["none"]
    return {m: {"seconds": C.median(times[m]), "time_ratio": C.median(times[m]) / base_t, "peak_mb": memory[m],
                "memory_ratio": memory[m] / base_m if base_m > 0 else float("nan"), "rounds": times[m]}
            for m in methods}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--pes", nargs="+", default=list(C.PES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=20)
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the copy-run sweep")
    parser.add_argument("--sweep-pe", default="nope")
    parser.add_argument("--sweep-n-train", type=int, default=6400, help="training examples (for step timing)")
    parser.add_argument("--sweep-steps", type=int, default=8)
    parser.add_argument("--extend", nargs="*", default=[], metavar="METHOD",
                        help="part 3: evaluation-time extension methods to cost against extend=none")
    parser.add_argument("--extend-only", action="store_true", help="run part 3 only")
    parser.add_argument("--extend-pe", default="rope")
    parser.add_argument("--extend-train", type=int, default=128, help="training length (positions)")
    parser.add_argument("--extend-ratio", type=int, default=8, help="evaluated length / training length")
    parser.add_argument("--extend-memory-repeats", type=int, default=3, help="fresh processes per method (median)")
    parser.add_argument("--extend-memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.extend_memory_child:
        extend_memory_child(args)
        return {}

    from rich.console import Console
    from rich.table import Table

    C.quiet_lightning()
    C.set_threads(args.threads)
    console = Console(width=max(Console().width, 120))
    t0 = time.perf_counter()
    out: dict = {"hardware": C.hardware()["label"], "tf_vs_greedy": {}}
    table = Table(title=f"teacher-forced scoring vs KV-cache greedy decoding, batch {args.batch}, prompt = target "
                        f"= L/2, fp32 (same per-example exact match asserted)")
    for col in ("PE", "L", "teacher-forced tok/s", "greedy tok/s", "teacher s", "greedy s", "speed-up",
                "exact match"):
        table.add_column(col, justify="left" if col == "PE" else "right")
    for length in [] if args.extend_only else args.lengths:
        for pe in args.pes:
            r = teacher_vs_greedy(pe, length, args.batch, args.vocab, args.repeats)
            out["tf_vs_greedy"][f"{pe}@{length}"] = r
            ok = "" if r["speedup"] >= TARGET_SPEEDUP else f" (< {TARGET_SPEEDUP})"
            table.add_row(pe, str(length), f"{r['teacher_tok_s']:,.0f}", f"{r['greedy_tok_s']:,.0f}",
                          f"{r['teacher_s']:.2f}", f"{r['greedy_s']:.2f}", f"x{r['speedup']:.1f}{ok}",
                          f"{r['exact_match']:.2f} = {r['exact_match']:.2f}")
    if not args.extend_only:
        console.print(table)
    if args.sweep and not args.extend_only:
        s = copy_sweep(args)
        out["sweep"] = s
        table = Table(title="default eval sweep of a copy run (model tiny, lengths 1-40, 100 per length, batch 128)")
        for col in ("PE", "examples", "lengths", "sweep s", "train step s", "est. train s", "sweep / train"):
            table.add_column(col, justify="left" if col == "PE" else "right")
        flag = "" if s["ratio"] <= TARGET_SWEEP else f" (> {TARGET_SWEEP:.0%})"
        table.add_row(s["pe"], f"{s['n_examples']:,}", str(s["n_lengths"]), f"{s['sweep_s']:.2f}",
                      f"{s['step_s']:.3f}", f"{s['train_s']:.0f} ({s['max_steps']} steps)", f"{s['ratio']:.1%}{flag}")
        console.print(table)
    if args.extend:
        length = args.extend_train * args.extend_ratio
        costs = extend_costs(args)
        out["extend"] = costs
        table = Table(title=f"lengen eval extend=METHOD: {args.extend_pe}, trained at {args.extend_train}, evaluated "
                            f"at {length} ({args.extend_ratio}x), batch {args.batch}, teacher-forced forward, fp32")
        for col in ("method", "forward s (median)", "time / none", "peak MB", "memory / none"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for m, r in costs.items():
            flag = {k: "" if r[k] <= TARGET_EXTEND else f" (> {TARGET_EXTEND})" for k in ("time_ratio", "memory_ratio")}
            table.add_row(m, f"{r['seconds']:.3f}", f"{r['time_ratio']:.2f}{flag['time_ratio']}", f"{r['peak_mb']:.1f}",
                          f"{r['memory_ratio']:.2f}{flag['memory_ratio']}")
        console.print(table)
    console.print(f"{C.machine_line()}; model {C.BENCH_MODEL} (part 1); total {time.perf_counter() - t0:.0f}s")
    return out


if __name__ == "__main__":
    main()
