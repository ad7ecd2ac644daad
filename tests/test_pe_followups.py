"""FIRE, KERPLE, xPos and RoPE+ALiBi against their formulas, written out here independently."""

from __future__ import annotations

import math

import pytest
import torch

from lengen.errors import ConfigError
from lengen.extend import build as build_extension
from lengen.model.attention import AttentionBias
from lengen.model.config import ModelConfig
from lengen.model.positional import build_pe
from lengen.model.positional.alibi import alibi_slopes
from lengen.model.positional.fire import Fire
from lengen.model.positional.kerple import Kerple
from lengen.model.positional.rope import Rotary
from lengen.model.positional.rope_alibi import RopeAlibi
from lengen.model.positional.xpos import XPos
from lengen.model.transformer import Transformer

VOCAB, D, H, N_LAYERS = 20, 32, 4, 2
CFGS = {
    "fire": {"name": "fire", "init_L": 6.0},
    "fire_per_layer": {"name": "fire", "init_L": 6.0, "per_layer": True},
    "kerple": {"name": "kerple"},
    "kerple_power": {"name": "kerple", "variant": "power"},
    "xpos": {"name": "xpos", "fraction": 0.5, "scale_base": 16.0},  # a fast decay, seen in short tests
    "xpos_default": {"name": "xpos"},
    "rope_alibi": {"name": "rope_alibi"},
    "rope_alibi_harmonic": {"name": "rope_alibi", "slopes": "harmonic", "fraction": 0.5},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(pe: str, seed: int = 0, **model_kw) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=VOCAB, d_model=D, n_heads=H, n_layers=N_LAYERS, d_ff=64, **model_kw)
    model = Transformer(cfg, build_pe(CFGS[pe], d_model=D, n_heads=H, n_layers=N_LAYERS))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model.double().eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# -- FIRE --------------------------------------------------------------------------------------------
def fire_formula(fn, i: int, j: int) -> list[float]:
    """``f(psi(i - j) / psi(max(L, i)))`` per head, in plain Python floats."""
    c, m, w1, b1, w2, b2 = (p.detach().tolist() for p in (fn.c, fn.multiplier, fn.w1, fn.b1, fn.w2, fn.b2))
    L = abs(m * fn.init_L)
    x = math.log(abs(c * (i - j)) + 1) / (math.log(abs(c * max(L, i)) + 1) + 1e-6)
    hidden = [max(0.0, w * x + b) for w, b in zip(w1, b1)]
    return [sum(w * u for w, u in zip(row, hidden)) + b for row, b in zip(w2, b2)]


def fire_pe(**options) -> Fire:
    torch.manual_seed(3)
    pe = Fire(d_model=D, n_heads=H, n_layers=N_LAYERS, **{"init_L": 6.0, **options}).double()
    with torch.no_grad():
        for fn in pe.functions:
            fn.c.fill_(0.37)
            fn.multiplier.fill_(-1.25)  # L = |-1.25 * 6| = 7.5: queries 0..7 below it, 8.. above
    return pe


def test_fire_bias_equals_the_formula():
    pe = fire_pe(per_layer=True)
    q, k = torch.arange(0, 20)[None] + 2, torch.arange(0, 22)[None]
    for layer in range(N_LAYERS):
        bias = pe.bias(q, k, layer)
        assert bias.shape == (1, H, 20, 22) and bias.dtype == torch.float64
        for a in range(20):
            for b in range(22):
                i, j = int(q[0, a]), int(k[0, b])
                if j <= i:  # causal entries (the rest is masked)
                    expected = torch.tensor(fire_formula(pe.functions[layer], i, j), dtype=torch.float64)
                    torch.testing.assert_close(bias[0, :, a, b], expected, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(pe.bias(q, k, 0), pe.bias(q, k, 1))  # per layer: own functions


def test_fire_depends_on_the_query_only_through_its_normaliser():
    pe = fire_pe()
    fn = pe.functions[0]
    # below L (7.5) the normaliser is psi(L): the bias is a function of i - j
    for i, j in ((3, 1), (5, 0), (4, 4)):
        for s in range(1, 8 - i):
            torch.testing.assert_close(pe.bias(torch.tensor([[i + s]]), torch.tensor([[j + s]])),
                                       pe.bias(torch.tensor([[i]]), torch.tensor([[j]])))
    # beyond L, the same distance at a later query is divided by a larger psi(i): a different input
    near, far = pe.bias(torch.tensor([[20]]), torch.tensor([[17]])), pe.bias(torch.tensor([[90]]), torch.tensor([[87]]))
    assert not torch.allclose(near, far)
    # ... and equal inputs give equal biases: x(i, j) = psi(i - j) / psi(i) is the only way i enters
    x = fn.inputs(torch.tensor([[20, 90]]), torch.tensor([[17, 87]]), torch.float64)
    mlp = lambda v: torch.relu(v[..., None] * fn.w1 + fn.b1) @ fn.w2.T + fn.b2  # noqa: E731
    torch.testing.assert_close(near[0, :, 0, 0], mlp(x[0, 0, 0]))
    torch.testing.assert_close(far[0, :, 0, 0], mlp(x[0, 1, 1]))
    assert not pe.relative


def test_fire_piecewise_evaluation_matches_the_mlp_values_and_gradients():
    pe = fire_pe(hidden=16)
    fn = pe.functions[0]
    with torch.no_grad():  # a constant unit on, one off, and two units sharing a kink
        fn.w1[:4] = torch.tensor([0.0, 0.0, 2.0, -4.0], dtype=torch.float64)
        fn.b1[:4] = torch.tensor([0.5, -0.5, -0.6, 1.2], dtype=torch.float64)
    q, k = torch.arange(0, 30)[None], torch.arange(0, 30)[None]

    def mlp_bias() -> torch.Tensor:
        x = fn.inputs(q, k, torch.float64)
        return (torch.relu(x[..., None] * fn.w1 + fn.b1) @ fn.w2.T + fn.b2).permute(0, 3, 1, 2)

    weights = torch.randn(1, H, 30, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grads = []
    for compute in (lambda: pe.bias(q, k), mlp_bias):
        pe.zero_grad()
        out = compute()
        (out * weights).tril().sum().backward()
        grads.append({name: p.grad.clone() for name, p in pe.named_parameters()})
        grads[-1]["out"] = out.detach()
    for name, expected in grads[1].items():
        torch.testing.assert_close(grads[0][name], expected, rtol=1e-9, atol=1e-9, msg=name)
    assert grads[0]["functions.0.c"].abs() > 0 and grads[0]["functions.0.multiplier"].abs() > 0


def test_fire_keeps_reference_init_under_the_model_init():
    model = make_model("fire")
    fn = model.pe.functions[0]
    assert fn.c.item() == pytest.approx(0.1) and fn.multiplier.item() == 1.0
    # nn.Linear's default init (first layer: fan_in 1 -> U(-1, 1)), not the model's N(0, 0.02)
    assert fn.b1.abs().max() > 0.1 and fn.w1.abs().max() <= 1.0
    assert len(model.pe.functions) == 1 and model.pe.shared_bias
    per_layer = build_pe({"name": "fire", "per_layer": True}, d_model=D, n_heads=H, n_layers=3)
    assert len(per_layer.functions) == 3 and not per_layer.shared_bias


# -- KERPLE ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["log", "power"])
def test_kerple_bias_shape_sign_diagonal_monotone_and_distance_bias(variant):
    torch.manual_seed(0)
    pe = Kerple(d_model=D, n_heads=H, n_layers=N_LAYERS, variant=variant).double()
    q, k = torch.arange(0, 300)[None], torch.arange(0, 300)[None]
    for layer in range(N_LAYERS):
        bias = pe.bias(q, k, layer)
        assert bias.shape == (1, H, 300, 300)
        causal = bias[0].tril()
        assert (causal <= 0).all()
        assert (bias[0].diagonal(dim1=-2, dim2=-1) == 0).all()
        by_distance = bias[0, :, -1].flip(-1)  # last query: distances 0..299
        assert (by_distance.diff(dim=-1) <= 0).all() and (by_distance[:, -1] < 0).all()
        distance = torch.arange(-299, 300)
        table = pe.distance_bias(distance, layer)
        assert table.shape == (H, 599)
        idx = (q[0, :, None] - k[0, None, :]) + 299
        # the same formula elementwise; pow's SIMD and scalar loops may differ in the last bit
        torch.testing.assert_close(table[:, idx], bias[0], rtol=1e-14, atol=1e-14)
    assert not torch.allclose(pe.bias(q, k, 0), pe.bias(q, k, 1))  # per layer by default (the reference)


def test_kerple_formulas_and_clamps():
    pe = Kerple(d_model=D, n_heads=2, n_layers=1, variant="log").double()
    with torch.no_grad():
        pe.r1.copy_(torch.tensor([[1.5, -3.0]]))  # head 1 clamps to r1 = 0.01
        pe.r2.copy_(torch.tensor([[0.5, 0.2]]))
    d = torch.tensor([0, 1, 7, 100])
    expected = torch.tensor([[-1.5 * math.log1p(0.5 * r) for r in d.tolist()],
                             [-0.01 * math.log1p(0.2 * r) for r in d.tolist()]], dtype=torch.float64)
    torch.testing.assert_close(pe.distance_bias(d), expected)
    pe.distance_bias(d).sum().backward()
    assert pe.r1.grad[0, 1] != 0  # straight-through: a clamped parameter still learns

    pe = Kerple(d_model=D, n_heads=2, n_layers=1, variant="power", per_layer=False).double()
    with torch.no_grad():
        pe.r1.copy_(torch.tensor([[0.7, 0.3]]))
        pe.r2.copy_(torch.tensor([[0.5, 9.0]]))  # head 1 clamps to r2 = 2
    expected = torch.tensor([[-0.7 * r**0.5 for r in d.tolist()], [-0.3 * r**2.0 for r in d.tolist()]],
                            dtype=torch.float64)
    torch.testing.assert_close(pe.distance_bias(d), expected)
    assert pe.shared_bias and torch.equal(pe.distance_bias(d, 0), pe.distance_bias(d, 1))
    pe.distance_bias(d).sum().backward()
    assert torch.isfinite(pe.r2.grad).all()  # 0 ** r2 at the diagonal: no NaN gradient


# -- xPos --------------------------------------------------------------------------------------------
def xpos_pair(pe: XPos, q: torch.Tensor, k: torch.Tensor, i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query at position ``i`` and key at ``j`` through ``rotate`` (which takes them stacked)."""
    x = torch.stack((q, k))
    return pe.rotate(x, torch.tensor([[i]]))[0], pe.rotate(x, torch.tensor([[j]]))[1]


def test_xpos_logit_is_rope_logit_times_decay_per_pair():
    rot, sb = 8, 512.0
    pe = XPos(d_model=2 * 12, n_heads=2, n_layers=1, fraction=rot / 12)
    rope = Rotary(d_model=2 * 12, n_heads=2, n_layers=1, fraction=rot / 12)
    assert pe.rot == rot
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 2, 1, 12, dtype=torch.float64, generator=gen) for _ in range(2))
    zeta = [(2 * p + 0.4 * rot) / (1.4 * rot) for p in range(rot // 2)]
    for i, j in ((5, 2), (700, 3), (9, 9), (2000, 1999)):
        qi, kj = xpos_pair(pe, q, k, i, j)
        rq, rk = rope.rotate(q, torch.tensor([[i]])), rope.rotate(k, torch.tensor([[j]]))
        per_pair = (rq[..., :rot] * rk[..., :rot]).unflatten(-1, (-1, 2)).sum(-1)  # RoPE's pair terms
        decay = torch.tensor([z ** ((i - j) / sb) for z in zeta], dtype=torch.float64)
        expected = (per_pair * decay).sum(-1) + (q[..., rot:] * k[..., rot:]).sum(-1)
        torch.testing.assert_close((qi * kj).sum(-1), expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(qi[..., rot:], q[..., rot:])  # unrotated dims pass through unscaled
    # the relative property: shifting both positions leaves every logit unchanged
    for shift in (1, 100, 5000):
        a = xpos_pair(pe, q, k, 40 + shift, 10 + shift)
        b = xpos_pair(pe, q, k, 40, 10)
        torch.testing.assert_close((a[0] * a[1]).sum(-1), (b[0] * b[1]).sum(-1), rtol=1e-10, atol=1e-12)


def test_xpos_is_finite_and_accurate_at_16k_in_float32():
    pe = XPos(d_model=64, n_heads=2, n_layers=1)
    pos = torch.tensor([[0, 1, 5000, 16380, 16383]])
    y = pe.rotate(torch.randn(2, 1, 2, 5, 32, generator=torch.Generator().manual_seed(1)), pos)
    assert torch.isfinite(y).all() and y.dtype == torch.float32
    # the float32 scales: query scale at i times key scale at j is zeta^((i - j) / 512) to float32 precision
    moduli = pe.factors(pos, torch.float32).abs()[:, 0, 0]  # [2, L, rot/2]
    assert (moduli > 0).all() and torch.isfinite(moduli).all()
    zeta = torch.tensor([(2 * p + 0.4 * 32) / (1.4 * 32) for p in range(16)], dtype=torch.float64)
    for a, i in enumerate(pos[0].tolist()):
        for b, j in enumerate(pos[0].tolist()[: a + 1]):
            torch.testing.assert_close((moduli[0, a] * moduli[1, b]).double(), zeta ** ((i - j) / 512),
                                       rtol=2e-6, atol=0)
    model = make_model("xpos_default")  # a whole (short) forward at far positions: finite, shift invariant
    x = tokens(2, 9)
    far = model(x, pos=torch.arange(9)[None] + 16375)
    assert torch.isfinite(far).all()
    torch.testing.assert_close(far, model(x, pos=torch.arange(9)[None]), rtol=1e-9, atol=1e-9)


def test_xpos_refuses_what_it_cannot_serve():
    pe = XPos(d_model=64, n_heads=2, n_layers=1)
    assert 32768 < pe.max_positions() < 36000
    pe.check_positions(32768)
    with pytest.raises(ValueError, match="at most"):
        pe.check_positions(50_000)
    with pytest.raises(ValueError, match=r"stacked as \[2, B, H, L, Dh\]") as info:
        pe.rotate(torch.randn(1, 2, 3, 32), torch.arange(3)[None])
    assert "\n" not in str(info.value)
    model = make_model("xpos")  # evaluation-time methods built for plain RoPE refuse xpos in one line
    for method in ("pi", "self_extend"):
        with pytest.raises(ConfigError, match="this run's pe=xpos"):
            build_extension({"name": method}).check(model.pe)


# -- RoPE + ALiBi ------------------------------------------------------------------------------------
@pytest.mark.parametrize("slopes", ["geometric", "harmonic"])
@pytest.mark.parametrize("n_heads", [4, 6])
def test_rope_alibi_logits_are_rope_logits_plus_alibi_bias(slopes, n_heads):
    pe = RopeAlibi(d_model=8 * n_heads, n_heads=n_heads, n_layers=1, fraction=0.5, slopes=slopes).double()
    rope = Rotary(d_model=8 * n_heads, n_heads=n_heads, n_layers=1, fraction=0.5)
    expected_slopes = (alibi_slopes(n_heads) if slopes == "geometric"
                       else torch.tensor([1.0 / h for h in range(1, n_heads + 1)], dtype=torch.float64))
    expected_slopes = expected_slopes.float().double()  # built in the default dtype, as ALiBi's own
    assert torch.equal(pe.alibi.slopes, expected_slopes)
    assert sum(p.numel() for p in pe.parameters()) == 0 and not pe.state_dict()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 1, n_heads, 7, 8, dtype=torch.float64, generator=gen)
    pos = torch.arange(7)[None] + 11
    got = pe.rotate(x, pos)
    logits = got[0] @ got[1].transpose(-1, -2) + pe.bias(pos, pos)
    r = rope.rotate(x, pos)
    distance = (pos[0, :, None] - pos[0, None, :]).double()
    alibi = -expected_slopes[:, None, None] * distance
    torch.testing.assert_close(logits, r[0] @ r[1].transpose(-1, -2) + alibi[None])
    assert torch.equal(pe.distance_bias(torch.arange(-3, 7))[:, 3:], pe.bias(pos, pos)[0, :, -1].flip(-1))


# -- in the model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("pe", ["fire", "fire_per_layer", "kerple", "kerple_power", "rope_alibi"])
def test_blockwise_bias_equals_dense(pe):
    length = 23
    dense, blocked = make_model(pe), make_model(pe, bias_block_elements=H * length * 5)  # 5 queries a block
    blocked.load_state_dict(dense.state_dict())
    x, pos = tokens(2, length), torch.arange(length)[None] + 3
    torch.testing.assert_close(blocked(x, pos=pos), dense(x, pos=pos), rtol=1e-12, atol=1e-12)
    provider = AttentionBias(blocked.pe, pos, pos, 0, torch.float64, blocked.cfg.bias_block_elements)
    assert len(list(provider.blocks(0))) == math.ceil(length / 5)


@pytest.mark.parametrize("pe", ["fire_per_layer", "kerple"])
def test_blockwise_bias_gradients_equal_dense(pe):
    """Training through the blocked path: block outputs written into one tensor keep their gradients."""
    length = 19
    dense, blocked = make_model(pe).train(), make_model(pe, bias_block_elements=H * length * 4).train()
    blocked.load_state_dict(dense.state_dict())
    grads = []
    for model in (dense, blocked):
        model(tokens(2, length), pos=torch.arange(length)[None]).logsumexp(-1).sum().backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("pe", list(CFGS))
def test_chunked_cached_forward_equals_full_forward(pe):
    model, x = make_model(pe, bias_block_elements=H * 16 * 3), tokens(2, 16)
    pos = torch.arange(16)[None] + 5
    full = model(x, pos=pos)
    cache = model.new_cache(2, 16, like=model.tok.weight)
    parts = [model(x[:, a:b], pos=pos[:, a:b], cache=cache) for a, b in ((0, 7), (7, 11), (11, 12), (12, 16))]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "fire", "hidden": 0}, r"pe\.hidden=0 must be a positive integer"),
        ({"name": "fire", "init_c": -1}, r"pe\.init_c=-1 must be a number > 0"),
        ({"name": "fire", "per_layer": "no"}, r"pe\.per_layer='no' must be true or false"),
        ({"name": "fire", "width": 8}, r"pe=fire got unknown option\(s\) width; valid: hidden, init_c, init_L"),
        ({"name": "kerple", "variant": "exp"}, r"pe\.variant='exp' must be one of log, power"),
        ({"name": "xpos", "scale_base": 0}, r"pe\.scale_base=0 must be a number > 0"),
        ({"name": "xpos", "fraction": 2}, r"pe\.fraction=2 must be in \(0, 1\]"),
        ({"name": "rope_alibi", "slopes": "linear"}, r"pe\.slopes='linear' must be one of geometric, harmonic"),
        ({"name": "rope_alibi", "slope": 1}, r"pe=rope_alibi got unknown option\(s\) slope; valid: base"),
    ],
)
def test_bad_options_raise_one_line_errors(cfg, message):
    with pytest.raises(ValueError, match=message) as info:
        build_pe(cfg, d_model=D, n_heads=H, n_layers=N_LAYERS)
    assert "\n" not in str(info.value)
