"""The CUDA block-sparse attention path (``lengen.model.flex_attention``) computes what the dense
SDPA path does -- checked here on the CPU, where FlexAttention runs uncompiled (forward only) --
and is taken only where it applies."""

from __future__ import annotations

import pytest
import torch

from lengen.model import flex_attention
from lengen.model.attention import AttentionBias
from lengen.model.build import build_model
from lengen.model.transformer import packed_causal_mask

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

MODEL = {"d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 64}
VOCAB = 11


def packed_batch(rows: int = 3, width: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    """Rows of several examples each (positions from 0 per example) and padding at the end (segment -1)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (rows, width), generator=g)
    pos = torch.zeros(rows, width, dtype=torch.long)
    seg = torch.full((rows, width), -1, dtype=torch.long)
    for r in range(rows):
        off, slot = 0, 0
        while True:
            n = int(torch.randint(3, 12, (1,), generator=g))
            if off + n > width - 3:
                break
            pos[r, off : off + n], seg[r, off : off + n] = torch.arange(n), slot
            off, slot = off + n, slot + 1
    return {"input_ids": ids, "pos": pos, "segments": seg}


def flex_everywhere(monkeypatch) -> None:
    """Take the flex path on the CPU too (the dispatch is CUDA-only)."""
    monkeypatch.setattr(flex_attention, "applies", flex_attention.eligible)


@pytest.mark.parametrize("pe", ["nope", "rope", "t5", "alibi", "fire", "kerple", "rope_alibi"])
@pytest.mark.parametrize("packed", [True, False])
def test_model_logits_equal_the_dense_path(monkeypatch, pe, packed):
    torch.manual_seed(0)
    model = build_model(MODEL, {"name": pe}, VOCAB).eval()
    batch = packed_batch()
    kwargs = {"pos": batch["pos"], "segments": batch["segments"]} if packed else {}
    with torch.no_grad():
        dense = model(batch["input_ids"], **kwargs)
        flex_everywhere(monkeypatch)
        calls = []
        real = flex_attention.attend
        monkeypatch.setattr(flex_attention, "attend", lambda *a: calls.append(1) or real(*a))
        flex = model(batch["input_ids"], **kwargs)
    takes_flex = packed or model.pe.has_bias  # nope/rope unpacked keep SDPA's is_causal kernel
    assert len(calls) == (MODEL["n_layers"] if takes_flex else 0)
    torch.testing.assert_close(flex, dense, atol=1e-5, rtol=1e-4)


def test_bias_table_is_indexed_by_each_rows_own_positions():
    """Shifted, per-row positions (a batch whose rows start at different offsets) read the right
    distances, and a learned bias (t5, per-layer tables) matches the dense bias layer by layer."""
    torch.manual_seed(0)
    model = build_model(MODEL, {"name": "t5", "shared": False}, VOCAB).eval()
    b, h, length, dh = 2, 2, 24, 16
    q, k, v = (torch.randn(b, h, length, dh) for _ in range(3))
    pos = torch.stack([torch.arange(length) + 5, torch.arange(length) + 40])
    for layer in range(2):
        bias = AttentionBias(model.pe, pos, pos, 0, torch.float32, 10**9)
        (_, _, dense_mask), = list(bias.blocks(layer))
        dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense_mask)
        with torch.no_grad():
            flex = flex_attention.attend(q, k, v, bias, None, layer, None)
        torch.testing.assert_close(flex, dense, atol=1e-5, rtol=1e-4)


def test_packed_mask_without_bias_matches_sdpa():
    batch = packed_batch(rows=2, width=33, seed=4)
    mask = packed_causal_mask(batch["segments"])
    q, k, v = (torch.randn(2, 2, 33, 16) for _ in range(3))
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(flex_attention.attend(q, k, v, None, mask, 0, None), dense, atol=1e-5, rtol=1e-4)


def test_applies_only_on_cuda_and_where_exact(monkeypatch):
    model = build_model(MODEL, {"name": "t5"}, VOCAB)
    pos = torch.arange(8)[None]
    bias = AttentionBias(model.pe, pos, pos, 0, torch.float32, 10**9)
    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    q = torch.zeros(1, 2, 8, 16)
    assert not flex_attention.applies(q, bias, None, 0.0, 0, None, None)  # CPU: unchanged
    assert flex_attention.eligible(q, bias, None, 0.0, 0, None, None)
    assert flex_attention.eligible(q, None, mask, 0.0, 0, None, None)
    assert not flex_attention.eligible(q, None, None, 0.0, 0, None, None)  # plain causal: SDPA is_causal
    assert not flex_attention.eligible(q, bias, None, 0.1, 0, None, None)  # attention dropout: no flex
    assert not flex_attention.eligible(q, bias, None, 0.0, 3, None, None)  # KV cache
    assert not flex_attention.eligible(q, bias, None, 0.0, 0, object(), None)  # evaluation-time override
    assert not flex_attention.eligible(q, bias, None, 0.0, 0, None, print)  # attention recorder
    cope = build_model(MODEL, {"name": "cope"}, VOCAB)
    cope_bias = AttentionBias(cope.pe, pos, pos, 0, torch.float32, 10**9)
    assert not flex_attention.eligible(q, cope_bias, None, 0.0, 0, None, None)  # contextual: dense path
    fire = build_model(MODEL, {"name": "fire"}, VOCAB)
    far = torch.arange(8)[None] * 600  # positions spanning 4,200: a [H, P, P] table would be too big
    assert flex_attention.eligible(q, AttentionBias(fire.pe, pos, pos, 0, torch.float32, 10**9), None, 0.0, 0,
                                   None, None)
    assert not flex_attention.eligible(q, AttentionBias(fire.pe, far, far, 0, torch.float32, 10**9), None, 0.0,
                                       0, None, None)
