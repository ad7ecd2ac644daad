"""The decoder itself: KV-cache generation and chunked prefill against full forwards, dropout,
architecture variants and config errors."""

from __future__ import annotations

import pytest
import torch

from lengen.model.config import ModelConfig
from lengen.model.generation import greedy_generate
from lengen.model.positional import build_pe
from lengen.model.transformer import Transformer

VOCAB, D, H, N_LAYERS = 20, 32, 4, 2
PE_CFGS = {
    "nope": {"name": "nope"},
    "ape": {"name": "ape", "max_positions": 64},
    "sinusoidal": {"name": "sinusoidal"},
    "t5": {"name": "t5"},
    "t5_per_layer": {"name": "t5", "shared": False},
    "alibi": {"name": "alibi"},
    "rope": {"name": "rope", "fraction": 0.5},
    "cope": {"name": "cope", "p_max": 8},
    "abacus_t5": {"name": "abacus", "base": "t5"},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead, and spin badly on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(pe: str = "nope", seed: int = 0, **model_kw) -> Transformer:
    torch.manual_seed(seed)
    kw = {"vocab_size": VOCAB, "d_model": D, "n_heads": H, "n_layers": N_LAYERS, "d_ff": 64, **model_kw}
    cfg = ModelConfig(**kw)
    model = Transformer(
        cfg, build_pe(PE_CFGS[pe], d_model=cfg.d_model, n_heads=cfg.n_heads, n_layers=cfg.n_layers)
    )
    with torch.no_grad():  # larger than the training init, so that greedy paths vary and positions matter
        for p in model.parameters():
            if p.dim() > 1:  # matrices and tables; norms keep their identity init
                p.normal_(0.0, 0.3)
    return model.double().eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def greedy_without_cache(model: Transformer, prompt: torch.Tensor, n: int) -> torch.Tensor:
    seq = prompt
    with torch.no_grad():
        for _ in range(n):
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[:, prompt.shape[1] :]


@pytest.mark.parametrize("pe", list(PE_CFGS))
def test_cached_greedy_generation_matches_full_forwards(pe):
    model, prompt = make_model(pe), tokens(3, 6)
    out = greedy_generate(model, prompt, max_new_tokens=10)
    assert out.shape == (3, 10)
    assert torch.equal(out, greedy_without_cache(model, prompt, 10))
    assert len(set(out.flatten().tolist())) > 1  # a non-trivial path


def test_greedy_generation_eos_keeps_emitting_and_stops():
    model, prompt = make_model("alibi"), tokens(3, 6)
    reference = greedy_without_cache(model, prompt, 8)
    eos = int(reference[0, 1])
    out = greedy_generate(model, prompt, max_new_tokens=8, eos_id=eos)
    for row, ref in zip(out, reference):
        hits = (ref == eos).nonzero()
        if len(hits):
            first = int(hits[0])
            assert torch.equal(row[: first + 1], ref[: first + 1])
            assert (row[first:] == eos).all()
        else:
            assert torch.equal(row, ref[: len(row)])


@pytest.mark.parametrize("pe", list(PE_CFGS))
@pytest.mark.parametrize("block", [None, 3])
def test_chunked_cached_forward_equals_full_forward(pe, block):
    kw = {} if block is None else {"bias_block_elements": H * 16 * block}  # ~3 queries per bias block
    model, x = make_model(pe, **kw), tokens(2, 16)
    pos = torch.arange(16)[None] + 5  # explicit, shifted positions must flow through the cache too
    full = model(x, pos=pos)
    cache = model.new_cache(2, 16, like=model.tok.weight)
    parts = [model(x[:, a:b], pos=pos[:, a:b], cache=cache) for a, b in ((0, 7), (7, 11), (11, 12), (12, 16))]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-10, atol=1e-10)
    assert cache.length() == 16


def test_cache_overflow_raises():
    model = make_model("rope")
    cache = model.new_cache(1, 4, like=model.tok.weight)
    model(tokens(1, 3), cache=cache)
    with pytest.raises(ValueError, match="KV cache holds 4 positions; 5 requested"):
        model(tokens(1, 2), cache=cache)


@pytest.mark.parametrize("pe", ["nope", "t5", "rope"])
def test_dropout_only_in_train_mode(pe):
    model, x = make_model(pe, dropout=0.3), tokens(2, 12)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    plain = make_model(pe)  # same seed, same weights, no dropout at all
    torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "variant",
    [
        {"activation": "relu"},
        {"activation": "gelu"},
        {"activation": "swiglu"},
        {"norm": "rmsnorm"},
        {"norm": "layernorm", "bias": False},
        {"activation": "swiglu", "norm": "rmsnorm", "bias": False, "tie_embeddings": False},
        {"tie_embeddings": False},
    ],
)
def test_architecture_variants_build_and_run(variant):
    model = make_model("t5", **variant)
    logits = model(tokens(2, 9))
    assert logits.shape == (2, 9, VOCAB) and torch.isfinite(logits).all()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if variant.get("bias", True) is False:
        assert all(m.bias is None for m in linears)
    assert (model.head.weight is model.tok.weight) == variant.get("tie_embeddings", True)
    if variant.get("norm") == "rmsnorm":
        assert isinstance(model.norm, torch.nn.RMSNorm)
    if variant.get("activation") == "swiglu":
        assert model.blocks[0].mlp.up.out_features == 2 * model.cfg.d_ff
    model.train()
    model(tokens(2, 9)).sum().backward()


def test_d_model_not_divisible_by_heads_names_both():
    with pytest.raises(ValueError, match=r"d_model=30.*n_heads=4"):
        ModelConfig(vocab_size=VOCAB, d_model=30, n_heads=4)


@pytest.mark.parametrize(("key", "value"), [("activation", "tanh"), ("norm", "batchnorm")])
def test_unknown_activation_or_norm_raises(key, value):
    with pytest.raises(ValueError, match=f"model.{key}='{value}' is unknown"):
        ModelConfig(vocab_size=VOCAB, **{key: value})
