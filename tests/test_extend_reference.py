"""Rotary extension methods against independent references.

1. ``transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS`` (``linear`` / ``dynamic`` / ``yarn``):
   the same base, rotated dims, factor and original length must give the same inverse frequencies
   and attention factor (skipped, with the reason, when transformers is not installed).
2. Closed forms written here from the papers, independently of ``lengen.extend`` (plain Python
   floats, one frequency at a time), so the tests can fail without transformers too.
3. The model really rotates with the method's frequencies once it is installed.
"""

from __future__ import annotations

import math

import pytest
import torch

from lengen.extend import build, dynamic_ntk, giraffe_power, giraffe_truncate, ntk, pi, yarn
from lengen.model.config import ModelConfig
from lengen.model.positional import build_pe
from lengen.model.transformer import Transformer

DIMS = (8, 32, 64, 128)
BASES = (10000.0, 500.0)
FACTORS = (2.0, 4.0, 8.0)
ORIGINAL = (43, 2048)


def close(a, b, rtol=1e-6):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, rtol=rtol, atol=1e-12)


# -- 1. transformers ---------------------------------------------------------------------------------

def hf_parameters(rope_type: str, dims: int, base: float, factor: float, original: int, seq_len=None, **extra):
    """(inv_freq, attention_factor) from transformers for a config whose heads rotate ``dims`` dims."""
    tf = pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[dev]' "
                                                    "brings it); the closed-form tests below still run")
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    heads = 2
    params = {"rope_type": rope_type, "factor": factor, "rope_theta": base, **extra}
    if rope_type == "yarn":
        params["original_max_position_embeddings"] = original
    major = int(tf.__version__.split(".")[0])
    if major >= 5:
        cfg = LlamaConfig(hidden_size=dims * heads, num_attention_heads=heads, head_dim=dims,
                          max_position_embeddings=original, rope_parameters=params)
    else:  # 4.x: rope_scaling plus rope_theta
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
        cfg = LlamaConfig(hidden_size=dims * heads, num_attention_heads=heads, head_dim=dims,
                          max_position_embeddings=original, rope_theta=base, rope_scaling=scaling)
    fn = ROPE_INIT_FUNCTIONS[rope_type]
    inv, attention = fn(cfg, torch.device("cpu"), seq_len) if seq_len is not None else fn(cfg, torch.device("cpu"))
    return inv.double(), float(attention)


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("factor", FACTORS)
def test_pi_matches_transformers_linear(dims, base, factor):
    inv, attention = hf_parameters("linear", dims, base, factor, 2048)
    close(pi.inv_freq(dims, base, factor), inv)
    assert attention == 1.0


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("original", ORIGINAL)
@pytest.mark.parametrize("ratio", [0.5, 1.0, 1.5, 4.0, 9.3])
def test_dynamic_ntk_matches_transformers_dynamic(dims, factor, original, ratio):
    length = max(1, int(original * ratio))
    inv, attention = hf_parameters("dynamic", dims, 10000.0, factor, original, seq_len=length)
    close(dynamic_ntk.inv_freq(dims, 10000.0, factor, length, original), inv, rtol=1e-5)
    assert attention == 1.0


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("original", ORIGINAL)
@pytest.mark.parametrize("betas", [(32.0, 1.0), (16.0, 2.0)])
def test_yarn_matches_transformers_yarn(dims, base, factor, original, betas):
    beta_fast, beta_slow = betas
    inv, attention = hf_parameters("yarn", dims, base, factor, original, beta_fast=beta_fast, beta_slow=beta_slow)
    ours, ours_attention = yarn.parameters(dims, base, factor, original, beta_fast, beta_slow)
    close(ours, inv, rtol=1e-5)
    assert ours_attention == pytest.approx(attention, rel=1e-12)


def test_yarn_method_reports_the_transformers_attention_factor():
    _, attention = hf_parameters("yarn", 32, 10000.0, 4.0, 43)
    method = build({"name": "yarn", "factor": 4})
    assert method.attention_factor() == pytest.approx(attention)
    assert method.logit_scale(torch.zeros(1, 1)) == pytest.approx(attention**2)


# -- 2. closed forms, written independently ------------------------------------------------------------

def plain_inv_freq(dims: int, base: float) -> list[float]:
    return [1.0 / base ** (2 * i / dims) for i in range(dims // 2)]


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("factor", FACTORS)
def test_pi_closed_form(dims, factor):
    close(pi.inv_freq(dims, 10000.0, factor), [f / factor for f in plain_inv_freq(dims, 10000.0)])


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("factor", FACTORS)
def test_ntk_closed_form(dims, factor):
    new_base = 10000.0 * factor ** (dims / (dims - 2))
    close(ntk.inv_freq(dims, 10000.0, factor), plain_inv_freq(dims, new_base))
    # the lowest frequency is interpolated by exactly the factor, the highest kept
    lowest = plain_inv_freq(dims, 10000.0)[-1]
    assert ntk.inv_freq(dims, 10000.0, factor)[-1].item() == pytest.approx(lowest / factor, rel=1e-9)
    assert ntk.inv_freq(dims, 10000.0, factor)[0].item() == 1.0


@pytest.mark.parametrize("length", [10, 43, 44, 86, 400])
def test_dynamic_ntk_closed_form(length):
    dims, factor, original = 32, 4.0, 43
    expected = plain_inv_freq(dims, 10000.0)
    if length > original:
        s = factor * length / original - (factor - 1)
        expected = plain_inv_freq(dims, 10000.0 * s ** (dims / (dims - 2)))
    close(dynamic_ntk.inv_freq(dims, 10000.0, factor, length, original), expected)


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("original", ORIGINAL)
def test_yarn_closed_form(dims, factor, original):
    """METHODS.md: corr(r) = d ln(L/(2 pi r)) / (2 ln base); ramp between floor(corr(32)) and ceil(corr(1))."""
    base = 10000.0

    def corr(r):
        return dims * math.log(original / (2 * math.pi * r)) / (2 * math.log(base))

    low, high = max(math.floor(corr(32)), 0), min(math.ceil(corr(1)), dims - 1)
    if low == high:
        high += 0.001
    expected = []
    for i, f in enumerate(plain_inv_freq(dims, base)):
        r = min(max((i - low) / (high - low), 0.0), 1.0)
        expected.append(f * (1 - r) + f / factor * r)
    inv, attention = yarn.parameters(dims, base, factor, original)
    close(inv, expected, rtol=1e-9)
    assert attention == pytest.approx(0.1 * math.log(factor) + 1)


@pytest.mark.parametrize("dims", DIMS)
def test_abf_closed_form(dims):
    method = build({"name": "abf"})
    method.dims, method.base = dims, 10000.0
    close(method.inv_freq(), plain_inv_freq(dims, 500000.0))
    method = build({"name": "abf", "base": 1e6})
    method.dims, method.base = dims, 10000.0
    close(method.inv_freq(), plain_inv_freq(dims, 1e6))


def giraffe_reference(dim: int, base: float, scale: float, scale_power: float, truncate: int) -> torch.Tensor:
    """abacusai/Long-Context python/models/interpolate.py, ScaledLlamaRotaryEmbedding.__init__ (verbatim logic)."""
    freq_2pi = 1.0 / (base ** (torch.arange(0, dim, 2).double() / dim))
    if scale > 1.0:
        freq_2pi /= scale
    if scale_power > 0:
        freq_2pi *= (1.0 - torch.arange(len(freq_2pi)) / len(freq_2pi)) ** scale_power
    if (truncate or 0) > 0:
        cutoff = 2 * math.pi / truncate
        t, low, z = cutoff, 2 * math.pi / (truncate * 16), 8
        ft = torch.where(freq_2pi < t, low, freq_2pi)
        freq_2pi = torch.where(freq_2pi < t / z, 0, ft)
    return freq_2pi


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("scale", [1.0, 4.0])
@pytest.mark.parametrize("power", [0.5, 4.0])
def test_giraffe_power_matches_reference(dims, scale, power):
    close(giraffe_power.inv_freq(dims, 10000.0, scale, power), giraffe_reference(dims, 10000.0, scale, power, 0))


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("truncate", [43, 2048])
def test_giraffe_truncate_matches_reference(dims, scale, truncate):
    ours = giraffe_truncate.inv_freq(dims, 10000.0, scale, truncate)
    close(ours, giraffe_reference(dims, 10000.0, scale, 0.0, truncate))
    if dims >= 32:  # slow frequencies exist: some zeroed, some floored
        assert (ours == 0).any()


# -- 3. the model rotates with them ---------------------------------------------------------------------

def rope_model(fraction: float = 1.0) -> Transformer:
    cfg = ModelConfig(vocab_size=11, d_model=32, n_heads=2, n_layers=1, d_ff=32)
    pe = build_pe({"name": "rope", "fraction": fraction}, d_model=32, n_heads=2, n_layers=1)
    return Transformer(cfg, pe).eval()


def angles(model: Transformer, positions: list[int]) -> torch.Tensor:
    """The rotation angle of every pair at each position, read off a rotated unit vector."""
    rot = model.pe.rot
    x = torch.zeros(1, 1, len(positions), model.cfg.head_dim, dtype=torch.float64)
    x[..., 0:rot:2] = 1.0
    y = model.pe.rotate(x, torch.tensor([positions]))
    return torch.atan2(y[..., 1:rot:2], y[..., 0:rot:2])[0, 0]


@pytest.mark.parametrize("spec", [{"name": "pi", "factor": 4}, {"name": "ntk", "factor": 2},
                                  {"name": "yarn", "factor": 4}, {"name": "abf"},
                                  {"name": "giraffe_power", "factor": 2}, {"name": "giraffe_truncate"}])
@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_installed_method_rotates_with_its_frequencies(spec, fraction):
    model = rope_model(fraction)
    method = build(spec)
    method.install(model, original_length=43)
    inv = method.inv_freq()
    assert inv.shape == (model.pe.rot // 2,)
    pos = [0, 1, 2, 3]  # small positions: angles stay within (-pi, pi]
    expected = torch.tensor(pos, dtype=torch.float64)[:, None] * inv.float().double()[None, :]
    wrapped = torch.remainder(expected + math.pi, 2 * math.pi) - math.pi
    close(angles(model, pos), wrapped, rtol=1e-5)
    method.remove(model)
    trained = torch.tensor(pos, dtype=torch.float64)[:, None] * torch.tensor(plain_inv_freq(model.pe.rot, 1e4))
    close(angles(model, pos), torch.remainder(trained + math.pi, 2 * math.pi) - math.pi, rtol=1e-5)


def test_dynamic_ntk_frequencies_follow_the_forward_length():
    model = rope_model()
    method = build({"name": "dynamic_ntk", "factor": 4})
    method.install(model, original_length=10)
    seen = []
    fn = model.pe._frequencies
    model.pe.set_frequencies(lambda n: seen.append(n) or fn(n))
    model.pe._frequencies.dynamic = True  # a plain lambda: mark it like the method's own callable
    model(torch.zeros(1, 25, dtype=torch.long))
    assert seen == [25]
