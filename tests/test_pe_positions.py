"""Encodings that read more than plain position ids: CoPE (queries and keys), randomized positions
(any PE), Abacus (token ids) and position coupling (a task's own ids), on tiny float64 models,
plus one short training run of each."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lengen.data.batching import TokenStore
from lengen.data.dataset import TaskData
from lengen.data.positions import batch_positions, shift_positions
from lengen.data.tokenizer import Tokenizer
from lengen.evaluation import generate_targets
from lengen.model.attention import AttentionBias
from lengen.model.config import ModelConfig
from lengen.model.generation import greedy_generate
from lengen.model.positional import build_pe
from lengen.model.positional.abacus import digit_runs
from lengen.model.random_positions import relabel
from lengen.model.transformer import Transformer
from lengen.tasks import TaskConfigError, build_task
from tests.conftest import tiny_overrides

VOCAB, D, H, N_LAYERS = 20, 32, 4, 2
COUPLED = {"name": "addition", "train_min": 1, "train_max": 4, "eval_max": 6, "positions": "coupled",
           "format": {"pad_operands": True, "reverse_answer": True, "reverse_operands": True}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(pe: dict, seed: int = 0, vocab: int = VOCAB, **model_kw) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=vocab, d_model=D, n_heads=H, n_layers=N_LAYERS, d_ff=64, **model_kw)
    model = Transformer(cfg, build_pe(pe, d_model=D, n_heads=H, n_layers=N_LAYERS))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model.double().eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def causal_mask(lq: int, lk: int) -> torch.Tensor:
    seen = torch.arange(lk)[None, :] <= torch.arange(lk - lq, lk)[:, None]
    return torch.zeros(1, 1, lq, lk, dtype=torch.float64).masked_fill(~seen, float("-inf"))


# -- CoPE ------------------------------------------------------------------------------------------
def test_cope_positions_count_gate_mass_and_are_bounded():
    pe = build_pe({"name": "cope", "p_max": 3}, d_model=D, n_heads=H, n_layers=1).double()
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, H, 9, 8, generator=g, dtype=torch.float64), torch.randn(2, H, 9, 8, generator=g,
                                                                                  dtype=torch.float64)
    p = pe.positions(q, k, causal_mask(9, 9), scale=0.5)
    gate = torch.sigmoid(0.5 * q @ k.transpose(-1, -2))
    for i in range(9):
        for j in range(9):
            want = torch.clamp(gate[..., i, j : i + 1].sum(-1), max=3.0) if j <= i else torch.zeros(2, H)
            torch.testing.assert_close(p[..., i, j], want.double(), rtol=1e-12, atol=1e-12)
    assert float(p.max()) == 3.0 and float(p.min()) == 0.0  # the clamp is reached over 9 keys

    # the bias interpolates q·e between the integer positions around p
    with torch.no_grad():
        pe.tables[0].normal_()
    bias = pe.contextual_bias(q, k, causal_mask(9, 9), 0, 0.5)
    e = pe.tables[0]
    lo, w = p.floor().long(), p - p.floor()
    want = (q[..., None, :] * (e[lo] * (1 - w[..., None]) + e[(lo + 1).clamp(max=3)] * w[..., None])).sum(-1)
    torch.testing.assert_close(bias, want, rtol=1e-10, atol=1e-10)


def test_cope_ignores_position_ids_and_is_causal():
    model, x = make_model({"name": "cope", "p_max": 8}), tokens(2, 12)
    base = model(x)
    torch.testing.assert_close(model(x, pos=3 * torch.arange(12)[None] + 7), base, rtol=0, atol=0)
    changed = x.clone()
    changed[:, 6] = (changed[:, 6] + 1) % VOCAB
    torch.testing.assert_close(model(changed)[:, :6], base[:, :6], rtol=0, atol=1e-12)


def test_cope_blocked_long_context_equals_dense():
    length = 21
    dense = make_model({"name": "cope", "p_max": 6, "shared": True})
    blocked = make_model({"name": "cope", "p_max": 6, "shared": True}, bias_block_elements=8 * H * 2 * length * 4)
    blocked.load_state_dict(dense.state_dict())
    x = tokens(2, length)
    torch.testing.assert_close(blocked(x), dense(x), rtol=1e-12, atol=1e-12)
    pos = torch.arange(length)[None]
    provider = AttentionBias(blocked.pe, pos, pos, 0, torch.float64, blocked.cfg.bias_block_elements)
    assert len(list(provider.blocks(0))) == math.ceil(length / 8)  # 8 queries of 2 rows x 4 heads a block


@pytest.mark.parametrize("pe", [{"name": "cope", "p_max": 5}, {"name": "abacus", "base": "cope"}])
def test_cached_generation_equals_full_forward_for_contextual_bias(pe):
    model, x = make_model(pe), tokens(2, 14)
    full = model(x)
    cache = model.new_cache(2, 14, like=model.tok.weight)
    steps = [model(x[:, :5], cache=cache)] + [model(x[:, t : t + 1], cache=cache) for t in range(5, 14)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-10, atol=1e-10)


def test_cope_refuses_attention_bands_and_bad_options():
    from lengen.model.attention import Band

    model = make_model({"name": "cope"})

    class Window:
        def band(self, q_pos, k_pos):
            return Band(window=4)

    model.extension = Window()
    with pytest.raises(ValueError, match=r"bands do not support pe=cope"):
        model(tokens(1, 10))
    for cfg, message in (({"name": "cope", "p_max": 0}, r"pe\.p_max=0 must be an integer >= 1"),
                         ({"name": "cope", "pmax": 4}, r"pe=cope got unknown option\(s\) pmax")):
        with pytest.raises(ValueError, match=message):
            build_pe(cfg, d_model=D, n_heads=H, n_layers=1)


# -- randomized positions ----------------------------------------------------------------------------
def test_relabel_gives_sorted_unique_in_range_ids_per_segment():
    segments = torch.tensor([[0, 0, 0, 1, 1, 1, 1, -1], [0, 0, 0, 0, 0, 1, 1, 1]])
    pos = torch.tensor([[0, 1, 2, 0, 1, 2, 3, 0], [0, 1, 2, 3, 4, 0, 1, 2]])
    out = relabel(pos, segments, 50, np.random.default_rng(0))
    runs = []
    for r in range(2):
        for s in segments[r].unique().tolist():
            ids = out[r][segments[r] == s]
            if s < 0:
                assert torch.equal(ids, torch.tensor([0]))  # padding untouched
                continue
            assert (ids.diff() > 0).all() and int(ids.min()) >= 0 and int(ids.max()) < 50
            runs.append(tuple(ids[:3].tolist()))
    assert len(set(runs)) == len(runs)  # every example draws its own subset
    again = relabel(pos, segments, 50, np.random.default_rng(0))
    assert torch.equal(out, again)  # a function of the generator's seed
    shared = relabel(torch.tensor([[0, 2, 1, 2, 0, 1]]), torch.zeros(1, 6, dtype=torch.long), 50,
                     np.random.default_rng(1))[0]
    assert shared[1] == shared[3] and shared[2] == shared[5] and shared[0] < shared[2] < shared[1]
    with pytest.raises(ValueError, match=r"needs 8 positions but pe.max_positions_random=5"):
        relabel(torch.arange(8)[None], torch.zeros(1, 8, dtype=torch.long), 5, np.random.default_rng(0))


def test_randomized_positions_in_training_only_unless_randomize_eval():
    batch = {"input_ids": torch.zeros(2, 6, dtype=torch.long), "pos": torch.tensor([[0, 1, 2, 0, 1, 2]] * 2),
             "segments": torch.tensor([[0, 0, 0, 1, 1, 1]] * 2), "labels": torch.zeros(2, 6, dtype=torch.long)}
    pe = build_pe({"name": "nope", "randomize": True, "max_positions_random": 1000}, d_model=D, n_heads=H, n_layers=1)
    rng = np.random.default_rng(0)
    trained = batch_positions(batch, pe.random_positions, rng, training=True)
    assert not torch.equal(trained, batch["pos"]) and int(trained.max()) < 1000
    assert batch_positions(batch, pe.random_positions, rng, training=False) is batch["pos"]
    at_eval = build_pe({"name": "nope", "randomize": True, "randomize_eval": True}, d_model=D, n_heads=H,
                       n_layers=1)
    assert not torch.equal(batch_positions(batch, at_eval.random_positions, rng, training=False), batch["pos"])
    # unpacked rows (no segments): the padding after each example keeps its ids
    unpacked = {"input_ids": torch.zeros(2, 5, dtype=torch.long),
                "labels": torch.tensor([[-100, 3, 3, -100, -100], [-100, 3, 3, 3, 3]])}
    pos = batch_positions(unpacked, pe.random_positions, rng, training=True)
    assert (pos[0, :3].diff() > 0).all() and pos[0, 3:].tolist() == [3, 4] and (pos[1].diff() > 0).all()


def test_randomize_options_errors():
    with pytest.raises(ValueError, match=r"pe.max_positions_random=2048 draws ids beyond the 512 positions of pe=ape"):
        build_pe({"name": "ape", "randomize": True}, d_model=D, n_heads=H, n_layers=1)
    with pytest.raises(ValueError, match=r"randomize_eval=true needs pe.randomize=true"):
        build_pe({"name": "rope", "randomize_eval": True}, d_model=D, n_heads=H, n_layers=1)
    with pytest.raises(ValueError, match=r"pe.randomize='yes' must be true or false"):
        build_pe({"name": "rope", "randomize": "yes"}, d_model=D, n_heads=H, n_layers=1)
    pe = build_pe({"name": "ape", "max_positions": 64, "randomize": True, "max_positions_random": 64,
                   "randomize_eval": True}, d_model=D, n_heads=H, n_layers=1)
    pe.check_positions(64)
    with pytest.raises(ValueError, match=r"at most 64 positions but 65"):
        pe.check_positions(65)


# -- Abacus ----------------------------------------------------------------------------------------
def test_digit_runs_restart_at_each_number_and_continue_across_a_cache():
    is_digit = torch.tensor([[0, 1, 1, 1, 0, 1, 1, 0, 1], [1, 1, 0, 0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    runs = digit_runs(is_digit)
    assert runs.tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1], [1, 2, 0, 0, 1, 2, 3, 4, 5]]
    head = digit_runs(is_digit[:, :6])
    tail = digit_runs(is_digit[:, 6:], carry=head[:, -1])
    assert torch.cat([head, tail], 1).tolist() == runs.tolist()
    segments = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]] * 2)
    assert digit_runs(is_digit, segments)[1].tolist() == [1, 2, 0, 0, 1, 2, 3, 4, 5]
    assert digit_runs(is_digit[:, 1:], segments[:, 1:] * 0 + torch.tensor([0, 0, 1, 1, 1, 1, 1, 1]))[1].tolist() \
        == [1, 0, 0, 1, 2, 3, 4, 5]


def test_abacus_aligns_reversed_operands_and_offsets_one_k_per_example():
    task = build_task({"name": "addition", "format": {"reverse_operands": True}})
    tok = Tokenizer(task.symbols)
    ex = task.example(np.random.default_rng(3), 6)
    ids, _ = tok.encode_pair(ex.prompt, ex.target)
    pe = build_pe({"name": "abacus", "max_offset": 9}, d_model=D, n_heads=H, n_layers=1)
    pe.bind_vocabulary(["x", "y", *tok.vocab])  # digits moved: two extra symbols in front
    assert pe.digit_ids.tolist() == list(range(6, 16))
    pe.bind_vocabulary(tok.vocab)
    runs = digit_runs(torch.isin(torch.tensor([ids]), pe.digit_ids))[0].tolist()
    plus = ex.prompt.index("+") + 1  # +1: <bos>
    a, b = runs[1:plus], runs[plus + 1 : plus + 1 + ex.extra["len_b"]]
    assert a == list(range(1, len(a) + 1)) and b == list(range(1, len(b) + 1))  # units first: both start at 1
    assert runs[0] == runs[plus] == 0
    seen = {}
    pe.table.register_forward_hook(lambda m, i, o: seen.update(idx=i[0].clone()))
    x = torch.zeros(2, len(ids), D)
    both = torch.tensor([ids + ids])
    segments = torch.tensor([[0] * len(ids) + [1] * len(ids)])
    pe.train()
    torch.manual_seed(0)
    pe.token_embed(x[:1].repeat(1, 2, 1), both, segments)
    plain = digit_runs(torch.isin(both, pe.digit_ids), segments)[0]
    k = seen["idx"][0] - plain
    for s in (0, 1):
        shift = k[(segments[0] == s) & (plain > 0)]
        assert (shift == shift[0]).all() and 0 <= int(shift[0]) <= 9  # one k per example, within range
    assert (seen["idx"][0][plain == 0] == 0).all()
    pe.eval()
    pe.token_embed(x[:1].repeat(1, 2, 1), both, segments)
    assert torch.equal(seen["idx"][0], plain)  # no offset at evaluation


def test_abacus_checkpoint_keeps_its_digits_and_bad_options():
    model = make_model({"name": "abacus", "base": "rope"})
    model.bind_vocabulary(["<pad>", "<bos>", "<sep>", "<eos>", "a", "7", "b"])
    fresh = make_model({"name": "abacus", "base": "rope"}, seed=1)
    fresh.load_state_dict(model.state_dict())
    assert fresh.pe.digit_ids.tolist() == [5]
    for cfg, message in (({"name": "abacus", "base": "abacus"}, r"pe.base='abacus' is not a sequence PE"),
                         ({"name": "abacus", "max_offset": -1}, r"pe.max_offset=-1 must be an integer >= 0"),
                         ({"name": "abacus", "base": "ape", "max_positions": 0}, r"pe.max_positions=0")):
        with pytest.raises(ValueError, match=message):
            build_pe(cfg, d_model=D, n_heads=H, n_layers=1)
    small = make_model({"name": "abacus", "max_digits": 3})
    with pytest.raises(ValueError, match=r"needs digit index 4 .*pe.max_digits=3"):
        small(torch.tensor([[1, 4, 5, 6, 7]]))


# -- position coupling -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coupled(tmp_path_factory):
    data = TaskData(COUPLED, seed=2, train_lengths=range(1, 5), test_lengths=range(1, 7), n_train=40,
                    n_val_per_length=2, n_test_per_length=3, cache_dir=tmp_path_factory.mktemp("cache"))
    return data, data.split("test")


def significance(symbols: list[str]) -> list[int | None]:
    """Place value of each digit of ``a + b`` (operands reversed: units first), None for the rest."""
    out, k = [], 0
    for s in symbols:
        out.append(None if s == "+" else k)
        k = 0 if s == "+" else k + 1
    return out


def test_coupled_ids_share_one_id_per_significance(coupled):
    data, test = coupled
    store = TokenStore(test, data.tokenizer.pad_id)
    assert store.vocab == data.tokenizer.vocab
    batch = store.collate(np.arange(len(test)))
    for row, ex in enumerate(test):
        n = len(ex["input_ids"]) - 1
        pos = [*batch["pos"][row, :n].tolist(), ex["pos"][-1]]
        assert pos == ex["pos"] and pos[0] == 0
        by_place: dict[int, set[int]] = {}
        for s, p in zip(significance(ex["prompt"]) + list(range(len(ex["target"]))),
                        pos[1 : 1 + len(ex["prompt"])] + pos[2 + len(ex["prompt"]) : -1]):
            if s is not None:
                by_place.setdefault(s, set()).add(p)
        width = len(ex["prompt"]) // 2  # two padded operands and the operator
        assert all(len(ids) == 1 for ids in by_place.values())  # operands and answer agree per place
        assert [by_place[k].pop() for k in range(width + 1)] == [width + 1 - k for k in range(width + 1)]


def test_coupled_training_starts_shift_each_example_once(coupled):
    data, _ = coupled
    store = TokenStore(data.split("train"), data.tokenizer.pad_id)
    batch = store.pack(np.arange(12), width=40)
    shifted = shift_positions(batch["pos"], batch["segments"], batch["pos_shifts"], np.random.default_rng(0))
    for r in range(shifted.shape[0]):
        for s in batch["segments"][r].unique().tolist():
            cols = batch["segments"][r] == s
            d = (shifted[r, cols] - batch["pos"][r, cols])[batch["pos"][r, cols] > 0]
            if s < 0:
                assert torch.equal(shifted[r, cols], batch["pos"][r, cols])
                continue
            assert (d == d[0]).all() and 0 <= int(d[0]) < int(batch["pos_shifts"][r, cols][0])
            assert int(shifted[r, cols].max()) <= data.task.positions_max
            assert shifted[r, cols][0] == 0  # <bos> keeps id 0


def test_coupled_generation_continues_the_answer_ids(coupled):
    data, test = coupled
    model = make_model({"name": "ape", "max_positions": 32}, vocab=len(data.tokenizer))
    ex = test[len(test) - 1]
    ids, pos = torch.tensor([ex["input_ids"]]), torch.tensor([ex["pos"]])
    full = model(ids, pos=pos)
    cache = model.new_cache(1, ids.shape[1], like=model.tok.weight)
    n = ex["n_prompt"]
    steps = [model(ids[:, :n], pos=pos[:, :n], cache=cache)]
    steps += [model(ids[:, t : t + 1], pos=pos[:, t : t + 1], cache=cache) for t in range(n, ids.shape[1])]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)
    # generation feeds each answer token at its coupled id: its choices are the full forward's argmax
    n_new = len(ex["target"]) + 1
    gen = greedy_generate(model, ids[:, :n], n_new, pos=pos[:, : n + n_new])
    seq = torch.cat([ids[:, :n], gen], 1)
    assert torch.equal(model(seq, pos=pos[:, : seq.shape[1]])[:, n - 1 : -1].argmax(-1), gen)
    assert not torch.equal(gen, greedy_generate(model, ids[:, :n], n_new))  # plain ids would differ
    out = generate_targets(model, test, data.tokenizer, [len(test) - 1])[len(test) - 1]
    mine = data.tokenizer.decode(gen[0].tolist())
    mine = mine[: mine.index("<eos>")] if "<eos>" in mine else mine
    assert out[: len(mine)] == mine  # evaluation generates at the stored coupled ids too


def test_coupling_needs_its_number_format():
    for fmt, missing in (({"pad_operands": True}, "reverse_answer=true"),
                         ({"reverse_answer": True}, "zero-padded operands"),
                         ({"reverse_answer": True, "pad_width": 6, "index_hints": True}, "index_hints=false")):
        with pytest.raises(TaskConfigError, match=rf"task.positions=coupled needs .*{missing}") as info:
            build_task({**COUPLED, "format": fmt})
        assert "\n" not in str(info.value)
    with pytest.raises(TaskConfigError, match=r"task.positions=coupled is defined for addition"):
        build_task({"name": "multiplication", "positions": "coupled"})
    with pytest.raises(TaskConfigError, match=r"task copy has no position ids of its own"):
        TaskData({"name": "copy", "positions": "coupled"}, seed=1, train_lengths=[2], test_lengths=[2], n_train=1,
                 n_val_per_length=1, n_test_per_length=1)
    with pytest.raises(TaskConfigError, match=r"excludes task.format.pad_width=4"):
        build_task({"name": "addition", "format": {"pad_operands": True, "pad_width": 4}})
    with pytest.raises(TaskConfigError, match=r"task.positions_max=5 is out of range"):
        build_task({**COUPLED, "positions_max": 5})


def test_pad_operands_pads_per_example_and_the_oracle_agrees():
    task = build_task({"name": "addition", "format": {"pad_operands": True}})
    ex = task._example(np.random.default_rng(0), "7", "12345", 5)
    assert "".join(ex.prompt) == "00007+12345" and "".join(ex.target) == "012352"
    assert task.solve(ex.prompt) == ex.target
    mul = build_task({"name": "multiplication", "format": {"pad_operands": True}})
    ex = mul._example(np.random.default_rng(0), "99", "9", 2)
    assert "".join(ex.prompt) == "99*09" and "".join(ex.target) == "891" and mul.solve(ex.prompt) == ex.target


# -- end to end ------------------------------------------------------------------------------------
PES = {
    "cope": ("+pe=cope",),
    "abacus": ("+pe=abacus", "pe.base=nope"),
    "ape_randomized": ("+pe=ape", "+pe.randomize=true", "+pe.max_positions_random=512"),
}
RUNS = {
    **{f"{pe}-{task}": (f"task={task}", *args) for pe, args in PES.items() for task in ("copy", "addition")},
    "nope_coupled-addition": ("task=addition", "+pe=nope", "+task.positions=coupled",
                              "+task.format.pad_operands=true", "task.format.reverse_answer=true"),
}


@pytest.mark.parametrize("run", list(RUNS))
def test_train_end_to_end(run, tmp_path, lengen_main):
    args = tiny_overrides(tmp_path, **{"model.n_layers": 1, "trainer.max_steps": 20, "trainer.val_every": 20,
                                      "data.n_train": 500, "logger": "csv", "eval.samples": 0})
    assert lengen_main("train", *RUNS[run], *args) == 0
    (path,) = Path(tmp_path / "runs").rglob("results.parquet")
    rows = pd.read_parquet(path)
    assert rows["loss"].notna().all() and set(rows["eval_length"]) == set(range(1, 11))
    if run.startswith("abacus"):  # the run's vocabulary reached the checkpoint: copy has no digits
        state = torch.load(path.parent / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        assert state["model.pe.digit_ids"].tolist() == ([] if run.endswith("copy") else list(range(4, 14)))
