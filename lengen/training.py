"""The LightningModule: next-token loss on target tokens only, AdamW with warm-up and decay,
in-range validation by exact match.

Training positions may be random per example: a task's position ids take a random start
(position coupling, ``pos_shifts`` in the batch) and ``pe.randomize`` relabels every example's
ids by a sorted random subset of a larger range. Both draw from a generator seeded by
``(seed, step)``, so a resumed run replays them; validation uses the plain ids (randomized only
with ``pe.randomize_eval``).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from lengen.data.batching import IGNORE
from lengen.data.positions import batch_positions
from lengen.metrics import token_scores
from lengen.model.build import build_model

#: stream tags: the position draws of a step never share a generator with anything else
TRAIN_POSITIONS, VALIDATION_POSITIONS = 0x504F5331, 0x504F5332


def lr_lambda(step: int, max_steps: int, warmup: float, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at ``step``: linear warm-up, then decay."""
    n_warm = max(1, round(warmup * max_steps))
    if step < n_warm:
        return (step + 1) / n_warm
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - n_warm) / max(1, max_steps - n_warm))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * shape


class LengenModule(L.LightningModule):
    def __init__(self, model_cfg: dict, pe_cfg: dict, vocab_size: int, optim: dict, seed: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_cfg, pe_cfg, vocab_size)
        self.optim, self.seed = optim, int(seed)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    def on_train_start(self) -> None:
        # A PE that reads token ids (Abacus) learns what they stand for from the training split,
        # which records its vocabulary; checkpoints then carry it to evaluation.
        if hasattr(self.model.pe, "bind_vocabulary"):
            loader = self.trainer.train_dataloader
            vocab = getattr(getattr(getattr(loader, "dataset", None), "store", None), "vocab", None)
            if vocab is None:
                raise ValueError(f"pe={self.model.pe.name} reads token ids but the training data names no vocabulary")
            self.model.bind_vocabulary(vocab)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Randomness (dropout) is a function of (seed, step): a resumed run replays it exactly.
        # Each DDP rank draws its own dropout masks (rank 0 = the single-process stream).
        torch.manual_seed(self.seed * 1_000_003 + self.global_step + self.global_rank * 1_000_000_007)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.global_step, TRAIN_POSITIONS])
        pos = batch_positions(batch, self.model.pe.random_positions, rng, training=True)
        logits = self.model(batch["input_ids"], pos=pos, segments=batch.get("segments"))
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        rng = np.random.default_rng([self.seed, self.global_step, VALIDATION_POSITIONS, batch_idx])
        pos = batch_positions(batch, self.model.pe.random_positions, rng, training=False)
        s = token_scores(self.model(batch["input_ids"], pos=pos), batch["labels"])
        n = batch["input_ids"].shape[0]
        em = s["exact"].float().mean()
        loss = s["nll"].sum() / s["n_tok"].sum().clamp_min(1)
        self.log("val/exact_match", em, prog_bar=True, batch_size=n)
        self.log("val/loss", loss, batch_size=n)
        # Checkpoint selection: exact match first, lower loss breaks ties (EM saturates in range).
        self.log("val/selection", em - 1e-3 * torch.clamp(loss, max=100.0), batch_size=n)

    def configure_optimizers(self):
        o = self.optim
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.ndim < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o["lr"],
            betas=tuple(o["betas"]),
        )
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_lambda(s, o["max_steps"], o["warmup"], o["schedule"], o["min_lr_ratio"])
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
