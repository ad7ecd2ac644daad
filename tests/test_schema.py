"""The config schema: every key's type and range checked in one place, one line per problem.

Table-driven cases set values directly on a config composed once (fast); a property test drives
random overrides through Hydra itself; a few cases run the real ``lengen train`` in a child.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict

from lengen import schema
from lengen.compose import compose
from lengen.config import conf_dir, validate
from lengen.errors import ConfigError
from lengen.schema import check, described_keys
from tests.conftest import tiny_overrides


@pytest.fixture(scope="module")
def base():
    return compose("config", ["+pe=nope"])


def with_values(base, **values):
    """A copy of ``base`` with dotted keys set (``None`` removes nothing: it sets null)."""
    cfg = copy.deepcopy(base)
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value, merge=False, force_add=True)
    return cfg


def error_of(cfg) -> str:
    with pytest.raises(ConfigError) as e:
        check(cfg)
    msg = str(e.value)
    assert msg and "\n" not in msg and len(msg.splitlines()) == 1, msg
    return msg


# -- every key: bad values name the key, the value and what is allowed ------------------------------

BAD = [
    # key, value, exact message (or a list of needles)
    ("seed", -1, "seed=-1 must be an integer in [0, 4294967295]"),
    ("seed", 2**32, ["seed=4294967296", "[0, 4294967295]"]),
    ("seed", "one", "seed='one' must be an integer in [0, 4294967295]"),
    ("study", "a/b", ["study='a/b'", "without '/'"]),
    ("study", "", ["study=''", "1 to 100"]),
    ("study", "..", ["study='..'", "not '.' or '..'"]),
    ("study", "x" * 101, ["study='xxxx", "(101 characters)", "1 to 100"]),
    ("study", "a\nb", ["study='a\\nb'", "printable"]),
    ("study", 1.5, ["study=1.5", "a name"]),
    ("runs_root", "", ["runs_root=''", "a path"]),
    ("runs_root", None, ["runs_root=None", "a path"]),
    ("run_id", "x/../../etc", ["run_id='x/../../etc'", "without '/'"]),
    ("run_dir", "", ["run_dir=''", "a path"]),
    ("data.n_train", 0, "data.n_train=0 must be an integer >= 1"),
    ("data.n_train", 10.0, "data.n_train=10.0 must be an integer >= 1"),
    ("data.n_val_per_length", 0, "data.n_val_per_length=0 must be an integer >= 1"),
    ("data.cache_dir", 5.5, ["data.cache_dir=5.5", "null or a path"]),
    ("data.pack_width", -1, "data.pack_width=-1 must be an integer >= 0"),
    ("data.bucket_batches", 0, "data.bucket_batches=0 must be an integer >= 1"),
    ("model.d_model", -1, "model.d_model=-1 must be an integer >= 1"),
    ("model.d_model", 30, "model.d_model=30 is not divisible by model.n_heads=4; pick n_heads dividing d_model"),
    ("model.n_heads", 0, "model.n_heads=0 must be an integer >= 1"),
    ("model.n_layers", "3", "model.n_layers='3' must be an integer >= 1"),
    ("model.d_ff", True, "model.d_ff=True must be an integer >= 1"),
    ("model.activation", "tanh", "model.activation='tanh' is not one of relu, gelu, swiglu"),
    ("model.norm", "batchnorm", "model.norm='batchnorm' is not one of layernorm, rmsnorm"),
    ("model.bias", "true", "model.bias='true' must be true or false"),
    ("model.dropout", 1.0, "model.dropout=1.0 must be a number in [0, 1)"),
    ("model.dropout", -0.1, "model.dropout=-0.1 must be a number in [0, 1)"),
    ("model.tie_embeddings", 1, "model.tie_embeddings=1 must be true or false"),
    ("model.norm_eps", 0, "model.norm_eps=0 must be a number > 0"),
    ("trainer.accelerator", "tpu", "trainer.accelerator='tpu' is not one of auto, cpu, gpu, cuda, mps"),
    ("trainer.devices", 0, ["trainer.devices=0", "'auto'"]),
    ("trainer.devices", [], ["trainer.devices=[]", "a list of device indices"]),
    ("trainer.precision", "fp64", ["trainer.precision='fp64' is not one of 32-true, bf16-mixed, 16-mixed"]),
    ("trainer.precision", 8, ["trainer.precision=8 is not one of"]),
    ("trainer.precision", True, ["trainer.precision=True is not one of"]),
    ("trainer.max_steps", "abc", "trainer.max_steps='abc' must be an integer >= 1"),
    ("trainer.max_steps", 1.5, "trainer.max_steps=1.5 must be an integer >= 1"),
    ("trainer.max_steps", 0, "trainer.max_steps=0 must be an integer >= 1"),
    ("trainer.max_steps", None, "trainer.max_steps=None must be an integer >= 1"),
    ("trainer.batch_size", 0, "trainer.batch_size=0 must be an integer >= 1"),
    ("trainer.val_every", 0, "trainer.val_every=0 must be an integer >= 1"),
    ("trainer.gradient_clip", -1, "trainer.gradient_clip=-1 must be a number >= 0"),
    ("trainer.lr", 0, "trainer.lr=0 must be a number > 0"),
    ("trainer.lr", float("nan"), "trainer.lr=nan must be a number > 0"),
    ("trainer.lr", float("inf"), "trainer.lr=inf must be a number > 0"),
    ("trainer.lr", "1e-3x", "trainer.lr='1e-3x' must be a number > 0"),
    ("trainer.weight_decay", -0.01, "trainer.weight_decay=-0.01 must be a number >= 0"),
    ("trainer.betas", [0.9], "trainer.betas=[0.9] must be a list of 2 numbers in [0, 1)"),
    ("trainer.betas", [0.9, 1.0], "trainer.betas=[0.9, 1.0] must be a list of 2 numbers in [0, 1)"),
    ("trainer.betas", 0.9, "trainer.betas=0.9 must be a list of 2 numbers in [0, 1)"),
    ("trainer.warmup", 1, "trainer.warmup=1 must be a number in [0, 1)"),
    ("trainer.warmup", 100, "trainer.warmup=100 must be a number in [0, 1)"),
    ("trainer.schedule", "polynomial", "trainer.schedule='polynomial' is not one of cosine, linear, constant"),
    ("trainer.min_lr_ratio", 1.5, "trainer.min_lr_ratio=1.5 must be a number in [0, 1]"),
    ("trainer.enable_progress_bar", "yes", "trainer.enable_progress_bar='yes' must be true or false"),
    ("trainer.deterministic", "false", "trainer.deterministic='false' must be true or false"),
    ("trainer.threads", 0, "trainer.threads=0 must be null or an integer >= 1"),
    ("eval.min_len", 0, "eval.min_len=0 must be an integer >= 1"),
    ("eval.max_len", -5, "eval.max_len=-5 must be an integer >= 1"),
    ("eval.min_len", 50, "empty evaluation range eval.min_len=50 eval.max_len=40; need min_len <= max_len"),
    ("eval.lengths", [8, 0], "eval.lengths=[8, 0] must be null or a list of 1 or more integers >= 1"),
    ("eval.lengths", [], "eval.lengths=[] must be null or a list of 1 or more integers >= 1"),
    ("eval.lengths", "8,16", "eval.lengths='8,16' must be null or a list of 1 or more integers >= 1"),
    ("eval.n_per_length", 0, "eval.n_per_length=0 must be an integer >= 1"),
    ("eval.batch_size", 0, "eval.batch_size=0 must be an integer >= 1"),
    ("eval.checkpoint", "worst", "eval.checkpoint='worst' is not one of best, last"),
    ("eval.samples", -1, "eval.samples=-1 must be an integer >= 0"),
    ("logger.name", "tensorboard", "logger.name='tensorboard' is not one of wandb, csv, none"),
    ("logger.mode", "dryrun", "logger.mode='dryrun' is not one of offline, online, disabled"),
    ("logger.project", "", ["logger.project=''", "a string of 1 to 200"]),
    ("logger.project", None, ["logger.project=None", "a string"]),
    ("task.name", 7, ["task.name=7", "a string"]),
    ("task.name", None, ["task.name=None", "a string"]),
    ("task.train_min", 0, "task.train_min=0 must be an integer >= 1"),
    ("task.train_max", "20", "task.train_max='20' must be an integer >= 1"),
    ("task.eval_max", 0.5, "task.eval_max=0.5 must be an integer >= 1"),
    ("task.eval_lengths", [0], "task.eval_lengths=[0] must be null or a list of 1 or more integers >= 1"),
    ("task.train_min", 30, "empty training range task.train_min=30 task.train_max=20; need 1 <= train_min <= train_max"),
    ("pe.name", "", ["pe.name=''", "a string"]),
    # unknown keys: refused with the valid ones
    ("unknown", 1, ["unknown top-level key unknown; valid keys at the top level: data, eval, logger, model, pe"]),
    ("trainer.foo", 1, ["unknown key trainer.foo; valid keys of trainer: accelerator, batch_size, betas"]),
    ("model.heads", 4, ["unknown key model.heads; valid keys of model: activation, bias"]),
    ("data.n_test", 4, ["unknown key data.n_test; valid keys of data: bucket_batches, cache_dir"]),
    ("eval.max_length", 4, ["unknown key eval.max_length; valid keys of eval:"]),
    ("logger.mode ", 4, ["unknown key logger.'mode '; valid keys of logger: entity, group, init_timeout, mode, name, project"]),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD, ids=[f"{k}={str(v)[:12]}" for k, v, _ in BAD])
def test_bad_value_is_one_line_naming_key_value_and_rule(base, key, value, expected):
    msg = error_of(with_values(base, **{key: value}))
    if isinstance(expected, str):
        assert msg == expected
    else:
        for needle in expected:
            assert needle in msg, msg


GOOD = [
    {},
    {"study": 2024},  # Hydra reads study=2024 as an integer: still a fine folder name
    {"study": "kazemnejad2023-cpu", "runs_root": "/tmp/ünï cödé runs"},
    {"seed": 0},
    {"data.cache_dir": "/tmp/cache", "data.pack_width": 0},
    {"model.norm_eps": 1e-6, "model.bias_block_elements": 1024, "model.activation": "swiglu"},
    {"model.norm": "rmsnorm", "model.dropout": 0.0, "model.d_model": 1, "model.n_heads": 1},
    {"trainer.precision": 32, "trainer.devices": "auto", "trainer.threads": 1},
    {"trainer.precision": "bf16-mixed", "trainer.devices": [0, 1], "trainer.accelerator": "cpu"},
    {"trainer.devices": -1, "trainer.lr": 1, "trainer.betas": [0, 0.999], "trainer.warmup": 0},
    {"trainer.schedule": "constant", "trainer.min_lr_ratio": 1, "trainer.gradient_clip": 0},
    {"eval.lengths": [1, 64, 2048], "eval.min_len": 100},  # an explicit list replaces the range
    {"eval.checkpoint": "last", "eval.samples": 0},
    {"logger.entity": "me", "logger.group": 2024, "logger.mode": "online"},
    {"task.train_lengths": [3, 1], "task.train_min": 9},  # an explicit list replaces the range
    {"pe.max_positions": 16, "task.symbols": ["a", "b"]},  # task/pe options: their constructors check
    {"hydra": {"run": {"dir": "x"}}},  # a config with Hydra's own node (return_hydra_config=True)
]


@pytest.mark.parametrize("values", GOOD, ids=[",".join(v) or "defaults" for v in GOOD])
def test_good_values_pass(base, values):
    check(with_values(base, **values))


def test_every_shipped_config_passes():
    """Every option of every group (cycled together, one compose per task) and the studies."""
    groups = ("pe", "model", "trainer", "eval", "logger")
    options = {g: sorted(p.stem for p in (conf_dir() / g).glob("*.yaml")) for g in ("task", *groups)}
    assert len(options["task"]) >= max(len(options[g]) for g in groups)
    for i, task in enumerate(options["task"]):
        picks = [f"{g}={options[g][i % len(options[g])]}" for g in groups]
        check(compose("config", [f"+{picks[0]}", f"task={task}", *picks[1:]]))
    for study in ("kazemnejad2023", "kazemnejad2023-cpu"):
        check(compose("config", [f"+experiment={study}/copy"]))


def test_schema_covers_every_shipped_key():
    """A key added to the yaml but not to the schema would be refused as unknown: keep them in step."""
    declared = set(described_keys())
    for overrides in (["+pe=nope"], ["+pe=ape", "model=paper", "trainer=paper", "logger=csv"]):
        cfg = OmegaConf.to_container(compose("config", overrides), resolve=False)
        for section in ("data", "model", "trainer", "eval", "logger"):
            for key in cfg[section]:
                assert f"{section}.{key}" in declared
        assert {k for k in cfg if not isinstance(cfg[k], dict)} <= declared


def test_missing_pe_and_missing_keys(base):
    choices = ", ".join(sorted(p.stem for p in (conf_dir() / "pe").glob("*.yaml")))  # every conf/pe file
    assert {"alibi", "ape", "nope", "rope", "t5"} <= set(choices.split(", "))
    assert error_of(compose("config", [])).startswith(
        f"no positional encoding chosen: add +pe=NAME with NAME one of {choices}"
    )
    assert error_of(with_values(base, pe=None)).startswith("no positional encoding chosen")
    cfg = copy.deepcopy(base)
    with open_dict(cfg):
        del cfg.trainer["lr"]
    assert error_of(cfg) == "trainer.lr is missing; it must be a number > 0"
    cfg = copy.deepcopy(base)
    cfg.trainer.lr = "???"
    assert error_of(cfg) == "trainer.lr has no value (???); set trainer.lr=..."
    cfg = copy.deepcopy(base)
    with open_dict(cfg):
        del cfg["data"]
    assert error_of(cfg) == "config section data is missing"
    assert error_of(with_values(base, data=5)).startswith("data=5 must be a mapping with keys n_train")
    assert error_of(with_values(base, trainer=[1, 2])).startswith("trainer=[1, 2] must be a mapping")
    assert error_of(with_values(base, logger={"mode": "offline"})) == (
        "logger.name is missing; it must be one of wandb, csv, none"
    )
    assert error_of(with_values(base, logger={"name": "csv", "mode": "offline"})) == (
        "unknown key logger.mode; valid keys of logger: name"
    )


def test_commands_without_a_model_and_with_keys_of_their_own():
    """``lengen data``: the train config plus its own top-level keys, no PE needed."""
    cfg = compose("data", [])
    own = ["n", "split", "length", "full", "out"]
    check(cfg, pe=False, extra=own)
    with pytest.raises(ConfigError, match="no positional encoding chosen"):
        check(cfg, extra=own)  # pe=True: the train default
    with pytest.raises(ConfigError, match="unknown top-level key n;"):
        check(cfg, pe=False)
    with pytest.raises(ConfigError, match=r"data\.n_train=0 must be"):
        check(with_values(cfg, **{"data.n_train": 0}), pe=False, extra=own)
    with pytest.raises(ConfigError, match=r"pe\.name=''"):  # a PE given anyway is still checked
        check(with_values(cfg, pe={"name": ""}), pe=False, extra=own)


def test_interpolations_are_resolved_or_reported(base):
    assert error_of(with_values(base, **{"trainer.max_steps": "${nope}"})) == (
        "trainer.max_steps cannot be resolved: Interpolation key 'nope' not found"
    )
    # eval.max_len follows task.eval_max: the task's own key is reported first
    assert error_of(with_values(base, **{"task.eval_max": 0})).startswith("task.eval_max=0")
    # run_id/run_dir need Hydra's runtime (${hydra:job.override_dirname}): skipped outside a Hydra app
    with pytest.raises(Exception, match="HydraConfig was not set"):
        str(base.run_dir)
    check(base)


def test_values_are_shown_short_and_on_one_line(base):
    msg = error_of(with_values(base, study="é" * 5000))
    assert "(5000 characters)" in msg and len(msg) < 300
    msg = error_of(with_values(base, **{"logger.project": "a\u2028b\x1b[1m"}))
    assert "\\u2028" in msg and "\\x1b" in msg
    msg = error_of(with_values(base, **{"trainer.betas": list(range(1000))}))
    assert len(msg) < 300


def test_gpu_without_cuda_names_the_fix(base, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("gpu", "cuda"):
        msg = error_of(with_values(base, **{"trainer.accelerator": name}))
        assert msg == (
            f"trainer.accelerator='{name}' but torch sees no CUDA GPU on this machine; "
            f"use trainer.accelerator=cpu (or auto)"
        )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check(with_values(base, **{"trainer.accelerator": "gpu"}))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert "trainer.accelerator=cpu" in error_of(with_values(base, **{"trainer.accelerator": "mps"}))


def test_unexpected_failure_is_a_config_error_naming_the_key(base, monkeypatch):
    def broken(self, value):
        raise ZeroDivisionError("a bug in a rule")

    monkeypatch.setattr(schema.Float, "ok", broken)
    assert error_of(base) == "cannot check model.dropout: ZeroDivisionError: a bug in a rule"
    monkeypatch.undo()
    monkeypatch.setattr(schema.ModelSchema, "cross", classmethod(lambda cls, v, path: 1 / 0))
    assert error_of(base).startswith("cannot check model: ZeroDivisionError")
    assert error_of(OmegaConf.create([1])).startswith("the config must be a mapping")


# -- property: any override gives success or exactly one one-line ConfigError ---------------------

KEYS = [*sorted(described_keys()), "unknown", "trainer.foo", "model.x", "task.symbols", "pe.base", "logger.entity"]
RAW = ["abc", "1.5", "1e3", "-0", "yes", "True", "NaN", "-inf", "[1,2]", "[0.9]", "[]", "{a:1}", "${oops}",
       "'${seed}'", "???", "null", "''", "'a/b'", "[0.9,0.98]", "[1,'x']", "32-true", "bf16-mixed", "2024"]
CHOICES = ["cpu", "gpu", "auto", "mps", "best", "last", "wandb", "csv", "none", "offline", "online", "relu",
           "swiglu", "rmsnorm", "cosine", "linear", "constant", "16-mixed", "copy", "nope"]


def quoted(s: str) -> str:
    """``s`` as a Hydra single-quoted string (escape quotes and the backslashes before them)."""
    s = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", s)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, s) + "'"


def rendered(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(rendered(v) for v in value) + "]"
    return quoted(value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2, max_value=2),
    st.text(max_size=12),
    st.text(min_size=90, max_size=400),
    st.sampled_from(CHOICES),
)
values = st.one_of(
    scalars.map(rendered),
    st.lists(scalars, max_size=4).map(rendered),
    st.sampled_from(RAW),
)
override = st.builds(lambda k, v: f"++{k}={v}", st.sampled_from(KEYS), values)
group = st.sampled_from(["task=reverse", "task=addition", "task=passkey", "model=paper", "trainer=paper",
                         "logger=csv", "logger=none", "eval=default"])


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=st.lists(st.one_of(override, override, override, group), min_size=1, max_size=3))
def test_any_overrides_give_success_or_one_line_config_error(overrides):
    try:
        cfg = compose("config", ["+pe=nope", *overrides])
        validate(cfg)  # the whole plan `lengen train` checks before any work (schema.check first)
    except ConfigError as e:
        msg = str(e)
        assert msg and len(msg.splitlines()) == 1 and "\n" not in msg and "\r" not in msg, msg


def test_config_group_set_to_null_is_a_config_error():
    with pytest.raises(ConfigError):
        compose("config", ["+pe=nope", "trainer=null"])


# -- the real command: one line on stderr, exit 2, nothing written ---------------------------------

CLI_CASES = {
    "trainer.max_steps=abc": "trainer.max_steps='abc' must be an integer >= 1",
    "trainer.precision=fp64": "trainer.precision='fp64' is not one of",
    "+trainer.foo=1": "unknown key trainer.foo; valid keys of trainer:",
    "data.n_train=0": "data.n_train=0 must be an integer >= 1",
}


def test_train_refuses_bad_config_with_one_line(tmp_path):
    """Needs ``lengen train`` to call :func:`lengen.schema.check` (wired by the train command)."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    procs = {
        bad: subprocess.Popen(
            [sys.executable, "-m", "lengen.cli", "train", "+pe=nope", *tiny_overrides(tmp_path / str(i)), bad],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i, bad in enumerate(CLI_CASES)
    }
    for i, (bad, proc) in enumerate(procs.items()):
        _, err = proc.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lengen: error: "), (bad, err[-2000:])
        assert CLI_CASES[bad] in lines[0], (bad, lines[0])
        assert proc.returncode == 2, (bad, proc.returncode)
        assert not (tmp_path / str(i) / "runs").exists()  # refused before the run dir was made
