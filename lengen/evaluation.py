"""The length sweep: exact match, final-answer exact match and token accuracy per length.

Scoring is teacher-forced (one forward pass per batch), which equals greedy generation for exact
match. Only for scratchpad tasks, examples whose whole target was wrong are also generated
greedily, because a different (wrong) scratchpad may still end in the right final answer.

Positions are the model's plain ids, or the task's own (position coupling: stored with the split,
continued for generated tokens), randomized per batch only under ``pe.randomize_eval`` from a
generator seeded by the run's seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import datasets
import numpy as np
import pandas as pd
import torch

from lengen.data.batching import TokenStore, eval_batches
from lengen.data.positions import batch_positions
from lengen.data.tokenizer import Tokenizer
from lengen.metrics import EXAMPLE_METRICS, token_scores
from lengen.model.generation import greedy_generate
from lengen.model.random_positions import relabel
from lengen.model.transformer import Transformer
from lengen.tasks import Task

#: stream tag of evaluation-time position draws (``pe.randomize_eval``)
EVAL_POSITIONS = 0x504F5345


def autocast_for(device: torch.device, precision: str):
    if device.type == "cuda" and "bf16" in str(precision):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cuda" and "16" in str(precision):
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


@torch.no_grad()
def score_examples(
    model: Transformer,
    ds: datasets.Dataset,
    tokenizer: Tokenizer,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    precision: str = "32-true",
    seed: int = 0,
) -> pd.DataFrame:
    """One row per example: exact, tok_correct, n_tok, nll and every registered example metric."""
    device = torch.device(device)
    model.eval()
    store = TokenStore(ds, tokenizer.pad_id)
    n = len(store)
    exact = np.zeros(n, dtype=bool)
    tok_correct = np.zeros(n, dtype=np.int64)
    n_tok = np.zeros(n, dtype=np.int64)
    nll = np.zeros(n, dtype=np.float64)
    extra: dict[str, np.ndarray] = {}
    with autocast_for(device, precision):
        for idx in eval_batches(store, batch_size):
            batch = store.collate(idx)
            rng = np.random.default_rng([int(seed), EVAL_POSITIONS, int(idx[0])])
            pos = batch_positions(batch, _random_positions(model), rng, training=False)
            logits = model(batch["input_ids"].to(device), pos=None if pos is None else pos.to(device))
            s = token_scores(logits, batch["labels"].to(device))
            exact[idx] = s["exact"].cpu().numpy()
            tok_correct[idx] = s["tok_correct"].cpu().numpy()
            n_tok[idx] = s["n_tok"].cpu().numpy()
            nll[idx] = s["nll"].double().cpu().numpy()
            for name, fn in EXAMPLE_METRICS.items():
                value = fn(s).cpu().numpy()
                extra.setdefault(name, np.zeros(n, dtype=value.dtype))[idx] = value
    return pd.DataFrame({"exact": exact, "tok_correct": tok_correct, "n_tok": n_tok, "nll": nll, **extra})


@torch.no_grad()
def generate_targets(
    model: Transformer, ds: datasets.Dataset, tokenizer: Tokenizer, rows: Sequence[int], *,
    device: torch.device | str = "cpu", extra_tokens: int = 8, seed: int = 0,
) -> dict[int, list[str]]:
    """Greedy generations (symbols, up to ``<eos>``) for the given rows, batched by prompt length.

    Generated tokens continue the split's own position ids (a coupled answer digit gets the id of its
    significance) and, past the stored sequence, repeat its last id.
    """
    device = torch.device(device)
    model.eval()
    sub = ds.select(rows)
    by_len: dict[int, list[int]] = {}
    for j, n_prompt in enumerate(sub["n_prompt"]):
        by_len.setdefault(n_prompt, []).append(j)
    out: dict[int, list[str]] = {}
    ids_col, tgt_col = sub["input_ids"], sub["target"]
    pos_col = sub["pos"] if "pos" in sub.column_names else None
    rp = _random_positions(model)
    for n_prompt, js in by_len.items():
        prompt = torch.tensor([ids_col[j][:n_prompt] for j in js], device=device)
        budget = 2 * max(len(tgt_col[j]) for j in js) + extra_tokens
        pos = None
        if pos_col is not None:
            pos = torch.tensor([_extended(pos_col[j], n_prompt + budget) for j in js])
        if rp is not None and rp.at_eval:
            plain = torch.arange(n_prompt + budget).expand(len(js), -1) if pos is None else pos
            rng = np.random.default_rng([int(seed), EVAL_POSITIONS, int(rows[js[0]]), n_prompt])
            pos = relabel(plain, torch.zeros_like(plain), rp.max_positions, rng)
        pos = None if pos is None else pos.to(device)
        gen = greedy_generate(model, prompt, budget, eos_id=tokenizer.eos_id, pos=pos).cpu().tolist()
        for j, seq in zip(js, gen):
            if tokenizer.eos_id in seq:
                seq = seq[: seq.index(tokenizer.eos_id)]
            out[rows[j]] = tokenizer.decode(seq)
    return out


def _random_positions(model: Transformer):
    """The model's ``pe.randomize`` settings (None for plain positions, or a model without a PE)."""
    return getattr(getattr(model, "pe", None), "random_positions", None)


def _extended(ids: Sequence[int], n: int) -> list[int]:
    """The first ``n`` ids, repeating the last one past the stored sequence."""
    return [*ids[:n], *[ids[-1]] * max(0, n - len(ids))]


def evaluate(
    model: Transformer,
    task: Task,
    ds: datasets.Dataset,
    tokenizer: Tokenizer,
    *,
    train_range: tuple[int, int],
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    precision: str = "32-true",
    seed: int = 0,
) -> pd.DataFrame:
    """Per-length (and per grouping key) metrics as a tidy DataFrame (``seed``: of randomized positions)."""
    per = score_examples(model, ds, tokenizer, batch_size=batch_size, device=device, precision=precision,
                         seed=seed)
    keys = ["length", *task.group_keys]
    for k in keys:
        per[k] = np.asarray(ds[k])
    answer_len = np.asarray(ds["answer_len"])
    target_len = np.asarray([len(t) for t in ds["target"]])
    has_pad = answer_len < target_len
    per["answer_exact"] = per["exact"]
    failed = np.flatnonzero(has_pad & ~per["exact"].to_numpy())
    if len(failed):
        generated = generate_targets(model, ds, tokenizer, failed.tolist(), device=device, seed=seed)
        targets = ds.select(failed.tolist())["target"]
        steps = []
        for row, gold in zip(failed, targets):
            gold_answer = tuple(gold[len(gold) - answer_len[row] :])
            per.loc[row, "answer_exact"] = tuple(task.answer_from(generated[row])) == gold_answer
            steps.append(task.score_steps(generated[row], gold))
        if steps and steps[0]:
            per["steps_correct"] = per["exact"].astype(float)  # fully correct targets: every step right
            for row, st in zip(failed, steps):
                per.loc[row, "steps_correct"] = st.get("steps_correct", 0) / max(st.get("steps_total", 1), 1)
    agg = {
        "n": ("exact", "size"),
        **{name: (name, "mean") for name in EXAMPLE_METRICS},
        "answer_exact_match": ("answer_exact", "mean"),
        "tok_correct": ("tok_correct", "sum"),
        "n_tok": ("n_tok", "sum"),
        "nll": ("nll", "sum"),
    }
    if "steps_correct" in per:
        agg["step_accuracy"] = ("steps_correct", "mean")
    rows = per.groupby(keys, dropna=False).agg(**agg).reset_index()
    rows["token_accuracy"] = rows["tok_correct"] / rows["n_tok"].clip(lower=1)
    rows["loss"] = rows["nll"] / rows["n_tok"].clip(lower=1)
    rows = rows.drop(columns=["tok_correct", "n_tok", "nll"]).rename(columns={"length": "eval_length"})
    lo, hi = train_range
    rows.insert(1, "in_range", (rows["eval_length"] >= lo) & (rows["eval_length"] <= hi))
    return rows


def evaluate_run(run, model: Transformer, data, test: datasets.Dataset, *, checkpoint: str,
                 device: torch.device | str) -> pd.DataFrame:
    """The result rows of one run's length sweep (``run`` is a :class:`lengen.rundir.Run`)."""
    from lengen.results import with_metadata

    cfg = run.cfg
    rows = evaluate(model, data.task, test, data.tokenizer, train_range=run.train_range,
                    batch_size=int(cfg.eval.batch_size), device=device, precision=str(cfg.trainer.precision),
                    seed=int(cfg.seed))
    rows = with_metadata(rows, run.meta())
    rows["checkpoint"] = checkpoint
    return rows


def print_samples(model: Transformer, ds: datasets.Dataset, tokenizer: Tokenizer, lengths: Sequence[int], k: int,
                  console, device: torch.device | str = "cpu") -> None:
    """Show ``k`` greedy generations (KV cache) at each of ``lengths``: what the model actually writes."""
    if k <= 0:
        return
    length_col = np.asarray(ds["length"])
    for length in lengths:
        rows = np.flatnonzero(length_col == length)[:k].tolist()
        if not rows:
            continue
        generated = generate_targets(model, ds, tokenizer, rows, device=device)
        console.print(f"[bold]samples at length {length}[/]")
        for row in rows:
            ex = ds[row]
            ok = generated[row] == ex["target"]
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            console.print(f" {mark} {_short(ex['prompt'])} → {_short(generated[row])}", soft_wrap=True)
            if not ok:
                console.print(f"   gold {_short(ex['target'])}", soft_wrap=True)


def _short(symbols: Sequence[str], keep: int = 24) -> str:
    if len(symbols) <= 2 * keep:
        return " ".join(symbols)
    return f"{' '.join(symbols[:keep])} … ({len(symbols) - 2 * keep} more) … {' '.join(symbols[-keep:])}"
