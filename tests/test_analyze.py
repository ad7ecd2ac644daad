"""``lengen analyze``: the attention recorder, divergence, head matching, distances, probes, the command.

Models are tiny and built in the test (random weights, some set by hand so the right answer is
known in closed form); run dirs are written directly (config.yaml, a checkpoint, results.parquet)
instead of trained, so the whole file runs in seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from lengen.analyze import runner
from lengen.analyze.capture import AttentionMaps, attention_maps, recording
from lengen.analyze.distance import DistanceStats
from lengen.analyze.divergence import PairDivergence, match_heads, row_divergences
from lengen.analyze.inputs import Inputs
from lengen.analyze.runs import Loaded
from lengen.errors import ConfigError
from lengen.model.build import build_model
from lengen.rundir import Run
from lengen.schema import AnalyzeSchema, keys_of
from tests.conftest import tiny_overrides
from tests.test_schema import values

MODEL = {"d_model": 32, "n_heads": 4, "n_layers": 2, "d_ff": 64, "dropout": 0.0}
PES = {"nope": {}, "t5": {"num_buckets": 8, "max_distance": 16}, "alibi": {}, "rope": {}, "ape": {"max_positions": 64},
       "cope": {"p_max": 8}}
VOCAB = 12


def tiny(pe: str, seed: int = 0, **model) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model({**MODEL, **model}, {"name": pe, **PES[pe]}, VOCAB).eval()


def tokens(batch: int = 3, length: int = 9, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def uniform(model):
    """Zero the query projection: every logit is 0 (+ the PE bias), so NoPE attends uniformly."""
    with torch.no_grad():
        for block in model.blocks:
            d = block.attn.qkv.out_features // 3
            block.attn.qkv.weight[:d] = 0
            block.attn.qkv.bias[:d] = 0
    return model


def self_attending(pe_model):
    """ALiBi with zero queries and huge slopes: each query attends (numerically) only to itself."""
    uniform(pe_model)
    pe_model.pe.slopes.fill_(1e4)
    return pe_model


# -- the recorder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pe", sorted(PES))
@pytest.mark.parametrize("blocked", [False, True], ids=["dense", "blocked"])
def test_recorded_attention_reproduces_the_layer_output(pe, blocked):
    """probs @ v equals what SDPA computed, for every PE, also on the blocked long-context path."""
    model = tiny(pe, bias_block_elements=40 if blocked else 1 << 22)
    ids = tokens()
    seen: dict[int, list] = {}
    hooks = []
    for i, block in enumerate(model.blocks):
        hooks.append(block.attn.qkv.register_forward_hook(lambda _m, _i, out, i=i: seen.setdefault(i, []).append(out)))
        hooks.append(block.attn.out.register_forward_pre_hook(lambda _m, args, i=i: seen[i].append(args[0])))
    blocks: list[tuple[int, int]] = []
    recorder = AttentionMaps()
    with torch.no_grad():
        plain = model(ids)
        seen.clear()
        with recording(model, lambda layer, qs, p: (blocks.append((layer, qs)), recorder(layer, qs, p))):
            recorded = model(ids)
    maps = recorder.maps()
    for h in hooks:
        h.remove()
    assert torch.equal(plain, recorded)  # recording changes nothing
    assert all(b.attn.recorder is None for b in model.blocks)  # and is removed afterwards
    if blocked:
        assert len(blocks) > MODEL["n_layers"]  # several query blocks per layer were streamed
    b, length = ids.shape
    heads, dh = MODEL["n_heads"], MODEL["d_model"] // MODEL["n_heads"]
    for layer, probs in enumerate(maps):
        qkv, y = seen[layer]
        v = qkv.view(b, length, 3, heads, dh)[:, :, 2].transpose(1, 2)
        assert probs.shape == (b, heads, length, length)
        torch.testing.assert_close(probs.sum(-1), torch.ones(b, heads, length))
        assert float(probs.triu(1).abs().max()) == 0.0  # nothing after the query
        torch.testing.assert_close((probs @ v).transpose(1, 2).reshape(b, length, -1), y, atol=1e-5, rtol=1e-4)


# -- divergence and head matching ---------------------------------------------------------------------


def test_row_divergences_known_values():
    p = torch.tensor([1.0, 0.0])
    q = torch.tensor([0.0, 1.0])
    jsd, _ = row_divergences(p, q)
    assert math.isclose(float(jsd), math.log(2), rel_tol=1e-6)  # disjoint supports: ln 2
    jsd, skl = row_divergences(torch.tensor([0.3, 0.7]), torch.tensor([0.3, 0.7]))
    assert float(jsd) == 0.0 and float(skl) == 0.0


def _pair_jsd(model_a, model_b, ids) -> pd.DataFrame:
    stats = PairDivergence()
    stats.add(ids.shape[1], attention_maps(model_a, ids), attention_maps(model_b, ids),
              torch.ones(ids.shape, dtype=torch.bool))
    return pd.DataFrame(stats.results())


def test_jsd_of_a_model_with_itself_is_zero():
    model = tiny("t5")
    rows = _pair_jsd(model, model, tokens())
    assert (rows["jsd"].abs() < 1e-7).all() and (rows["sym_kl"].abs() < 1e-5).all()
    assert (rows["head_b"] == rows["head"]).all()


def test_jsd_against_uniform_attention_is_the_closed_form():
    """Self-only attention vs uniform over a prefix of n keys: JSD = ½[ln(2n/(n+1)) + (1/n) ln(2/(n+1))
    + ((n-1)/n) ln 2], averaged over the query rows n = 1..L."""
    ids = tokens(length=11)
    rows = _pair_jsd(self_attending(tiny("alibi")), uniform(tiny("nope", seed=3)), ids)

    def jsd(n: int) -> float:
        return 0.5 * (math.log(2 * n / (n + 1)) + math.log(2 / (n + 1)) / n + (n - 1) / n * math.log(2))

    expected = np.mean([jsd(n) for n in range(1, ids.shape[1] + 1)])
    assert expected > 0.2
    np.testing.assert_allclose(rows["jsd"], expected, rtol=1e-4)


def test_head_matching_finds_the_permuted_head():
    """B is A with its heads permuted (the same function): each head of A is matched to its copy."""
    a = tiny("nope", n_layers=1)
    b = tiny("nope", n_layers=1)
    b.load_state_dict(a.state_dict())
    perm = torch.tensor([2, 0, 3, 1])  # B's head j is A's head perm[j]
    d, dh = MODEL["d_model"], MODEL["d_model"] // MODEL["n_heads"]
    rows = torch.cat([(part * d + perm[:, None] * dh + torch.arange(dh)).reshape(-1) for part in range(3)])
    cols = (perm[:, None] * dh + torch.arange(dh)).reshape(-1)
    with torch.no_grad():
        attn_a, attn_b = a.blocks[0].attn, b.blocks[0].attn
        attn_b.qkv.weight.copy_(attn_a.qkv.weight[rows])
        attn_b.qkv.bias.copy_(attn_a.qkv.bias[rows])
        attn_b.out.weight.copy_(attn_a.out.weight[:, cols])
    ids = tokens()
    torch.testing.assert_close(a(ids), b(ids), atol=1e-5, rtol=1e-5)  # the same function
    found = _pair_jsd(a, b, ids)
    inverse = torch.argsort(perm)  # A's head h is B's head inverse[h]
    assert found["head_b"].tolist() == inverse.tolist()
    assert (found["jsd"] < 1e-6).all()
    best, value = match_heads(np.array([[0.3, 0.1, 0.2], [0.05, 0.4, 0.5]]))
    assert best.tolist() == [1, 0] and value.tolist() == [0.1, 0.05]


# -- attended distance ---------------------------------------------------------------------------------


@pytest.mark.parametrize("blocked", [False, True], ids=["dense", "blocked"])
def test_distance_of_self_and_uniform_attention(blocked):
    """Self-only attention: every distance 0. Uniform over the prefix [0, i]: mean distance i/2,
    relative 1/2, argmax the first maximum (key 0), so i."""
    ids = tokens(length=10)
    valid = torch.ones(ids.shape, dtype=torch.bool)
    size = {"bias_block_elements": 50} if blocked else {}
    out = {}
    for name, model in (("self", self_attending(tiny("alibi", **size))), ("uniform", uniform(tiny("nope", **size)))):
        stats = DistanceStats()
        with recording(model, stats), torch.no_grad():
            stats.start(5, valid)
            model(ids)
        out[name] = pd.DataFrame(stats.results()).groupby("measure")["value"]
    assert out["self"].max().max() < 1e-6
    i = np.arange(ids.shape[1])
    np.testing.assert_allclose(out["uniform"].mean()["mean_distance"], (i / 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(out["uniform"].mean()["relative_distance"], 0.5, rtol=1e-5)
    np.testing.assert_allclose(out["uniform"].mean()["argmax_distance"], i.mean(), rtol=1e-5)


# -- probes --------------------------------------------------------------------------------------------


def run_config(root: Path, pe: str, seed: int = 1):
    """A train config as a finished run stores it (run_id and run_dir written out)."""
    from lengen.compose import compose

    cfg = compose("config", [f"+pe={pe}", f"seed={seed}", *tiny_overrides(root, **{"model.n_heads": 4})])
    cfg.run_id = "test"
    cfg.run_dir = str(root / "runs" / pe / f"seed{seed}")
    return cfg


def test_probe_reads_position_from_ape_embeddings_and_not_from_shuffled_labels(tmp_path):
    cfg = run_config(tmp_path, "ape")
    run = Run(cfg, Path(cfg.run_dir))
    inputs = Inputs(run, range(2, 11), 16)
    torch.manual_seed(0)
    model = run.build_model(len(inputs.tokenizer)).eval()
    rows = runner.probe([Loaded(run, model)], inputs, batch_size=16, ridge=1e-3, device=torch.device("cpu"))
    emb = rows[(rows["layer"] == 0) & rows["in_range"]].groupby("measure")["value"].mean()
    assert emb["position_accuracy"] > 0.95  # APE's table is in the embeddings: read off exactly
    assert emb["position_mae"] < 0.1
    assert emb["position_shuffled_accuracy"] < 0.35  # the control: no better than guessing frequent positions
    beyond = rows[(rows["layer"] == 0) & ~rows["in_range"] & (rows["measure"] == "position_accuracy")]
    assert len(beyond) and (beyond["value"] > 0.95).all()  # positions seen in fitting: still read (a table)
    assert set(rows["measure"]) == {f"{t}_{m}" for t in ("position", "to_end")
                                    for m in ("accuracy", "mae", "shuffled_accuracy")}


# -- the command ---------------------------------------------------------------------------------------


def fake_run(root: Path, pe: str, seed: int) -> Path:
    """A run dir as training leaves it: config.yaml, checkpoints/best.ckpt (random weights), results."""
    cfg = run_config(root, pe, seed)
    run = Run(cfg, Path(cfg.run_dir))
    run.dir.mkdir(parents=True)
    run.write_config()
    torch.manual_seed(seed)
    model = run.build_model(len(run.task_data().tokenizer))
    run.checkpoint("best").parent.mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, run.checkpoint("best"))
    pd.DataFrame({"run_id": [run.run_id]}).to_parquet(run.dir / "results.parquet")
    return run.dir


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("analyze")
    for pe, seed in (("nope", 1), ("nope", 2), ("t5", 1), ("alibi", 2)):
        fake_run(root, pe, seed)
    (root / "runs" / "rope" / "seed1").mkdir(parents=True)  # an unfinished run: skipped with a warning
    OmegaConf.save(run_config(root, "rope"), root / "runs" / "rope" / "seed1" / "config.yaml")
    return root


def test_analyze_attention_command(runs_root, tmp_path, lengen_main, capsys):
    out = tmp_path / "out"
    status = lengen_main("analyze", "attention", str(runs_root / "runs"), f"out={out}", "reference=nope",
                         "max_len=8", "n_per_length=4", "threads=1", "plots=true")
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "skipping run" in captured.err and "unfinished" in captured.err
    rows = pd.read_parquet(out / "attention.parquet")
    pairs = set(zip(rows["pe"], rows["seed"], rows["pe_b"], rows["seed_b"]))
    assert pairs == {("nope", 1, "nope", 2), ("nope", 1, "t5", 1), ("nope", 2, "alibi", 2)}  # same seed + baseline
    assert {"run_id", "run_id_b", "layer", "head", "head_b", "eval_length", "in_range", "measure", "value"} <= set(rows)
    assert rows["value"].ge(0).all() and rows.loc[rows["measure"] == "jsd", "value"].le(math.log(2)).all()
    assert sorted(rows["eval_length"].unique()) == list(range(1, 9))
    summary = (out / "attention.md").read_text()
    assert "baseline" in summary and "lengen analyze attention" in summary
    assert len(list(out.glob("attention_nope-s*_vs_*.png"))) == 3
    head_means = rows[rows["head"].isna()]  # the CSV: head-mean rows; the Parquet: every row
    assert 0 < len(head_means) < len(rows) and pd.read_csv(out / "attention.csv").shape[0] == len(head_means)


@pytest.mark.parametrize("analysis", ["distance", "probe"])
def test_analyze_distance_and_probe_commands(runs_root, tmp_path, lengen_main, capsys, analysis):
    out = tmp_path / analysis
    status = lengen_main("analyze", analysis, str(runs_root / "runs" / "nope"), str(runs_root / "runs" / "t5"),
                         f"out={out}", "lengths=[2,4,6,9]", "n_per_length=6", "threads=1", "plots=false")
    assert status == 0, capsys.readouterr().err
    rows = pd.read_csv(out / f"{analysis}.csv")
    assert rows["run_id"].nunique() == 3 and sorted(rows["eval_length"].unique()) == [2, 4, 6, 9]
    assert rows.loc[rows["eval_length"] == 9, "in_range"].eq(False).all()
    assert (out / f"{analysis}.md").is_file() and not list(out.glob("*.png"))


@pytest.mark.parametrize(("args", "needles"), [
    (["analyze", "attention", "/no/such/dir", "out=/tmp/x"], ["/no/such/dir", "no such run or sweep dir"]),
    (["analyze", "entropy", ".", "out=/tmp/x"], ["unknown analysis 'entropy'", "attention, distance, probe"]),
    (["analyze", "attention", "out=/tmp/x"], ["no run or sweep dir given"]),
    (["analyze", "distance", "RUNS", "out=/tmp/x", "pairs=some"], ["pairs='some'", "reference, all"]),
    (["analyze", "distance", "RUNS", "out=/tmp/x", "n_per_length=0"], ["n_per_length=0", ">= 1"]),
    (["analyze", "distance", "RUNS", "out=/tmp/x", "color=red"], ["color"]),
    (["analyze", "attention", "RUNS/nope/seed1", "out=/tmp/x"], ["at least two"]),
    (["analyze", "attention", "RUNS", "out=/tmp/x", "reference=rope"], ["reference=rope", "nope"]),
])
def test_bad_input_is_one_line(runs_root, lengen_main, capsys, args, needles):
    args = [a.replace("RUNS", str(runs_root / "runs")) for a in args]
    assert lengen_main(*args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lengen: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from([k.name for k in keys_of(AnalyzeSchema)]
                                                                              + ["colour", "max_len.x"]), values),
                          min_size=1, max_size=3))
def test_any_options_are_valid_or_one_line(overrides):
    """Random values for every option (wrong types, ranges, unicode, long strings): the composed
    options pass the schema or stop with one line (what runs before any run dir is read)."""
    from lengen.analyze.app import options
    from lengen.compose import compose

    try:
        options(compose("analyze", ["out=/tmp/lengen-analyze-fuzz", *overrides]))
    except ConfigError as e:
        assert str(e) and "\n" not in str(e), str(e)
