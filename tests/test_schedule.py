"""The learning-rate schedule: ``lr_lambda`` against values worked out by hand, and the learning rate
the optimizer really uses, step by step, in a tiny ``LengenModule`` trained by a Lightning Trainer."""

from __future__ import annotations

import itertools
import math

import lightning as L
import pytest
import torch

from lengen.data.batching import IGNORE
from lengen.training import LengenModule, lr_lambda

# Multipliers worked out by hand: n_warm = max(1, round(warmup * max_steps)); warm-up (step + 1) / n_warm;
# then progress p = (step - n_warm) / (max_steps - n_warm), capped at 1; cosine 0.5 (1 + cos(pi p)),
# linear 1 - p, constant 1; the floor r (min_lr_ratio) gives r + (1 - r) * shape.
# (max_steps, warmup, schedule, min_ratio) -> {step: multiplier}
HAND = {
    # 10 warm-up steps of 100 (1/10 ... 1), then p = 0, 1/3 (step 40), 1/2 (55), 1 (100), capped (250):
    # cos(pi/3) = 0.5 -> 0.75 at step 40
    (100, 0.1, "cosine", 0.0): {0: 0.1, 4: 0.5, 9: 1.0, 10: 1.0, 40: 0.75, 55: 0.5, 100: 0.0, 250: 0.0},
    (100, 0.1, "linear", 0.0): {9: 1.0, 10: 1.0, 40: 2 / 3, 91: 0.1, 100: 0.0},
    (100, 0.1, "cosine", 0.2): {40: 0.8, 55: 0.6, 100: 0.2},  # 0.2 + 0.8 * shape
    (100, 0.1, "linear", 0.2): {40: 0.2 + 0.8 * 2 / 3, 100: 0.2, 400: 0.2},
    (100, 0.1, "constant", 0.5): {2: 0.3, 10: 1.0, 99: 1.0},  # the floor neither lifts warm-up nor decays
    (50, 0.0, "cosine", 0.0): {0: 1.0},  # no warm-up still means n_warm = 1: step 0 at the peak
    (50, 0.0, "linear", 0.0): {2: 1 - 1 / 49},
    (30, 0.06, "cosine", 0.0): {0: 0.5, 1: 1.0, 16: 0.5},  # 0.06 * 30 = 1.8 rounds to 2 steps; p = 14/28
    (40_000, 0.06, "linear", 0.0): {1199: 0.5, 21_200: 0.5},  # the paper: 2400 warm-up steps; 18800/37600
}
CASES = [(step, *key, want) for key, points in HAND.items() for step, want in points.items()]


@pytest.mark.parametrize(("step", "max_steps", "warmup", "schedule", "min_ratio", "expected"), CASES)
def test_lr_lambda_matches_hand_computed_values(step, max_steps, warmup, schedule, min_ratio, expected):
    assert lr_lambda(step, max_steps, warmup, schedule, min_ratio) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decay_is_monotone_and_ends_on_the_floor(schedule):
    values = [lr_lambda(s, 60, 0.1, schedule, 0.25) for s in range(6, 80)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[0] == 1.0 and values[-1] == pytest.approx(0.25) and min(values) == pytest.approx(0.25)


# -- the optimizer's real learning rate in a Lightning fit --------------------------------------------

VOCAB = 12
MODEL = {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "activation": "relu", "norm": "layernorm",
         "bias": True, "dropout": 0.0, "tie_embeddings": True}


def batches(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(4, VOCAB, (4, 9), generator=g)
        labels = ids.roll(-1, dims=1)
        labels[:, :4] = IGNORE
        labels[:, -1] = IGNORE
        out.append({"input_ids": ids, "labels": labels})
    return out


class RecordLR(L.Callback):
    """The lr of every param group when each optimizer step starts (keyed by global step)."""

    def __init__(self) -> None:
        self.seen: dict[int, list[float]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen[trainer.global_step] = [g["lr"] for g in trainer.optimizers[0].param_groups]


@pytest.mark.parametrize(("schedule", "min_ratio"), [("cosine", 0.2), ("linear", 0.0), ("constant", 0.0)])
def test_optimizer_lr_follows_lr_lambda_in_a_real_fit(schedule, min_ratio):
    torch.set_num_threads(1)  # tiny tensors (and a busy machine): one thread is fastest; conftest restores it
    max_steps, peak, warmup = 12, 3e-3, 0.25  # 3 warm-up steps
    optim = {"lr": peak, "weight_decay": 0.05, "betas": [0.9, 0.98], "warmup": warmup, "schedule": schedule,
             "min_lr_ratio": min_ratio, "max_steps": max_steps}
    module = LengenModule(MODEL, {"name": "nope"}, VOCAB, optim=optim, seed=0)
    record = RecordLR()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, logger=False, callbacks=[record],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, torch.utils.data.DataLoader(batches(max_steps), batch_size=None))
    assert trainer.global_step == max_steps
    assert sorted(record.seen) == list(range(max_steps))
    for step, lrs in record.seen.items():
        expected = peak * lr_lambda(step, max_steps, warmup, schedule, min_ratio)
        assert len(lrs) == 2 and lrs == pytest.approx([expected, expected], rel=1e-9), step
    # the shape, spelled out: warm-up 1/3, 2/3, 1 of the peak, then the schedule
    assert [record.seen[s][0] / peak for s in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    (config,) = trainer.lr_scheduler_configs
    assert config.interval == "step" and config.frequency == 1
    after = trainer.optimizers[0].param_groups[0]["lr"] / peak  # after the last step: lambda(max_steps)
    final = {"cosine": min_ratio, "linear": min_ratio, "constant": 1.0}[schedule]
    assert after == pytest.approx(final) and math.isfinite(after)
