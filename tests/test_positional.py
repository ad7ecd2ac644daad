"""Property tests of every positional encoding, on tiny float64 models."""

from __future__ import annotations

import math

import pytest
import torch

from lengen.model.attention import AttentionBias
from lengen.model.config import ModelConfig
from lengen.model.positional import PE_CLASSES, build_pe
from lengen.model.positional.alibi import alibi_slopes
from lengen.model.positional.rope import Rotary
from lengen.model.positional.sinusoidal import Sinusoidal
from lengen.model.positional.t5 import T5RelativeBias, relative_position_bucket
from lengen.model.transformer import Transformer

VOCAB, D, H, N_LAYERS = 20, 32, 4, 2
PE_CFGS = {
    "nope": {"name": "nope"},
    "ape": {"name": "ape", "max_positions": 64},
    "sinusoidal": {"name": "sinusoidal"},
    "t5": {"name": "t5"},
    "t5_per_layer": {"name": "t5", "shared": False},
    "alibi": {"name": "alibi"},
    "rope": {"name": "rope"},
    "rope_quarter": {"name": "rope", "fraction": 0.25},
    # fire depends on the query position beyond its threshold L: not relative (tests/test_pe_followups.py)
    "fire": {"name": "fire", "init_L": 4.0},
    "fire_per_layer": {"name": "fire", "per_layer": True},
    "kerple": {"name": "kerple"},
    "kerple_power": {"name": "kerple", "variant": "power", "per_layer": False},
    "xpos": {"name": "xpos", "fraction": 0.5},
    "rope_alibi": {"name": "rope_alibi"},
    "rope_alibi_harmonic": {"name": "rope_alibi", "slopes": "harmonic"},
    # cope and abacus(nope) never read position ids (tests/test_pe_positions.py)
    "cope": {"name": "cope", "p_max": 8},
    "abacus": {"name": "abacus"},
    "abacus_rope": {"name": "abacus", "base": "rope"},
}
RELATIVE = ["nope", "t5", "t5_per_layer", "alibi", "rope", "rope_quarter",
            "kerple", "kerple_power", "xpos", "rope_alibi", "rope_alibi_harmonic", "abacus_rope"]
ABSOLUTE = ["ape", "sinusoidal"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead, and spin badly on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(pe: str, seed: int = 0, **model_kw) -> Transformer:
    """A tiny eval-mode float64 model whose weights are large enough for positions to matter."""
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=VOCAB, d_model=D, n_heads=H, n_layers=N_LAYERS, d_ff=64, **model_kw)
    model = Transformer(cfg, build_pe(PE_CFGS[pe], d_model=D, n_heads=H, n_layers=N_LAYERS))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:  # matrices and tables; norms keep their identity init
                p.normal_(0.0, 0.3)
    return model.double().eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_every_registered_pe_is_covered():
    assert {cfg["name"] for cfg in PE_CFGS.values()} == set(PE_CLASSES)


@pytest.mark.parametrize("pe", list(PE_CFGS))
def test_logits_shape_and_finite(pe):
    model = make_model(pe)
    logits = model(tokens(3, 17))
    assert logits.shape == (3, 17, VOCAB)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("pe", RELATIVE)
def test_relative_pe_is_shift_invariant(pe):
    model, x = make_model(pe), tokens(2, 16)
    assert build_pe(PE_CFGS[pe], d_model=D, n_heads=H, n_layers=N_LAYERS).relative
    base = model(x, pos=torch.arange(16)[None])
    for shift in (1, 7, 1000):
        torch.testing.assert_close(model(x, pos=torch.arange(16)[None] + shift), base, rtol=1e-9, atol=1e-9)
    if pe != "nope":  # the PE is really used: stretching the positions changes the logits
        assert not torch.allclose(model(x, pos=2 * torch.arange(16)[None]), base, atol=1e-6)


@pytest.mark.parametrize("pe", ABSOLUTE)
def test_absolute_pe_is_not_shift_invariant(pe):
    model, x = make_model(pe), tokens(2, 16)
    assert not model.pe.relative
    base = model(x, pos=torch.arange(16)[None])
    assert not torch.allclose(model(x, pos=torch.arange(16)[None] + 5), base, atol=1e-6)


@pytest.mark.parametrize("pe", list(PE_CFGS))
def test_causal_masking(pe):
    model, x = make_model(pe), tokens(2, 14)
    base = model(x)
    for t in (0, 5, 13):
        changed = x.clone()
        changed[:, t] = (changed[:, t] + 1) % VOCAB
        out = model(changed)
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-12)
        assert not torch.allclose(out[:, t], base[:, t])


@pytest.mark.parametrize("pe", list(PE_CFGS))
def test_backward_reaches_pe_parameters(pe):
    model = make_model(pe).train()
    model(tokens(2, 9)).logsumexp(-1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for p in model.pe.parameters():
        assert p.grad.abs().sum() > 0


# -- T5 ------------------------------------------------------------------------------------------
# Causal, 32 buckets, max distance 128: max_exact = 16; distance n >= 16 goes to
# 16 + floor(log(n/16) / log(128/16) * 16) = 16 + floor(16/3 * log2(n/16)), capped at 31.
CAUSAL_TABLE = {
    **{n: n for n in range(16)},
    16: 16,  # log2(1) = 0
    20: 17,  # 16/3 * 0.3219 = 1.72
    32: 21,  # 16/3 * 1 = 5.33
    64: 26,  # 16/3 * 2 = 10.67
    100: 30,  # 16/3 * 2.644 = 14.10
    127: 31,  # 16/3 * 2.989 = 15.94
    128: 31,  # 16 + 16 = 32, capped
    200: 31,
    1000: 31,
}
# Bidirectional, 32 buckets: 16 per direction, keys after the query (relative > 0) offset by 16;
# max_exact = 8, |r| >= 8 -> 8 + floor(log(|r|/8) / log(16) * 8) = 8 + floor(2 * log2(|r|/8)), cap 15.
BIDIRECTIONAL_TABLE = {
    0: 0,
    -3: 3,
    3: 19,
    -7: 7,
    -8: 8,
    8: 24,
    -12: 9,  # 2 * 0.585 = 1.17
    -16: 10,  # 2 * 1 = 2 (exact boundary)
    16: 26,
    -32: 12,
    32: 28,
    30: 27,  # 2 * 1.907 = 3.81 -> 11, + 16
    -40: 12,  # 2 * 2.32 = 4.64
    -64: 14,
    -100: 15,  # 2 * 3.64 = 7.29
    -127: 15,
    -128: 15,  # 8 + 8 = 16, capped
    1000: 31,
    -1000: 15,
}


def test_t5_causal_bucket_table():
    dist = torch.tensor(list(CAUSAL_TABLE))
    got = relative_position_bucket(-dist, bidirectional=False, num_buckets=32, max_distance=128)
    assert got.tolist() == list(CAUSAL_TABLE.values())
    # causal: keys after the query (never attended anyway) share bucket 0
    assert relative_position_bucket(dist, False, 32, 128).tolist() == [0] * len(dist)


def test_t5_bidirectional_bucket_table():
    rel = torch.tensor(list(BIDIRECTIONAL_TABLE))
    got = relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
    assert got.tolist() == list(BIDIRECTIONAL_TABLE.values())


def test_t5_buckets_are_monotone_and_in_range():
    n = torch.arange(5000)
    b = relative_position_bucket(-n, False, 32, 128)
    assert (b.diff() >= 0).all() and b.min() == 0 and b.max() == 31
    assert set(b.tolist()) == set(range(32))


def test_t5_shared_vs_per_layer_parameters_and_calls(monkeypatch):
    n_params = {}
    for shared in (True, False):
        pe = T5RelativeBias(d_model=D, n_heads=H, n_layers=3, shared=shared)
        n_params[shared] = sum(p.numel() for p in pe.parameters())
        assert pe.shared_bias is shared
        assert len(pe.tables) == (1 if shared else 3)
    assert n_params[True] == 32 * H
    assert n_params[False] == 3 * 32 * H

    for pe_name, expected_layers in (("t5", [0]), ("t5_per_layer", list(range(N_LAYERS)))):
        model = make_model(pe_name)
        calls = []
        original = model.pe.bias

        def spy(q_pos, k_pos, layer=0, original=original, calls=calls):
            calls.append(layer)
            return original(q_pos, k_pos, layer)

        monkeypatch.setattr(model.pe, "bias", spy)
        model(tokens(2, 10))
        assert calls == expected_layers


def test_t5_bias_values_shapes_and_layers():
    pe = T5RelativeBias(d_model=D, n_heads=H, n_layers=2, shared=False).double()
    with torch.no_grad():
        for i, table in enumerate(pe.tables):
            table.weight.copy_(torch.randn(32, H, dtype=torch.float64) + 10 * i)
    q, k = torch.arange(3, 9)[None], torch.arange(0, 9)[None]
    for layer in (0, 1):
        bias = pe.bias(q, k, layer)
        assert bias.shape == (1, H, 6, 9)
        for i, j in ((0, 0), (5, 8), (5, 0), (2, 1)):
            bucket = relative_position_bucket(torch.tensor(int(k[0, j] - q[0, i])), False, 32, 128)
            torch.testing.assert_close(bias[0, :, i, j], pe.tables[layer].weight[bucket])
    batched = pe.bias(q.expand(3, -1), k.expand(3, -1))
    assert batched.shape == (3, H, 6, 9)
    torch.testing.assert_close(batched, pe.bias(q, k).expand(3, -1, -1, -1))


# -- ALiBi ---------------------------------------------------------------------------------------
def test_alibi_slopes_power_of_two():
    expected = torch.tensor([2.0**-i for i in range(1, 9)], dtype=torch.float64)
    torch.testing.assert_close(alibi_slopes(8), expected, rtol=1e-12, atol=0)


def test_alibi_slopes_non_power_of_two():
    # 12 heads: the 8-head slopes 2^-1..2^-8, then every other 16-head slope
    # (2^-0.5, 2^-1, 2^-1.5, ...)[0::2] = 2^-0.5, 2^-1.5, ... truncated to 12 - 8 = 4.
    expected12 = [2.0**-i for i in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]
    torch.testing.assert_close(
        alibi_slopes(12), torch.tensor(expected12, dtype=torch.float64), rtol=1e-12, atol=0
    )
    # 6 heads: 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then 8-head slopes [0::2][:2] = 2^-1, 2^-3.
    expected6 = [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    torch.testing.assert_close(
        alibi_slopes(6), torch.tensor(expected6, dtype=torch.float64), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(alibi_slopes(1), torch.tensor([2.0**-8], dtype=torch.float64))


def test_alibi_bias_values_and_no_parameters():
    pe = build_pe({"name": "alibi"}, d_model=D, n_heads=8, n_layers=1)
    assert sum(p.numel() for p in pe.parameters()) == 0
    assert "slopes" not in pe.state_dict()
    q, k = torch.arange(4, 7)[None], torch.arange(0, 7)[None]
    bias = pe.bias(q, k)
    assert bias.shape == (1, 8, 3, 7) and bias.dtype == torch.get_default_dtype()
    for h in range(8):
        for i in range(3):
            for j in range(7):
                assert bias[0, h, i, j].item() == pytest.approx(
                    -(2.0 ** -(h + 1)) * (q[0, i] - k[0, j]).item()
                )
    assert pe.bias(q.expand(2, -1), k.expand(2, -1)).shape == (2, 8, 3, 7)


# -- RoPE ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("head_dim", "fraction", "rot"), [(16, 1.0, 16), (16, 0.25, 4), (16, 0.4, 6), (10, 0.3, 2)]
)
def test_rope_rotates_only_fraction_and_preserves_norm(head_dim, fraction, rot):
    pe = Rotary(d_model=head_dim * 2, n_heads=2, n_layers=1, fraction=fraction)
    assert pe.rot == rot
    torch.manual_seed(0)
    x = torch.randn(3, 2, 11, head_dim, dtype=torch.float64)
    pos = torch.randint(0, 5000, (3, 11))
    y = pe.rotate(x, pos)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert torch.equal(y[..., rot:], x[..., rot:])
    for i in range(0, rot, 2):  # each rotated pair (2j, 2j + 1) keeps its length
        pair = lambda t, i=i: t[..., [i, i + 1]].norm(dim=-1)  # noqa: E731
        torch.testing.assert_close(pair(y), pair(x))
    assert not torch.allclose(y[..., :rot], x[..., :rot])
    torch.testing.assert_close(pe.rotate(x, torch.zeros_like(pos)), x)  # position 0 is the identity


def test_rope_interleaved_pair_convention():
    pe = Rotary(d_model=4, n_heads=1, n_layers=1, base=100.0)
    x = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64).view(1, 1, 1, 4)
    y = pe.rotate(x, torch.tensor([[3]]))
    # dims (0, 1) rotate at frequency base^0 = 1 (3 rad), dims (2, 3) at base^(-2/4) = 0.1 (0.3 rad)
    expected = [math.cos(3), math.sin(3), math.cos(0.3), math.sin(0.3)]
    torch.testing.assert_close(y.flatten(), torch.tensor(expected, dtype=torch.float64))


def test_rope_rotates_stacked_queries_and_keys_like_each_alone():
    pe = Rotary(d_model=24, n_heads=2, n_layers=1, fraction=0.5)
    qkv = torch.randn(2, 5, 3, 2, 12, dtype=torch.float64).permute(2, 0, 3, 1, 4)  # as the model lays it out
    pos = torch.randint(0, 100, (2, 5))
    q, k = pe.rotate(qkv[:2], pos).unbind(0)
    torch.testing.assert_close(q, pe.rotate(qkv[0].contiguous(), pos))
    torch.testing.assert_close(k, pe.rotate(qkv[1].contiguous(), pos))


def test_rope_dot_products_depend_only_on_relative_position():
    pe = Rotary(d_model=32, n_heads=2, n_layers=1, fraction=0.5)
    torch.manual_seed(0)
    q = torch.randn(1, 2, 1, 16, dtype=torch.float64)
    k = torch.randn(1, 2, 1, 16, dtype=torch.float64)

    def score(m: int, n: int) -> torch.Tensor:
        return (pe.rotate(q, torch.tensor([[m]])) * pe.rotate(k, torch.tensor([[n]]))).sum(-1)

    for m, n in ((5, 2), (9, 9), (3, 40)):
        for shift in (1, 100, 12345):
            torch.testing.assert_close(score(m + shift, n + shift), score(m, n), rtol=1e-9, atol=1e-9)
    assert not torch.allclose(score(5, 2), score(5, 3))


def test_rope_low_precision_input_is_cast_back():
    pe = Rotary(d_model=32, n_heads=2, n_layers=1)
    x = torch.randn(1, 2, 5, 16)
    pos = torch.arange(5)[None] + 3000
    y16 = pe.rotate(x.bfloat16(), pos)
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), pe.rotate(x, pos), rtol=2e-2, atol=2e-2)


# -- absolute PEs ----------------------------------------------------------------------------------
def test_ape_beyond_table_raises():
    model = make_model("ape")  # max_positions = 64
    model(tokens(1, 64))
    with pytest.raises(ValueError, match=r"64 positions.*max_positions"):
        model(tokens(1, 65))
    with pytest.raises(ValueError, match="max_positions"):
        model(tokens(1, 10), pos=torch.arange(10)[None] + 60)
    assert model.pe.max_positions() == 64
    model.pe.check_positions(64)
    with pytest.raises(ValueError, match="at most 64 positions but 65"):
        model.pe.check_positions(65)


def test_sinusoidal_values_and_unbounded():
    pe = Sinusoidal(d_model=6, n_heads=1, n_layers=1)
    enc = pe.encoding(torch.tensor([[0, 3]]), torch.float64)[0]
    expected = [[f(p / 10000 ** (2 * i / 6)) for i in range(3) for f in (math.sin, math.cos)] for p in (0, 3)]
    torch.testing.assert_close(enc, torch.tensor(expected, dtype=torch.float64))
    assert pe.max_positions() is None
    pe.check_positions(10**9)
    model = make_model("sinusoidal")
    assert torch.isfinite(model(tokens(1, 5), pos=torch.arange(5)[None] + 10**6)).all()


# -- long-context bias path ------------------------------------------------------------------------
@pytest.mark.parametrize("pe", ["t5", "t5_per_layer", "alibi"])
def test_blockwise_bias_equals_dense(pe):
    length = 23
    dense, blocked = make_model(pe), make_model(pe, bias_block_elements=H * length * 5)  # 5 queries a block
    blocked.load_state_dict(dense.state_dict())
    x = tokens(2, length)
    pos = torch.arange(length)[None] + 3
    torch.testing.assert_close(blocked(x, pos=pos), dense(x, pos=pos), rtol=1e-12, atol=1e-12)
    # the blocked model really splits: its bias provider yields several query blocks
    provider = AttentionBias(blocked.pe, pos, pos, 0, torch.float64, blocked.cfg.bias_block_elements)
    assert len(list(provider.blocks(0))) == math.ceil(length / 5)


# -- option validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "t5", "num_buckets": 0}, r"pe\.num_buckets=0 must be an integer >= 2"),
        (
            {"name": "t5", "num_buckets": 2, "bidirectional": True},
            r"pe\.num_buckets=2 must be an integer >= 4",
        ),
        ({"name": "t5", "max_distance": 16}, r"pe\.max_distance=16 must be an integer > 16"),
        ({"name": "t5", "shared": "yes"}, r"pe\.shared='yes' must be true or false"),
        ({"name": "ape", "max_positions": 0}, r"pe\.max_positions=0 must be a positive integer"),
        ({"name": "ape", "max_positions": 1.5}, r"pe\.max_positions=1\.5"),
        ({"name": "sinusoidal", "base": 1}, r"pe\.base=1 must be a number > 1"),
        ({"name": "rope", "fraction": 0}, r"pe\.fraction=0 must be in \(0, 1\]"),
        ({"name": "rope", "fraction": 1.5}, r"pe\.fraction=1\.5 must be in \(0, 1\]"),
        ({"name": "rope", "fraction": 0.1}, r"pe\.fraction=0\.1 rotates 0 of the 8 dims"),
        ({"name": "rope", "base": -3}, r"pe\.base=-3"),
        ({"name": "rope", "frac": 0.5}, r"pe=rope got unknown option\(s\) frac; valid: base, fraction"),
        ({"name": "alibi", "slope": 1}, r"pe=alibi got unknown option"),
        ({"name": "sine"}, r"unknown positional encoding pe='sine'"),
    ],
)
def test_bad_options_raise_one_line_errors(cfg, message):
    with pytest.raises(ValueError, match=message) as info:
        build_pe(cfg, d_model=D, n_heads=H, n_layers=N_LAYERS)
    assert "\n" not in str(info.value)


def test_conf_pe_files_build_with_their_defaults():
    import inspect
    import pathlib

    import yaml

    from lengen.model.positional import pe_class

    conf = pathlib.Path(__file__).resolve().parents[1] / "conf" / "pe"
    names = set()
    for path in sorted(conf.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        build_pe(cfg, d_model=D, n_heads=H, n_layers=N_LAYERS)
        if cfg["name"] != path.stem:  # a preset of a class (rope_quarter: the paper's rope), not its defaults
            assert cfg["name"] in PE_CLASSES and path.stem.startswith(cfg["name"] + "_"), path.name
            continue
        names.add(cfg["name"])
        params = inspect.signature(pe_class(cfg["name"]).__init__).parameters
        for key, value in cfg.items():  # the yaml restates the class defaults
            if key != "name":
                assert params[key].default == value, (path.name, key)
    assert names == set(PE_CLASSES)


def test_rope_memo_never_serves_stale_angles():
    pe = Rotary(d_model=32, n_heads=2, n_layers=1)
    x = torch.randn(1, 2, 4, 16, dtype=torch.float64)
    pos = torch.arange(4)[None]
    with torch.inference_mode():
        pe.rotate(x, pos)
    y = pe.rotate(x.clone().requires_grad_(), pos)  # inference-mode angles must not leak into autograd
    y.sum().backward()
    pos.add_(7)  # same tensor object, new values
    torch.testing.assert_close(
        pe.rotate(x, pos), Rotary(d_model=32, n_heads=2, n_layers=1).rotate(x, pos + 0)
    )
