"""The benchmark scripts run end to end with tiny arguments (numbers are not checked, only that
every part executes and returns its summary). GPT-2 is optional: without ``transformers`` the
scripts print "n/a" in its column, so this test never needs it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name: str):
    sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"_smoke_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _restore_torch_state():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def test_bench_train_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("LENGEN_CACHE", str(tmp_path))
    out = load("bench_train").main([
        "--lengths", "8", "--batch", "2", "--pes", "nope", "t5", "--repeats", "1", "--steps", "1",
        "--threads", "1", "--no-gpt2", "--bf16", "on", "--tasks", "copy", "--real-n", "200", "--pad-batches", "2",
        "--real-steps", "1",
    ])
    assert set(out["fixed"]) == {"nope@8", "t5@8", "bf16@8"}
    assert out["fixed"]["nope@8"]["vs_gpt2"] is None
    assert 0 <= out["padding"]["copy"]["packed"] < 1
    assert out["real"]["t5"]["useful_tok_s"] > 0


def test_bench_eval_smoke():
    out = load("bench_eval").main([
        "--lengths", "12", "--batch", "2", "--pes", "nope", "alibi", "rope", "--repeats", "1", "--threads", "1",
        "--no-sweep",
    ])
    assert set(out["tf_vs_greedy"]) == {"nope@12", "alibi@12", "rope@12"}
    assert out["tf_vs_greedy"]["rope@12"]["exact_match"] == 0.5


def test_bench_memory_smoke():
    out = load("bench_memory").main(["--lengths", "64", "--pes", "t5", "rope", "--threads", "1",
                                     "--device", "cpu"])
    assert set(out) == {"t5@64", "rope@64"}
    assert all(r["peak_mb"] >= 0 for r in out.values())


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
