"""The benchmark scripts run end to end with tiny arguments and return real measurements: every
throughput and ratio is finite and positive, the eval check agrees with greedy decoding, peak memory
grows with the sequence length and covers a tensor the forward must hold, and every output names
the processor (``lengen.hardware`` label). GPT-2 is optional: without ``transformers`` the scripts
print "n/a" in its column, so this test never needs it."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from lengen.hardware import hardware_info

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name: str):
    sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"_smoke_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def positive(*xs: float) -> bool:
    return all(isinstance(x, float | int) and math.isfinite(x) and x > 0 for x in xs)


def test_bench_train_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("LENGEN_CACHE", str(tmp_path))
    out = load("bench_train").main([
        "--lengths", "8", "--batch", "2", "--pes", "nope", "t5", "--repeats", "1", "--steps", "1",
        "--threads", "1", "--no-gpt2", "--bf16", "on", "--tasks", "copy", "--real-n", "200", "--pad-batches", "2",
        "--real-steps", "1",
    ])
    assert out["hardware"] == hardware_info()["label"]
    assert out["bf16"] == {"measured": True, "reason": "forced by --bf16 on"}
    assert set(out["fixed"]) == {"nope@8", "t5@8", "bf16@8"}
    for key in ("nope@8", "t5@8"):
        r = out["fixed"][key]
        assert r["vs_gpt2"] is None
        assert positive(r["tok_s"], r["vs_bare"], r["gflops"], r["of_peak"], r["step_vs_nope"]), r
        assert r["of_peak"] < 1.5  # a tiny model cannot beat the measured matmul peak
    assert out["fixed"]["nope@8"]["step_vs_nope"] == 1.0
    assert positive(out["fixed"]["bf16@8"]["tok_s"], out["fixed"]["bf16@8"]["speedup"], out["peak"])
    assert 0 <= out["padding"]["copy"]["packed"] < 1 and 0 <= out["padding"]["copy"]["bucketed"] < 1
    real = out["real"]["t5"]
    assert positive(real["tok_s"], real["useful_tok_s"], real["samples_s"], real["pipeline_samples_s"])
    assert real["useful_tok_s"] <= real["tok_s"]


def test_bf16_is_measured_by_capability():
    common = load("_bench_common")
    cpu = {"model": "AMD EPYC 7763", "simd": ["avx2"], "native_bf16": False}
    measure, why = common.bf16_choice("auto", {"cpu": cpu, "gpu": None})
    assert not measure and "AMD EPYC 7763 has no native bf16" in why
    amx = {"model": "Intel Xeon Platinum 8480+", "simd": ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"],
           "native_bf16": True}
    assert common.bf16_choice("auto", {"cpu": amx, "gpu": None}) == (
        True, "native bf16 on this CPU (avx512_bf16, amx_bf16)")
    assert common.bf16_choice("auto", {"cpu": cpu, "gpu": {"names": ["NVIDIA H100"]}})[0]
    assert common.bf16_choice("off", {"cpu": amx, "gpu": None})[0] is False
    assert common.bf16_choice("on", {"cpu": cpu, "gpu": None})[0] is True
    assert hardware_info()["label"] in common.machine_line()


def test_bench_eval_smoke():
    out = load("bench_eval").main([
        "--lengths", "12", "--batch", "2", "--pes", "nope", "alibi", "rope", "--repeats", "1", "--threads", "1",
        "--no-sweep",
    ])
    assert out["hardware"] == hardware_info()["label"]
    assert set(out["tf_vs_greedy"]) == {"nope@12", "alibi@12", "rope@12"}
    for r in out["tf_vs_greedy"].values():
        # even rows are the greedy continuation, odd rows have one token changed: exactly half right
        assert r["exact_match"] == 0.5, r
        assert positive(r["teacher_tok_s"], r["greedy_tok_s"], r["teacher_s"], r["greedy_s"], r["speedup"]), r


def test_bench_memory_smoke():
    """Peak memory of a forward at 2048 tokens covers at least the FFN activation it must hold
    (2048 x d_ff fp32 = 8 MiB) and exceeds that at 256 tokens."""
    common = load("_bench_common")
    out = load("bench_memory").main(["--lengths", "256", "2048", "--pes", "t5", "--threads", "1",
                                     "--device", "cpu"])
    assert out["hardware"] == hardware_info()["label"] and out["device"] == "cpu"
    assert set(out) == {"hardware", "device", "t5@256", "t5@2048"}
    short, long = out["t5@256"], out["t5@2048"]
    ffn_mb = 2048 * common.BENCH_MODEL["d_ff"] * 4 / 2**20
    assert long["peak_mb"] >= ffn_mb, out
    assert long["peak_mb"] > short["peak_mb"], out
    assert positive(short["seconds"], long["seconds"])


@pytest.mark.parametrize("pe", [{"name": "t5"}, {"name": "t5", "shared": False}, {"name": "alibi"}])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_long_context_bias_blocks_without_autograd_equal_dense(pe, mode):
    """The memory benchmark's path: blockwise bias built into one reused buffer (no autograd),
    with and without a KV cache, equals the dense bias of a small context."""
    from lengen.model.config import ModelConfig
    from lengen.model.positional import build_pe
    from lengen.model.transformer import Transformer

    def model(**kw):
        torch.manual_seed(0)
        cfg = ModelConfig(vocab_size=11, d_model=16, n_heads=2, n_layers=2, d_ff=32, **kw)
        m = Transformer(cfg, build_pe(pe, d_model=16, n_heads=2, n_layers=2)).double().eval()
        for t in m.pe.parameters():
            t.data.normal_()
        return m

    dense, blocked = model(), model(bias_block_elements=2 * 19 * 4)  # ~4 queries a block
    x = torch.randint(0, 11, (1, 19), generator=torch.Generator().manual_seed(0))
    pos = torch.arange(19)[None] + 2
    with getattr(torch, mode)():
        want = dense(x, pos=pos)
        torch.testing.assert_close(blocked(x, pos=pos), want, rtol=1e-12, atol=1e-12)
        cache = blocked.new_cache(1, 19, like=blocked.tok.weight)
        parts = [blocked(x[:, a:b], pos=pos[:, a:b], cache=cache) for a, b in ((0, 9), (9, 19))]
        torch.testing.assert_close(torch.cat(parts, dim=1), want, rtol=1e-12, atol=1e-12)
