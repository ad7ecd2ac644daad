"""Experiment loggers: W&B (offline unless opted in), CSV, or none.

The W&B run id is derived from the run directory, so a resumed or requeued run continues the
same W&B run instead of starting a new one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pandas as pd
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger


def wandb_run_id(run_dir: Path) -> str:
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def build_logger(cfg: Any, run_dir: Path, config: dict) -> Logger | None:
    name = cfg.logger.name
    if name == "none":
        return None
    if name == "csv":
        return CSVLogger(save_dir=str(run_dir), name="", version="")
    mode = cfg.logger.get("mode", "offline")
    if mode != "online":
        os.environ.setdefault("WANDB_MODE", "offline" if mode == "offline" else "disabled")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    return WandbLogger(
        project=cfg.logger.project,
        entity=cfg.logger.get("entity"),
        group=cfg.logger.get("group"),
        name=f"{cfg.task.name}-{cfg.pe.name}-seed{cfg.seed}",
        id=wandb_run_id(run_dir),
        save_dir=str(run_dir),
        offline=mode != "online",
        mode=mode if mode in ("offline", "online", "disabled") else "offline",
        resume="allow",
        config=config,
        tags=[cfg.task.name, cfg.pe.name],
    )


def log_results(logger: Logger | None, rows: pd.DataFrame, summary: dict[str, float]) -> None:
    """Per-length table, accuracy-vs-length chart and the in/beyond summary."""
    if logger is None:
        return
    logger.log_metrics({f"eval/{k}_exact_match": v for k, v in summary.items()})
    if isinstance(logger, WandbLogger):
        import wandb

        table = wandb.Table(dataframe=rows)
        logger.experiment.log(
            {
                "eval/per_length": table,
                "eval/accuracy_vs_length": wandb.plot.line(
                    table, "eval_length", "exact_match", title="exact match vs length"
                ),
            }
        )
        logger.experiment.summary.update({f"eval/{k}_exact_match": v for k, v in summary.items()})
    logger.finalize("success")
    if isinstance(logger, WandbLogger):
        import wandb

        wandb.finish()
