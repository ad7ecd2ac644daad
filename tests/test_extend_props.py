"""Properties of the extension methods, and what each leaves unchanged within the training length.

Within the training length (the forward no longer than ``L_train``, or than the method's window):
- bit-identical logits: ``none``, ``dynamic_ntk``, ``lm_infinite``, ``self_extend``, ``sliding_window``
  (sequences no longer than their window) and ``temperature`` (its log-length schedule);
- changed by design (static rescaling of every position): ``pi``, ``ntk``, ``yarn``, ``abf``,
  ``giraffe_power``, ``giraffe_truncate`` and a fixed ``temperature``.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from lengen.errors import ConfigError
from lengen.extend import METHODS, annotate, build, ntk, yarn
from lengen.extend.base import ROTARY
from lengen.model.config import ModelConfig
from lengen.model.positional import build_pe
from lengen.model.transformer import Transformer
from tests.test_model import _one_thread  # noqa: F401  (autouse: one torch thread for tiny tensors)

VOCAB, D, H = 13, 32, 2
PES = {"rope": {"name": "rope"}, "alibi": {"name": "alibi"}, "t5": {"name": "t5"}, "nope": {"name": "nope"},
       "ape": {"name": "ape", "max_positions": 64}, "sinusoidal": {"name": "sinusoidal"}}
L_TRAIN = 12
UNCHANGED = ("none", "dynamic_ntk", "lm_infinite", "self_extend", "sliding_window", "temperature")
CHANGED = ("pi", "ntk", "yarn", "abf", "giraffe_power", "giraffe_truncate")


def make_model(pe: str, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=VOCAB, d_model=D, n_heads=H, n_layers=2, d_ff=32)
    model = Transformer(cfg, build_pe(PES[pe], d_model=D, n_heads=H, n_layers=2))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.4)
    return model.eval()


def ids(length: int, batch: int = 3) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(length))


def applicable(name: str, pe: str) -> bool:
    try:
        build({"name": name}).check(make_model(pe).pe)
    except ConfigError:
        return False
    return True


def test_every_registered_method_is_covered():
    """A new method must say what it leaves unchanged within the training length (and get a conf file)."""
    assert set(METHODS) == {*UNCHANGED, *CHANGED}


def test_every_method_has_a_conf_file_with_its_options():
    import yaml

    from lengen.config import conf_dir

    for name in METHODS:
        cfg = yaml.safe_load((conf_dir() / "extend" / f"{name}.yaml").read_text())
        assert cfg.pop("name") == name
        method = build({"name": name, **cfg})  # the conf defaults are valid options
        assert set(cfg) == {"factor", "original_length", *METHODS[name].OPTIONS}, name
        for key, default in METHODS[name].OPTIONS.items():
            assert cfg[key] == default, (name, key)  # the conf restates the class defaults
        assert method.summary


# -- 2. properties --------------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [2, 3, 4])
def test_pi_position_s_times_p_gets_the_trained_angle_of_p(factor):
    trained, extended = make_model("rope").double(), make_model("rope").double()
    build({"name": "pi", "factor": factor}).install(extended, original_length=L_TRAIN)
    x = torch.randn(1, 1, 30, D // H, dtype=torch.float64)
    p = torch.arange(30)[None]
    torch.testing.assert_close(extended.pe.rotate(x, factor * p), trained.pe.rotate(x, p))


@pytest.mark.parametrize("factor", [2.0, 4.0, 16.0])
@pytest.mark.parametrize("dims", [16, 32, 128])
def test_ntk_and_yarn_keep_the_highest_frequencies(factor, dims):
    plain = 10000.0 ** -(torch.arange(0, dims, 2, dtype=torch.float64) / dims)
    n = ntk.inv_freq(dims, 10000.0, factor)
    assert n[0] == plain[0]  # exactly
    assert abs(n[1] / plain[1] - 1) < 0.5 * (1 - 1 / factor)  # nearly: much less than interpolation
    y, _ = yarn.parameters(dims, 10000.0, factor, 2048)
    assert y[0] == plain[0]
    low = max(math.floor(yarn.correction_dim(32, dims, 10000.0, 2048)), 0)
    assert torch.equal(y[:low], plain[:low])  # every pair faster than beta_fast turns: unchanged
    torch.testing.assert_close(y[-1], plain[-1] / factor)  # the slowest: interpolated


@pytest.mark.parametrize(("name", "pe"), [(n, p) for n in UNCHANGED for p in ("rope", "alibi", "t5", "nope", "ape")
                                           if applicable(n, p)])  # the refusals are tested below
def test_within_training_length_nothing_changes(name, pe):
    x = ids(L_TRAIN)
    reference = make_model(pe)(x)
    model = make_model(pe)
    opts = {"window": L_TRAIN} if name in ("lm_infinite", "sliding_window", "self_extend") else {}
    build({"name": name, "factor": 4, **opts}).install(model, original_length=L_TRAIN)
    assert torch.equal(model(x), reference)
    if name != "none":  # ...and beyond it the method does act
        longer = ids(3 * L_TRAIN)
        assert not torch.equal(model(longer), make_model(pe)(longer))


@pytest.mark.parametrize("name", CHANGED)
def test_static_rotary_methods_change_every_length_by_design(name):
    x = ids(L_TRAIN)
    model = make_model("rope")
    build({"name": name, "factor": 4}).install(model, original_length=L_TRAIN)
    assert not torch.equal(model(x), make_model("rope")(x))
    build({"name": "none"}).remove(model)  # removing restores the trained model
    assert torch.equal(model(x), make_model("rope")(x))


# -- applicability ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("pe", list(PES))
def test_applicability_and_one_line_refusal(name, pe):
    method, model = build({"name": name}), make_model(pe)
    rotary_only = METHODS[name].applies_to == ROTARY
    expected = {
        "none": True, "temperature": True,
        "lm_infinite": pe in ("rope", "alibi", "t5", "nope"), "sliding_window": pe in ("rope", "alibi", "t5", "nope"),
        "self_extend": pe in ("rope", "alibi", "t5"),
    }.get(name, pe == "rope")
    assert rotary_only == (name in (*CHANGED, "dynamic_ntk"))
    if expected:
        method.install(model, original_length=L_TRAIN)
        model(ids(3 * L_TRAIN, batch=1))
    else:
        with pytest.raises(ConfigError) as err:
            method.install(model, original_length=L_TRAIN)
        assert "\n" not in str(err.value) and f"extend={name}" in str(err.value) and pe in str(err.value)


@pytest.mark.parametrize("spec, message", [
    ({"name": "yarn", "window": 3}, "unknown option(s) extend.window"),
    ({"name": "pi", "factor": 0.5}, "extend.factor=0.5"),
    ({"name": "pi", "factor": "x"}, "extend.factor='x'"),
    ({"name": "yarn", "beta_fast": 1, "beta_slow": 2}, "extend.beta_fast=1"),
    ({"name": "lm_infinite", "window": 0}, "extend.window=0"),
    ({"name": "self_extend", "group": 2.5}, "extend.group=2.5"),
    ({"name": "no_such"}, "unknown extend='no_such'"),
])
def test_bad_options_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError) as err:
        build(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


# -- what rows record ------------------------------------------------------------------------------------

def test_labels_and_columns():
    m = build({"name": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0, "attention_factor": None,
               "original_length": None})
    m.install(make_model("rope"), original_length=43)
    assert m.label() == "yarn(factor=4)"
    cols = m.columns()
    assert cols["extend"] == "yarn" and cols["extend_factor"] == 4.0
    assert cols["extend_options"].startswith("factor=4,beta_fast=32,beta_slow=1,attention_factor=1.13")
    assert cols["extend_options"].endswith("original_length=43")

    abf = build({"name": "abf", "factor": 4})  # a factor it ignores: recorded as NaN, left out of the label
    abf.install(make_model("rope"), original_length=43)
    assert abf.label() == "abf" and math.isnan(abf.columns()["extend_factor"])
    se = build({"name": "self_extend", "factor": 2})
    se.install(make_model("alibi"), original_length=43)
    assert se.label() == "self_extend(factor=2)" and se.group == 2 and se.window == 10
    assert build({"name": "lm_infinite", "n_global": 4}).label() == "lm_infinite(n_global=4)"


def test_annotate_leaves_none_rows_alone_and_names_the_method_otherwise():
    rows = pd.DataFrame({"variant": ["default", "default"], "eval_length": [1, 2], "exact_match": [1.0, 0.5]})
    none = build(None)
    assert annotate(rows, none) is rows
    m = build({"name": "pi", "factor": 2})
    m.install(make_model("rope"), original_length=10)
    out = annotate(rows, m)
    assert out["variant"].tolist() == ["default+extend=pi(factor=2)"] * 2
    assert out["extend"].tolist() == ["pi", "pi"] and (out["extend_factor"] == 2).all()
