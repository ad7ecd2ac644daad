"""Fitting one run with Lightning: the Trainer, its callbacks and loaders, resume from ``last.ckpt``.

Everything that decides *what* is trained lives in the config; this module only wires the run's
data and module into a Trainer so that a killed, preempted or Ctrl-C'd run resumes exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint, RichProgressBar
from omegaconf import OmegaConf
from rich.console import Console

from lengen.checkpoint_io import AtomicCheckpointIO
from lengen.data.batching import TokenStore, TrainBatches, eval_batches
from lengen.errors import ConfigError
from lengen.interrupt import GracefulInterrupt
from lengen.progress import PROGRESS_FILE, ProgressFile
from lengen.rundir import Run
from lengen.training import LengenModule

OPTIM_KEYS = ("lr", "weight_decay", "betas", "warmup", "schedule", "min_lr_ratio", "max_steps")


class SaveLast(Checkpoint):
    """``last.ckpt`` after every validation and at the end of training.

    A :class:`Checkpoint` subclass listed after the best-checkpoint callback, so Lightning runs it
    after that one has recorded the new best (the state a resumed run continues from).

    Not ModelCheckpoint's ``save_last``: with a monitor it writes ``last.ckpt`` only when a new best
    is saved, so once validation stops improving, "last" would hold the best weights and a killed
    run would resume from the last improvement instead of the last validation.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.path, weights_only=False)  # full state: a resume continues it

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)


def build_module(run: Run, vocab_size: int) -> LengenModule:
    optim = {k: v for k, v in OmegaConf.to_container(run.cfg.trainer, resolve=True).items() if k in OPTIM_KEYS}
    try:
        return LengenModule(OmegaConf.to_container(run.cfg.model, resolve=True),
                            OmegaConf.to_container(run.cfg.pe, resolve=True), vocab_size, optim=optim,
                            seed=int(run.cfg.seed))
    except ValueError as e:  # bad model / PE options: one line, before any training
        raise ConfigError(str(e)) from None


def build_trainer(run: Run, logger: Any, checkpoint: ModelCheckpoint) -> L.Trainer:
    t = run.cfg.trainer
    max_steps = int(t.max_steps)
    callbacks: list[L.Callback] = [GracefulInterrupt(run.checkpoint("last")), ProgressFile(run.dir / PROGRESS_FILE),
                                   checkpoint, SaveLast(run.checkpoint("last"))]
    if t.enable_progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        precision=t.precision,
        max_steps=max_steps,
        max_epochs=-1,
        val_check_interval=min(int(t.val_every), max_steps),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        gradient_clip_val=float(t.gradient_clip) or None,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_progress_bar=bool(t.enable_progress_bar),
        enable_model_summary=False,
        deterministic=bool(t.deterministic),
        log_every_n_steps=max(1, min(50, max_steps // 10)),
        default_root_dir=str(run.dir),
        plugins=[AtomicCheckpointIO()],
    )


def fit(run: Run, module: LengenModule, data, splits: dict, logger: Any, console: Console) -> Path:
    """Train (resuming from ``last.ckpt`` when it exists); return the checkpoint to evaluate."""
    cfg = run.cfg
    last = run.checkpoint("last")
    checkpoint = ModelCheckpoint(dirpath=last.parent, filename="best", monitor="val/selection", mode="max",
                                 save_top_k=1, enable_version_counter=False)
    trainer = build_trainer(run, logger, checkpoint)
    pad = data.tokenizer.pad_id
    train_store, val_store = TokenStore(splits["train"], pad), TokenStore(splits["val"], pad)
    train_loader = torch.utils.data.DataLoader(
        TrainBatches(train_store, int(cfg.trainer.batch_size), int(cfg.data.bucket_batches), int(cfg.seed),
                     start_step=lambda: trainer.global_step, pack_width=int(cfg.data.pack_width)),
        batch_size=None,
    )
    val_loader = torch.utils.data.DataLoader(eval_batches(val_store, int(cfg.eval.batch_size)), batch_size=None,
                                             collate_fn=val_store.collate)
    resume = str(last) if last.exists() else None
    if resume:
        console.print(f"resuming from {last}")
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    # Not ``checkpoint.best_model_path``: a resumed run restores it from the checkpoint as an absolute
    # path, which names the old location when the run dir was moved or copied.
    best = run.checkpoint("best")
    return best if cfg.eval.checkpoint == "best" and best.exists() else last
