"""Shared pieces of the ``scripts/bench_*.py`` benchmarks: the benchmark model shape, the PE configs
from ``conf/pe``, a Lightning Trainer configured like ``lengen train``, the FLOP formula and the
matmul peak.

FLOPs per trained token (stated in every table): ``6 * N + 6 * n_layers * L * d_model`` where
``N`` is the non-embedding parameter count (blocks + final norm; the tied token table and PE
tables excluded) and ``L`` the row length: the forward pass costs ``2N`` for the matmuls plus, for
causal attention, ``QK^T`` and ``AV`` at ``2 * (L/2) * d_model`` each per layer; backward is twice
the forward.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

import lengen.conf

#: the shape named in issue 5 ("4 layers, d_model 256, 4 heads, d_ff 1024").
BENCH_MODEL: dict[str, Any] = {
    "d_model": 256, "n_heads": 4, "n_layers": 4, "d_ff": 1024, "activation": "relu",
    "norm": "layernorm", "bias": True, "dropout": 0.0, "tie_embeddings": True,
}
PES = ("nope", "ape", "sinusoidal", "t5", "alibi", "rope")
NA_GPT2 = "n/a (pip install -e '.[bench]')"


def conf_yaml(group: str, name: str) -> dict[str, Any]:
    return yaml.safe_load((Path(lengen.conf.__file__).parent / group / f"{name}.yaml").read_text()) or {}


def pe_cfg(name: str, max_len: int = 512) -> dict[str, Any]:
    """The PE's defaults from ``conf/pe``; an absolute table is grown to ``max_len`` if needed."""
    cfg = conf_yaml("pe", name)
    if "max_positions" in cfg:
        cfg["max_positions"] = max(int(cfg["max_positions"]), int(max_len))
    return cfg


def optim_cfg() -> dict[str, Any]:
    trainer = conf_yaml("trainer", "cpu")
    keys = ("lr", "weight_decay", "betas", "warmup", "schedule", "min_lr_ratio", "max_steps")
    return {k: trainer[k] for k in keys}


def set_threads(n: int) -> int:
    torch.set_num_threads(int(n))
    return torch.get_num_threads()


def hardware() -> dict[str, Any]:
    """``lengen.hardware.hardware_info()`` (processor, SIMD level, torch build, threads, label)."""
    from lengen.hardware import hardware_info

    return hardware_info()


def machine_line() -> str:
    """One line naming where the numbers were measured: the processor label first."""
    hw = hardware()
    return (f"{hw['label']}; {hw['cpu']['cores']} cores, {torch.get_num_threads()} threads, "
            f"python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")


def bf16_choice(flag: str, hw: dict[str, Any] | None = None) -> tuple[bool, str]:
    """Whether to time bf16-mixed (``--bf16 auto|on|off``) and why, by capability: CUDA or a CPU with
    native bf16 instructions (avx512_bf16 / amx_bf16 / ARM bf16) is measured; elsewhere oneDNN
    emulates bf16 (0.03-0.04x fp32 measured on AVX2) and ``auto`` skips it, saying so."""
    hw = hw or hardware()
    if flag == "on":
        return True, "forced by --bf16 on"
    if flag == "off":
        return False, "skipped: --bf16 off"
    if hw.get("gpu"):
        return True, f"native bf16 on {', '.join(hw['gpu']['names'])}"
    if hw["cpu"]["native_bf16"]:
        native = [f for f in hw["cpu"]["simd"] if "bf16" in f]
        return True, f"native bf16 on this CPU ({', '.join(native)})"
    return False, (f"skipped: {hw['cpu']['model']} has no native bf16 (no avx512_bf16 / amx_bf16), so bf16 "
                   f"is emulated (~0.03x fp32 on AVX2); --bf16 on measures it anyway")


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters of the blocks and the final norm (token table, tied head and PE tables excluded)."""
    return sum(p.numel() for p in model.blocks.parameters()) + sum(p.numel() for p in model.norm.parameters())


def train_flops_per_token(n_params: int, n_layers: int, d_model: int, length: int) -> float:
    return 6.0 * n_params + 6.0 * n_layers * length * d_model


def matmul_peak(threads: int | None = None, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of a ``size``-cubed matmul (the machine's practical peak)."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# -- the lengen train path ------------------------------------------------------------------------
class StepTimer:
    """Lightning callback: wall time between consecutive ``on_train_batch_start`` calls, i.e. one
    full loop iteration (data fetch, forward, backward, clipping, optimizer, logging)."""

    def __init__(self) -> None:
        import lightning as L

        class _CB(L.Callback):
            def __init__(cb) -> None:
                cb.starts: list[float] = []

            def on_train_batch_start(cb, trainer, pl_module, batch, batch_idx) -> None:
                cb.starts.append(time.perf_counter())

            def on_train_end(cb, trainer, pl_module) -> None:
                cb.starts.append(time.perf_counter())

        self.callback = _CB()

    def step_times(self, skip: int) -> list[float]:
        s = self.callback.starts
        return [b - a for a, b in zip(s[skip:-1], s[skip + 1 :])]


def lengen_trainer(max_steps: int, callbacks: list, precision: str = "32-true", root: str | None = None):
    """A Trainer configured like ``lengen train`` (same clipping, precision, determinism), minus
    logger, progress bar and checkpointing, which are not part of a training step's cost."""
    import lightning as L

    trainer_cfg = conf_yaml("trainer", "cpu")
    return L.Trainer(
        accelerator="auto", devices=1, precision=precision, max_steps=max_steps, max_epochs=-1,
        num_sanity_val_steps=0, limit_val_batches=0,
        gradient_clip_val=float(trainer_cfg["gradient_clip"]) or None,
        logger=False, callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, deterministic=bool(trainer_cfg["deterministic"]),
        log_every_n_steps=max(1, min(50, max_steps // 10)),
        default_root_dir=root or tempfile.gettempdir(),
    )


class RepeatBatch(torch.utils.data.IterableDataset):
    """The same collated batch forever (synthetic fixed-length rows)."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.batch = batch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.batch


def synthetic_batch(batch: int, length: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, length + 1), generator=g)
    return {"input_ids": ids[:, :-1].contiguous(), "labels": ids[:, 1:].contiguous()}


def fit_steps(module, loader, steps: int, warmup: int, precision: str = "32-true") -> list[float]:
    """Run ``warmup + steps`` optimisation steps of ``module`` through a lengen-style Trainer."""
    timer = StepTimer()
    trainer = lengen_trainer(warmup + steps, [timer.callback], precision=precision)
    trainer.fit(module, loader)
    return timer.step_times(warmup)


def quiet_lightning() -> None:
    import logging
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                 "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*TPU available.*")
    warnings.filterwarnings("ignore", ".*deterministic.*")
    warnings.filterwarnings("ignore", ".*val_dataloader.*")
    warnings.filterwarnings("ignore", ".*validation_step.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
