"""Scoring a model's outputs: exact match, final-answer exact match and step accuracy.

1. ``task.answer_from`` / ``task.score_steps`` on hand-built generations of a summation scratchpad;
2. ``evaluate`` end to end with a scripted model whose every output is chosen, so each aggregated
   column (``exact_match``, ``answer_exact_match``, ``step_accuracy``, ``token_accuracy``) has a value
   known in advance;
3. teacher-forced exact match equals KV-cache greedy generation, example by example, for every PE.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import lengen.conf
from lengen.data.batching import IGNORE, TokenStore
from lengen.data.dataset import examples_to_dataset
from lengen.data.tokenizer import SPECIALS, Tokenizer
from lengen.evaluation import evaluate, generate_targets, score_examples
from lengen.metrics import EXAMPLE_METRICS, token_scores
from lengen.model.build import build_model
from lengen.model.generation import greedy_generate
from lengen.tasks import Example, build_task

CONF = Path(lengen.conf.__file__).parent


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is fastest, and far faster on a busy machine (the conftest restores it)."""
    torch.set_num_threads(1)


def task_of(name: str, scratchpad: str = "full"):
    cfg = yaml.safe_load((CONF / "task" / f"{name}.yaml").read_text())
    return build_task({**cfg, "scratchpad": scratchpad})


def sym(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# -- 1. the scorer on hand-built generations ------------------------------------------------------------

#: summation of 8 6 5 with the full scratchpad, written out by hand: a running sum mod 10, one step a digit.
GOLD = sym("I: 8 C: 0 + 8 O: 8 R: 6 5 | I: 6 C: 8 + 6 O: 4 R: 5 | I: 5 C: 4 + 5 O: 9 R: | = 9")
WRONG_STEP = sym("I: 8 C: 0 + 8 O: 8 R: 6 5 | I: 6 C: 8 + 6 O: 5 R: 5 | I: 5 C: 4 + 5 O: 9 R: | = 9")
WRONG_ANSWER = sym("I: 8 C: 0 + 8 O: 8 R: 6 5 | I: 6 C: 8 + 6 O: 4 R: 5 | I: 5 C: 4 + 5 O: 9 R: | = 7")
CUT_AFTER_STEP = sym("I: 8 C: 0 + 8 O: 8 R: 6 5 |")
CUT_MID_STEP = sym("I: 8 C: 0 + 8 O: 8 R: 6 5 | I: 6 C: 8 +")
SKIPPED_STEP = sym("I: 8 C: 0 + 8 O: 8 R: 6 5 | I: 5 C: 4 + 5 O: 9 R: | = 9")


@pytest.fixture(scope="module")
def summation():
    return task_of("summation")


def test_the_hand_written_gold_is_the_tasks_target(summation):
    assert summation.solve(("8", "6", "5")) == GOLD
    assert summation.answer_from(GOLD) == ("9",)


@pytest.mark.parametrize(
    ("generated", "answer", "score"),
    [
        (GOLD, ("9",), {"steps_total": 3, "steps_correct": 3, "first_wrong_step": -1, "answer_correct": 1}),
        (WRONG_STEP, ("9",), {"steps_total": 3, "steps_correct": 2, "first_wrong_step": 1, "answer_correct": 1}),
        (WRONG_ANSWER, ("7",), {"steps_total": 3, "steps_correct": 3, "first_wrong_step": -1, "answer_correct": 0}),
        (CUT_AFTER_STEP, (), {"steps_total": 3, "steps_correct": 1, "first_wrong_step": 1, "answer_correct": 0}),
        (CUT_MID_STEP, (), {"steps_total": 3, "steps_correct": 1, "first_wrong_step": 1, "answer_correct": 0}),
        # a step left out: later steps are compared position by position, so only step 0 counts
        (SKIPPED_STEP, ("9",), {"steps_total": 3, "steps_correct": 1, "first_wrong_step": 1, "answer_correct": 1}),
        ((), (), {"steps_total": 3, "steps_correct": 0, "first_wrong_step": 0, "answer_correct": 0}),
    ],
    ids=["right", "wrong-step-right-answer", "right-steps-wrong-answer", "cut-after-step", "cut-mid-step",
         "skipped-step", "empty"],
)
def test_answer_and_steps_of_hand_built_generations(summation, generated, answer, score):
    assert summation.answer_from(generated) == answer
    assert summation.score_steps(generated, GOLD) == score


def test_multi_digit_answer_is_everything_after_the_last_marker():
    add = task_of("addition", "minimal")
    gold = add.solve(("5", "2", "+", "3", "9"))  # 52 + 39 = 91: units 2 + 9 = 11 (carry 1), tens 5 + 3 + 1
    assert gold == sym("C: 2 + 9 + 0 O: 1 | C: 5 + 3 + 1 O: 9 | = 9 1")
    assert add.answer_from(gold) == ("9", "1")
    assert add.answer_from(sym("C: 2 + 9 + 0 O: 1 | = 3 | = 9 1")) == ("9", "1")
    assert add.score_steps(sym("C: 2 + 9 + 0 O: 1 | C: 5 + 3 + 0 O: 8 | = 8 1"), gold) == {
        "steps_total": 2, "steps_correct": 1, "first_wrong_step": 1, "answer_correct": 0}
    assert task_of("addition", "none").answer_from(("9", "1")) == ("9", "1")  # no scratchpad: all of it


# -- 2. evaluate with a scripted model ---------------------------------------------------------------------

class Scripted(nn.Module):
    """A stand-in model that writes a chosen continuation for each prompt: at the k-th position from
    ``<sep>`` on it predicts the script's k-th token (then ``<eos>``), whatever tokens came after
    ``<sep>`` -- so teacher forcing and greedy generation (with its KV cache) both see exactly the
    script. ``new_cache``/``tok`` are the parts of :class:`Transformer` that generation uses."""

    def __init__(self, tokenizer: Tokenizer, scripts: Mapping[tuple[str, ...], Sequence[str]]) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.tok = nn.Embedding(len(tokenizer), 1)
        self.scripts = {tuple(tokenizer.encode(p)): [*tokenizer.encode(s), tokenizer.eos_id] for p, s in scripts.items()}
        self.generated = 0  # rows that went through generation (a cache was made for them)

    def new_cache(self, batch: int, max_len: int, like: torch.Tensor) -> list[torch.Tensor]:
        self.generated += batch
        return []

    def forward(self, input_ids, pos=None, cache=None, segments=None):
        if cache is not None:
            cache.append(input_ids)
        seqs = torch.cat(cache, dim=1) if cache is not None else input_ids
        t = self.tokenizer
        logits = torch.zeros(*seqs.shape, len(t))
        for b, row in enumerate(seqs.tolist()):
            sep = row.index(t.sep_id)
            script = self.scripts[tuple(row[1:sep])]
            for i in range(sep, len(row)):
                k = i - sep
                logits[b, i, script[k] if k < len(script) else t.eos_id] = 4.0
        return logits[:, -input_ids.shape[1]:]


def example(task, prompt: tuple[str, ...]) -> Example:
    target = task.solve(prompt)
    answer = task.scratchpad.parse(target)[1] if task.scratchpad.enabled else target
    return Example(prompt=prompt, target=target, length=len(prompt), answer_len=len(answer))


def replace_step_output(target: tuple[str, ...], step: int) -> tuple[str, ...]:
    """The target with the output digit of ``step`` changed (the final answer kept)."""
    out = list(target)
    at = [i for i, s in enumerate(out) if s == "O:"][step] + 1
    out[at] = str((int(out[at]) + 1) % 10)
    return tuple(out)


def with_answer(target: tuple[str, ...], answer: str) -> tuple[str, ...]:
    return (*target[: target.index("=") + 1], answer)


def upto_step(target: tuple[str, ...], n_steps: int) -> tuple[str, ...]:
    ends = [i for i, s in enumerate(target) if s == "|"]
    return target[: ends[n_steps - 1] + 1]


def scripted_case(task):
    """Four prompts at length 2 and four at length 3, each with a chosen output: returns the examples,
    the scripts (prompt -> output) and, per prompt, the expected (exact, answer exact, step accuracy)."""
    cases = {
        # length 2 (2 steps): right; wrong step + right answer; right steps + wrong answer; garbage
        ("1", "2"): (lambda g: g, (1, 1, 1.0)),
        ("3", "4"): (lambda g: replace_step_output(g, 0), (0, 1, 0.5)),
        ("5", "6"): (lambda g: with_answer(g, "0"), (0, 0, 1.0)),
        ("7", "7"): (lambda g: ("5", "5", "5"), (0, 0, 0.0)),
        # length 3 (3 steps): right; wrong step + right answer; right steps + wrong answer; cut after a step
        ("8", "6", "5"): (lambda g: g, (1, 1, 1.0)),
        ("2", "2", "2"): (lambda g: replace_step_output(g, 1), (0, 1, 2 / 3)),
        ("9", "0", "9"): (lambda g: with_answer(g, "1"), (0, 0, 1.0)),
        ("4", "4", "1"): (lambda g: upto_step(g, 1), (0, 0, 1 / 3)),
    }
    examples = [example(task, p) for p in cases]
    scripts = {ex.prompt: make(ex.target) for ex, (make, _) in zip(examples, cases.values())}
    assert scripts[("5", "6")] != examples[2].target and scripts[("3", "4")][-1] == examples[1].target[-1]
    return examples, scripts, {p: v for p, (_, v) in cases.items()}


def token_accuracy(examples: Sequence[Example], scripts, tokenizer: Tokenizer) -> dict[int, float]:
    """Teacher-forced token accuracy worked out directly: script vs target, position by position."""
    right, total = Counter(), Counter()
    for ex in examples:
        gold = [*tokenizer.encode(ex.target), tokenizer.eos_id]
        pred = [*tokenizer.encode(scripts[ex.prompt]), tokenizer.eos_id]
        pred += [tokenizer.eos_id] * max(0, len(gold) - len(pred))
        right[ex.length] += sum(a == b for a, b in zip(gold, pred))
        total[ex.length] += len(gold)
    return {n: right[n] / total[n] for n in total}


def test_evaluate_columns_have_the_values_of_the_scripted_outputs(summation):
    examples, scripts, expected = scripted_case(summation)
    tokenizer = Tokenizer(summation.symbols)
    ds = examples_to_dataset(examples, tokenizer, summation.group_keys)
    model = Scripted(tokenizer, scripts)
    rows = evaluate(model, summation, ds, tokenizer, train_range=(2, 2), batch_size=3)
    assert rows["eval_length"].tolist() == [2, 3]
    assert rows["in_range"].tolist() == [True, False]
    assert rows["n"].tolist() == [4, 4]
    for length, row in zip((2, 3), rows.itertuples()):
        want = [v for p, v in expected.items() if len(p) == length]
        assert row.exact_match == pytest.approx(np.mean([w[0] for w in want]))  # 1/4
        assert row.answer_exact_match == pytest.approx(np.mean([w[1] for w in want]))  # 2/4
        assert row.step_accuracy == pytest.approx(np.mean([w[2] for w in want]))  # 0.625, 0.75
        assert row.token_accuracy == pytest.approx(token_accuracy(examples, scripts, tokenizer)[length])
        assert np.isfinite(row.loss) and row.loss > 0
    assert rows["step_accuracy"].tolist() == pytest.approx([0.625, 0.75])
    assert model.generated == 6  # only the examples whose whole target was wrong are generated


def test_evaluate_without_scratchpad_generates_nothing_and_answer_is_exact():
    task = task_of("summation", "none")
    tokenizer = Tokenizer(task.symbols)
    prompts = [("1", "2"), ("3", "4"), ("8", "6", "5"), ("9", "0", "9")]
    examples = [example(task, p) for p in prompts]
    outputs = {("1", "2"): ("3",), ("3", "4"): ("8",), ("8", "6", "5"): ("9",), ("9", "0", "9"): ("8",)}
    assert [ex.target for ex in examples] == [("3",), ("7",), ("9",), ("8",)]
    model = Scripted(tokenizer, outputs)
    rows = evaluate(model, task, examples_to_dataset(examples, tokenizer, ()), tokenizer, train_range=(2, 3))
    assert rows["exact_match"].tolist() == [0.5, 1.0]
    assert rows["answer_exact_match"].tolist() == rows["exact_match"].tolist()
    assert "step_accuracy" not in rows
    assert model.generated == 0


def test_token_scores_on_constructed_logits():
    """exact needs every target token (padding and prompt ignored); tok_correct counts the right ones."""
    labels = torch.tensor([[-100, 3, 4, 2], [-100, 3, 4, 2], [-100, 3, -100, -100], [-100, 5, 5, 2]])
    pred = torch.tensor([[0, 3, 4, 2], [7, 3, 1, 2], [1, 3, 1, 1], [0, 1, 1, 1]])
    logits = torch.nn.functional.one_hot(pred, 8).float() * 5
    s = token_scores(logits, labels)
    assert s["exact"].tolist() == [True, False, True, False]
    assert s["tok_correct"].tolist() == [3, 2, 1, 0] and s["n_tok"].tolist() == [3, 3, 1, 3]
    assert EXAMPLE_METRICS["exact_match"](s).tolist() == [True, False, True, False]
    right, wrong = math.log(1 + 7 * math.exp(-5)), math.log(math.exp(5) + 7)  # -log softmax, by hand
    assert s["nll"].tolist() == pytest.approx([3 * right, 2 * right + wrong, right, 3 * wrong], rel=1e-5)


# -- 3. teacher-forced exact match == KV-cache greedy generation, per example -------------------------

MODEL = {"d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 64, "activation": "relu", "norm": "layernorm",
         "bias": True, "dropout": 0.0, "tie_embeddings": False}
PES = sorted(p.stem for p in (CONF / "pe").glob("*.yaml"))


class StopAfter(nn.Module):
    """A real (untrained) Transformer whose output is restricted to the task symbols, plus ``<eos>``
    exactly after the symbol ``stop`` (a rule on the input token at the same position, so it is the
    same with or without a cache). This gives examples that are right with an untrained model: the
    target is the model's own greedy output up to its first ``stop``."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, stop: int | None) -> None:
        super().__init__()
        self.model, self.tokenizer, self.stop = model, tokenizer, stop
        self.tok = model.tok

    def new_cache(self, batch: int, max_len: int, like: torch.Tensor):
        return self.model.new_cache(batch, max_len, like)

    def forward(self, input_ids, pos=None, cache=None, segments=None):
        logits = self.model(input_ids, pos=pos, cache=cache, segments=segments).clone()
        t = self.tokenizer
        logits[..., [t.index[s] for s in SPECIALS]] = -1e4
        if self.stop is not None:
            logits[..., t.eos_id] = torch.where(input_ids == self.stop, 1e4, -1e4)
        return logits


def untrained_model(pe: str, vocab: int) -> nn.Module:
    """Weights drawn from a fixed generator with a wide spread (std 0.3, unit norms), so logits are
    well separated; the default init (std 0.02) leaves near-ties that rounding could flip."""
    model = build_model(MODEL, yaml.safe_load((CONF / "pe" / f"{pe}.yaml").read_text()), vocab).eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm" in name or name.startswith("norm"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def variants(gen: tuple[str, ...], symbols: Sequence[str], rng: np.random.Generator) -> list[tuple[str, ...]]:
    """Targets the model gets wrong: one symbol changed, the last one dropped, one appended."""
    k = int(rng.integers(0, len(gen)))
    changed = list(gen)
    changed[k] = next(s for s in symbols if s != gen[k])
    return [tuple(changed), gen[:-1], (*gen, symbols[0])]


def margin_ok(model: nn.Module, ds, tokenizer: Tokenizer, threshold: float = 1e-3) -> np.ndarray:
    """Examples whose top-two logits differ by more than ``threshold`` at every target position (so
    no argmax is a near-tie that another processor's rounding could decide differently)."""
    store = TokenStore(ds, tokenizer.pad_id)
    batch = store.collate(np.arange(len(store)))
    with torch.no_grad():
        top = model(batch["input_ids"]).topk(2, dim=-1).values
    wide = (top[..., 0] - top[..., 1]) > threshold
    return (wide | (batch["labels"] == IGNORE)).all(-1).numpy()


@pytest.mark.parametrize("pe", PES)
def test_teacher_forced_equals_kv_cache_greedy_generation(pe):
    symbols = list("abcdef")
    tokenizer = Tokenizer(symbols)
    model = untrained_model(pe, len(tokenizer))
    rng = np.random.default_rng(0)
    free = StopAfter(model, tokenizer, stop=None)
    gens = {}
    for n in (1, 2, 3, 5, 8):  # the model's own greedy outputs, 12 symbols each, 6 prompts per length
        prompts = [tuple(p) for p in rng.choice(symbols, size=(6, n))]
        ids = torch.tensor([[tokenizer.bos_id, *tokenizer.encode(p), tokenizer.sep_id] for p in prompts])
        for p, out in zip(prompts, greedy_generate(free, ids, 12).tolist()):
            gens[p] = tuple(tokenizer.decode(out))
    # the stop symbol: the one that most of the model's own outputs contain after their first symbol
    # (targets of several symbols), counting each output's first occurrence
    stop = Counter(s for g in gens.values() for s in set(g) if g.index(s) >= 1).most_common(1)[0][0]
    stopped = StopAfter(model, tokenizer, stop=tokenizer.index[stop])

    examples = []
    for p, g in gens.items():
        own = g[: g.index(stop) + 1] if stop in g else g  # the model's output (it never stops without `stop`)
        for target in [own, *variants(own, symbols, rng)]:
            if target:
                examples.append(Example(prompt=p, target=target, length=len(p), answer_len=len(target)))
    ds = examples_to_dataset(examples, tokenizer, ())
    keep = margin_ok(stopped, ds, tokenizer)
    assert keep.mean() >= 0.9
    # a fresh dataset, not ds.select(): TokenStore reads the underlying table and ignores the
    # indices mapping that a non-contiguous select() leaves (see the report of this change)
    ds = examples_to_dataset([ex for ex, k in zip(examples, keep) if k], tokenizer, ())

    forced = score_examples(stopped, ds, tokenizer, batch_size=7)["exact"].to_numpy()  # mixed lengths, padded
    generated = generate_targets(stopped, ds, tokenizer, list(range(len(ds))))
    greedy = [generated[i] == ds[i]["target"] for i in range(len(ds))]
    assert forced.tolist() == greedy
    assert 5 <= sum(greedy) < len(greedy) - 5, "need both right and wrong examples for a meaningful check"
    lengths_right = {len(ds[i]["target"]) for i in range(len(ds)) if greedy[i]}
    assert max(lengths_right) >= 2  # right examples several tokens long, not only a lone stop symbol
