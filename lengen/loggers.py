"""Experiment loggers: W&B (offline unless opted in), CSV, or none.

The W&B run id is derived from the run directory, so a resumed or requeued run continues the
same W&B run instead of starting a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
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
    if mode == "online":
        return _online_or_offline(cfg, run_dir, config)
    return _wandb(cfg, run_dir, config, mode)


def _wandb(cfg: Any, run_dir: Path, config: dict, mode: str, **settings: Any) -> WandbLogger:
    import wandb

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
        settings=wandb.Settings(**settings) if settings else None,
    )


def _online_or_offline(cfg: Any, run_dir: Path, config: dict) -> WandbLogger:
    """W&B never costs a run: an online init that fails or times out falls back to offline."""
    timeout = float(cfg.logger.get("init_timeout", 60))
    logger = _wandb(cfg, run_dir, config, "online", init_timeout=timeout)
    try:
        logger.experiment  # noqa: B018  (starts the run now, within the timeout)
        return logger
    except Exception as e:  # network, auth, server: any failure of an optional service
        import wandb

        with contextlib.suppress(Exception):
            wandb.finish(exit_code=1, quiet=True)
        warnings.warn(f"W&B online init failed ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                      f"logging offline instead (wandb sync {run_dir}/wandb/offline-run-* later)", stacklevel=2)
        os.environ["WANDB_MODE"] = "offline"
        return _wandb(cfg, run_dir, config, "offline")


def log_results(logger: Logger | None, rows: pd.DataFrame, summary: dict[str, float], step: int | None = None) -> None:
    """Per-length table, accuracy-vs-length chart and the in/beyond summary (a logging failure
    is a warning: the local results are already written)."""
    if logger is None:
        return
    try:
        _log_results(logger, rows, summary, step)
    except Exception as e:  # an optional service must never fail a finished run
        warnings.warn(f"could not log results to {type(logger).__name__} ({type(e).__name__}: {e}); "
                      f"the run's results.parquet is complete", stacklevel=2)


def _log_results(logger: Logger, rows: pd.DataFrame, summary: dict[str, float], step: int | None) -> None:
    logger.log_metrics({f"eval/{k}_exact_match": v for k, v in summary.items()}, step=step)
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
