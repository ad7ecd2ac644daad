"""The LightningModule: next-token loss on target tokens only, AdamW with warm-up and decay,
in-range validation by exact match."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from lengen.data.batching import IGNORE
from lengen.metrics import token_scores
from lengen.model.build import build_model


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

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Randomness (dropout) is a function of (seed, step): a resumed run replays it exactly.
        torch.manual_seed(self.seed * 1_000_003 + self.global_step)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["input_ids"], pos=batch.get("pos"), segments=batch.get("segments"))
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        s = token_scores(self.model(batch["input_ids"]), batch["labels"])
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
