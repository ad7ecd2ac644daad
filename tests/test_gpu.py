"""The CUDA path (``pytest -m gpu``; ``bash scripts/gpu_check.sh`` runs these first): FlexAttention
equals the dense path forward and backward and never builds ``[heads, L, L]``; bf16-mixed training
and evaluation, ``trainer.compile`` and deterministic (warn-only) mode run end to end. Every test
here is skipped, with the reason, on a machine without a CUDA GPU."""

from __future__ import annotations

import os

import pytest
import torch

from lengen.model import flex_attention
from lengen.model.build import build_model
from tests.conftest import tiny_overrides

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (torch sees none); run bash scripts/gpu_check.sh on a GPU machine"),
]

MODEL = {"d_model": 64, "n_heads": 4, "n_layers": 2, "d_ff": 128}
VOCAB = 13


def packed(rows: int = 8, width: int = 128, device: str = "cuda") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (rows, width), generator=g)
    pos = torch.zeros(rows, width, dtype=torch.long)
    seg = torch.full((rows, width), -1, dtype=torch.long)
    for r in range(rows):
        off, slot = 0, 0
        while (n := int(torch.randint(4, 40, (1,), generator=g))) + off <= width - 4:
            pos[r, off : off + n], seg[r, off : off + n] = torch.arange(n), slot
            off, slot = off + n, slot + 1
    return {k: v.to(device) for k, v in {"input_ids": ids, "pos": pos, "segments": seg}.items()}


def loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    logits = model(batch["input_ids"], pos=batch["pos"], segments=batch["segments"])
    logits.float().logsumexp(-1).mean().backward()
    return logits.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("pe", ["nope", "rope", "t5", "alibi", "fire"])
def test_flex_equals_dense_forward_and_backward(pe, monkeypatch):
    torch.manual_seed(0)
    model = build_model(MODEL, {"name": pe}, VOCAB).cuda().train()  # dropout 0: the flex path applies
    batch = packed()
    calls = []
    real = flex_attention.attend
    monkeypatch.setattr(flex_attention, "attend", lambda *a: calls.append(1) or real(*a))
    flex_logits, flex_grads = loss_and_grads(model, batch)
    assert len(calls) == MODEL["n_layers"]
    monkeypatch.setattr(flex_attention, "applies", lambda *a: False)
    dense_logits, dense_grads = loss_and_grads(model, batch)
    torch.testing.assert_close(flex_logits, dense_logits, atol=1e-2, rtol=1e-2)  # (TF32 inside the kernels)
    assert flex_grads.keys() == dense_grads.keys()
    for name in dense_grads:  # learned biases (T5, FIRE) included: their gradients flow through score_mod
        torch.testing.assert_close(flex_grads[name], dense_grads[name], atol=1e-2, rtol=5e-2, msg=name)


@pytest.mark.parametrize("pe", ["t5", "alibi"])
def test_long_context_bias_never_materializes_heads_by_length_squared(pe):
    torch.manual_seed(0)
    model = build_model(MODEL, {"name": pe}, VOCAB).cuda().eval()
    length = 8192
    ids = torch.randint(1, VOCAB, (1, length), device="cuda")
    with torch.no_grad():
        model(ids[:, :256])  # compile / warm up outside the measurement
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        logits = model(ids)
        peak = torch.cuda.max_memory_allocated() - base
    dense = MODEL["n_heads"] * length * length * 4  # one fp32 [H, L, L]
    assert peak < dense / 8, f"peak {peak / 2**20:.0f} MiB vs one [H, L, L] of {dense / 2**20:.0f} MiB"
    cpu = build_model(MODEL, {"name": pe}, VOCAB).eval()
    cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    with torch.no_grad():  # causal: the first 1024 positions of the long forward are a 1024-token forward
        torch.testing.assert_close(logits[:, :1024].cpu(), cpu(ids[:, :1024].cpu()), atol=1e-2, rtol=1e-2)


def test_bf16_training_evaluation_and_deterministic_mode_on_cuda(tmp_path, lengen_main):
    """Packed t5 rows, bf16-mixed, deterministic=true (warn-only on CUDA, cuBLAS workspace set)."""
    import yaml

    assert lengen_main("train", "+pe=t5", "trainer.accelerator=gpu", "trainer.precision=bf16-mixed",
                       *tiny_overrides(tmp_path, **{"trainer.max_steps": 40, "trainer.val_every": 20})) == 0
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == ":4096:8"
    (results,) = (tmp_path / "runs").rglob("results.parquet")
    meta = yaml.safe_load((results.parent / "meta.yaml").read_text())
    assert meta["hardware"]["gpu"]["names"], meta["hardware"]


def test_compiled_training_on_cuda(tmp_path, lengen_main):
    assert lengen_main("train", "+pe=alibi", "trainer.accelerator=gpu", "trainer.precision=bf16-mixed",
                       "+trainer.compile=true",
                       *tiny_overrides(tmp_path, **{"trainer.max_steps": 20, "trainer.val_every": 20})) == 0
    assert list((tmp_path / "runs").rglob("results.parquet"))
