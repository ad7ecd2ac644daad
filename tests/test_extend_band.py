"""Attention-pattern methods (LM-Infinite, Self-Extend, sliding window) and the logit scale.

Every check runs on the real model path (``Transformer`` with the method installed), including
the blocked long-context path (a tiny ``bias_block_elements`` forces many query blocks), and is
compared with a dense reference written here: explicit logits from raw queries and keys rotated
(or biased) at the positions the published method prescribes, softmax, values.
"""

from __future__ import annotations

import math

import pytest
import torch

from lengen.extend import build
from lengen.model.attention import BandedAttention
from lengen.model.config import ModelConfig
from lengen.model.generation import greedy_generate
from lengen.model.positional import build_pe
from lengen.model.transformer import Transformer
from tests.test_model import _one_thread  # noqa: F401  (autouse: one torch thread for tiny tensors)

VOCAB, D, H = 13, 16, 2
PES = {"rope": {"name": "rope"}, "alibi": {"name": "alibi"}, "t5": {"name": "t5", "num_buckets": 8, "max_distance": 16},
       "nope": {"name": "nope"}}


def make_model(pe: str, block_elements: int = 1 << 22, n_layers: int = 2, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=VOCAB, d_model=D, n_heads=H, n_layers=n_layers, d_ff=32,
                      bias_block_elements=block_elements)
    model = Transformer(cfg, build_pe(PES[pe], d_model=D, n_heads=H, n_layers=n_layers))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.4)
    return model.double().eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def capture_plans(model: Transformer) -> list[BandedAttention]:
    """Record the BandedAttention of every forward."""
    plans = []
    original = model._override

    def spy(*args):
        out = original(*args)
        plans.append(out.band if out is not None else None)
        return out

    model._override = spy
    return plans


def dense_visibility(plan: BandedAttention, lq: int, lk: int) -> torch.Tensor:
    """``[Lq, Lk]``: which keys each query sees, assembled from the blocks the model ran."""
    seen = torch.zeros(lq, lk, dtype=torch.bool)
    for qs in range(0, lq, plan.block):
        qe = min(lq, qs + plan.block)
        near, far, (a, b), (c, d) = plan.masks(qs, qe)
        seen[qs:qe, a:b] |= near[0, 0]
        seen[qs:qe, c:d] |= far[0, 0]
        # a key pair is never in both branches
        both = torch.zeros(qe - qs, lk, dtype=torch.bool)
        both[:, a:b] |= near[0, 0]
        assert not (both[:, c:d] & far[0, 0]).any()
    return seen


# -- LM-Infinite: exactly the global + window keys --------------------------------------------------

@pytest.mark.parametrize("length", [5, 16, 17, 40, 97])
@pytest.mark.parametrize("blocks", [1 << 22, 200])
@pytest.mark.parametrize("pe", ["rope", "alibi", "nope"])
def test_lm_infinite_sees_exactly_global_and_window_keys(length, blocks, pe):
    window, n_global = 16, 3
    model = make_model(pe, block_elements=blocks)
    build({"name": "lm_infinite", "n_global": n_global, "window": window}).install(model, original_length=16)
    plans = capture_plans(model)
    model(tokens(1, length))
    plan = plans[0]
    if length <= window:
        assert plan is None  # nothing outside the window: the ordinary attention path
        return
    if blocks == 200:
        assert plan.block < length  # the blocked path really ran
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    expected = (j <= i) & ((i - j < window) | (j < n_global))
    assert torch.equal(dense_visibility(plan, length, length), expected)
    assert (dense_visibility(plan, length, length).sum(1) <= window + n_global).all()


# -- a dense reference of the whole attention ----------------------------------------------------------

def reference_attention(model: Transformer, layer: int, x: torch.Tensor, pair_positions) -> torch.Tensor:
    """One attention layer computed densely: ``pair_positions(i, j) -> (qp, kp) or None`` (unseen)."""
    attn = model.blocks[layer].attn
    b, length, d = x.shape
    qkv = attn.qkv(x).view(b, length, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    pe = model.pe
    logits = torch.full((b, attn.n_heads, length, length), float("-inf"), dtype=x.dtype)
    for i in range(length):
        for j in range(length):
            where = pair_positions(i, j)
            if where is None:
                continue
            qp, kp = where
            qi, kj = q[:, :, i : i + 1], k[:, :, j : j + 1]
            if pe.has_rotate:
                qi, kj = pe.rotate(qi, torch.tensor([[qp]])), pe.rotate(kj, torch.tensor([[kp]]))
            value = (qi * kj).sum(-1)[..., 0] / math.sqrt(attn.head_dim)
            if pe.has_bias:
                value = value + pe.bias(torch.tensor([[qp]]), torch.tensor([[kp]]), layer)[:, :, 0, 0]
            logits[:, :, i, j] = value
    y = torch.softmax(logits, -1) @ v
    return attn.out(y.transpose(1, 2).reshape(b, length, d))


def layer_input(model: Transformer, ids: torch.Tensor) -> torch.Tensor:
    return model.blocks[0].norm1(model.tok(ids))


def model_attention(model: Transformer, ids: torch.Tensor) -> torch.Tensor:
    """The first layer's attention output through the model's own path (extension included)."""
    out = {}
    handle = model.blocks[0].attn.register_forward_hook(lambda m, a, o: out.setdefault("y", o))
    model(ids)
    handle.remove()
    return out["y"]


@pytest.mark.parametrize("pe", ["rope", "alibi", "t5", "nope"])
@pytest.mark.parametrize("blocks", [1 << 22, 300])
def test_lm_infinite_equals_dense_reference(pe, blocks):
    window, n_global, distance, length = 8, 2, 7, 23
    model = make_model(pe, block_elements=blocks)
    build({"name": "lm_infinite", "n_global": n_global, "window": window, "distance": distance}).install(
        model, original_length=8)
    ids = tokens(2, length)

    def positions(i, j):
        if j > i:
            return None
        if i - j < window:
            return i, j
        return (distance, 0) if j < n_global else None  # LM-Infinite: query at limit_distance, key unrotated

    expected = reference_attention(model, 0, layer_input(model, ids), positions)
    torch.testing.assert_close(model_attention(model, ids), expected)


# -- Self-Extend: the published positions -------------------------------------------------------------

def test_self_extend_far_positions_are_the_published_formula():
    method = build({"name": "self_extend", "group": 3, "window": 5})
    method.install(make_model("rope"), original_length=20)
    band = method.band(None, None)
    pos = torch.arange(40)[None]
    assert torch.equal(band.far_q(pos), pos // 3 + 5 - 5 // 3)
    assert torch.equal(band.far_k(pos), pos // 3)


def longlm_neighbor_mask(length: int, window: int) -> torch.Tensor:
    """datamllab/LongLM self_extend_patch/Llama.py: neighbor_attention_mask for q_len == kv_seq_len."""
    neighbor = torch.ones((length, length)).tril()
    if length - window > 0:
        group = torch.ones((length - window, length - window)).tril()
        neighbor[window:, :-window] -= group
    return neighbor.bool()


@pytest.mark.parametrize("pe", ["rope", "alibi", "t5"])
@pytest.mark.parametrize("blocks", [1 << 22, 300])
def test_self_extend_equals_dense_reference(pe, blocks):
    group, window, length = 3, 5, 22
    model = make_model(pe, block_elements=blocks)
    build({"name": "self_extend", "group": group, "window": window}).install(model, original_length=12)
    ids = tokens(2, length)
    neighbor = longlm_neighbor_mask(length, window)

    def positions(i, j):
        if j > i:
            return None
        if neighbor[i, j]:
            return i, j
        return i // group + window - window // group, j // group

    plans = capture_plans(model)
    expected = reference_attention(model, 0, layer_input(model, ids), positions)
    torch.testing.assert_close(model_attention(model, ids), expected)
    near = torch.zeros(length, length, dtype=torch.bool)
    plan = plans[0]
    for qs in range(0, length, plan.block):
        qe = min(length, qs + plan.block)
        n, _, (a, b), _ = plan.masks(qs, qe)
        near[qs:qe, a:b] |= n[0, 0]
    assert torch.equal(near, neighbor)  # the neighbour branch is LongLM's mask


@pytest.mark.parametrize("pe", ["rope", "alibi", "nope"])
def test_sliding_window_equals_dense_reference(pe):
    window, length = 6, 19
    model = make_model(pe, block_elements=300)
    build({"name": "sliding_window", "window": window}).install(model, original_length=6)
    ids = tokens(2, length)
    expected = reference_attention(model, 0, layer_input(model, ids),
                                   lambda i, j: (i, j) if 0 <= i - j < window else None)
    torch.testing.assert_close(model_attention(model, ids), expected)


# -- consistency: teacher forcing == cached greedy generation ------------------------------------------

@pytest.mark.parametrize("spec", [{"name": "lm_infinite", "n_global": 2, "window": 5},
                                  {"name": "self_extend", "group": 2, "window": 4},
                                  {"name": "sliding_window", "window": 5},
                                  {"name": "temperature"}, {"name": "yarn", "factor": 4},
                                  {"name": "pi", "factor": 2}])
@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_cached_generation_matches_full_forwards_under_a_method(spec, pe):
    """Static methods keep lengen's exactness argument: a KV-cache step sees what a full forward sees."""
    model = make_model(pe)
    method = build(spec)
    try:
        method.install(model, original_length=6)
    except Exception as exc:  # rotary-only methods on alibi: refused, which another test checks
        assert spec["name"] in ("yarn", "pi") and pe == "alibi", exc
        return
    prompt = tokens(2, 5)
    out = greedy_generate(model, prompt, max_new_tokens=12)
    seq = prompt
    with torch.no_grad():
        for _ in range(12):
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq[:, 5:])


# -- the logit scale -----------------------------------------------------------------------------------

def test_temperature_scales_logits_by_log_length_beyond_training():
    model = make_model("nope", n_layers=1)
    method = build({"name": "temperature"})
    method.install(model, original_length=8)
    scale = method.logit_scale(torch.arange(20)[None])
    expected = [max(1.0, math.log(p + 1) / math.log(8)) for p in range(20)]
    torch.testing.assert_close(scale.flatten().double(), torch.tensor(expected, dtype=torch.float64))
    assert (scale.flatten()[:8] == 1).all()

    ids = tokens(2, 20)
    x = layer_input(model, ids)
    attn = model.blocks[0].attn
    q, k, v = attn.qkv(x).view(2, 20, 3, H, D // H).permute(2, 0, 3, 1, 4).unbind(0)
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(D // H) * torch.tensor(expected, dtype=x.dtype)[:, None]
    logits = logits.masked_fill(torch.ones(20, 20, dtype=torch.bool).triu(1), float("-inf"))
    expected_y = attn.out((torch.softmax(logits, -1) @ v).transpose(1, 2).reshape(2, 20, D))
    torch.testing.assert_close(model_attention(model, ids), expected_y)


def test_fixed_temperature_divides_every_logit():
    method = build({"name": "temperature", "temperature": 0.5})
    method.install(make_model("nope"), original_length=8)
    assert method.logit_scale(torch.arange(4)[None]) == 2.0


def test_yarn_scales_logits_by_the_square_of_its_attention_factor():
    model = make_model("rope", n_layers=1)
    ids = tokens(1, 9)
    method = build({"name": "yarn", "factor": 4})
    method.install(model, original_length=6)
    plain = make_model("rope", n_layers=1)
    plain.pe.set_frequencies(model.pe._frequencies)  # same frequencies, no logit scale
    attn_p = plain.blocks[0].attn
    x = layer_input(plain, ids)
    q, k, v = attn_p.qkv(x).view(1, 9, 3, H, D // H).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = plain.pe.rotate(q, torch.arange(9)[None]), plain.pe.rotate(k, torch.arange(9)[None])
    factor = 0.1 * math.log(4) + 1
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(D // H) * factor**2
    logits = logits.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    expected = attn_p.out((torch.softmax(logits, -1) @ v).transpose(1, 2).reshape(1, 9, D))
    torch.testing.assert_close(model_attention(model, ids), expected)


# -- no dense [heads, L, L] at long lengths ------------------------------------------------------------

@pytest.mark.parametrize("name", ["lm_infinite", "sliding_window"])
def test_windowed_methods_attend_to_a_bounded_key_span(name):
    """Blocks see at most window + block + n_global keys, whatever the length."""
    model = make_model("rope", n_layers=1)
    build({"name": name, "window": 16}).install(model, original_length=16)
    plans = capture_plans(model)
    model(tokens(1, 600))
    plan = plans[0]
    widest = 0
    for qs in range(0, 600, plan.block):
        _, _, (a, b), (c, d) = plan.masks(qs, min(600, qs + plan.block))
        widest = max(widest, (b - a) + (d - c))
    assert widest <= 16 + plan.block + 10
