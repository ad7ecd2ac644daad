"""``lengen train``: validate, build data, train (resuming when possible), evaluate, write results.

A run directory is fully determined by the config, so rerunning the same command resumes from
``checkpoints/last.ckpt`` or, when ``results.parquet`` already exists, does nothing at all.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from lengen.checkpoint_io import AtomicCheckpointIO
from lengen.config import ConfigError, eval_lengths, train_lengths, validate
from lengen.data.batching import TokenStore, TrainBatches, eval_batches
from lengen.data.dataset import TaskData
from lengen.evaluation import evaluate, print_samples
from lengen.interrupt import GracefulInterrupt
from lengen.loggers import build_logger, log_results
from lengen.results import RESULTS_FILE, print_table, read_results, summary, with_metadata, write_results
from lengen.results import atomic_write as _atomic_write
from lengen.training import LengenModule, build_model

#: config sections that define what a run computes (a run dir must never mix two of them).
IDENTITY_KEYS = ("task", "pe", "model", "trainer", "data", "seed")
NON_IDENTITY_TRAINER_KEYS = ("accelerator", "devices", "enable_progress_bar", "val_every", "threads")
OPTIM_KEYS = ("lr", "weight_decay", "betas", "warmup", "schedule", "min_lr_ratio", "max_steps")


def identity(cfg: dict) -> dict:
    ident = {k: cfg.get(k) for k in IDENTITY_KEYS}
    ident["trainer"] = {k: v for k, v in (ident["trainer"] or {}).items() if k not in NON_IDENTITY_TRAINER_KEYS}
    ident["data"] = {k: v for k, v in (ident["data"] or {}).items() if k != "cache_dir"}
    return ident


def task_data(cfg: DictConfig, test_lengths: list[int] | None = None) -> TaskData:
    return TaskData(
        OmegaConf.to_container(cfg.task, resolve=True),
        seed=int(cfg.seed),
        train_lengths=train_lengths(cfg),
        test_lengths=test_lengths or eval_lengths(cfg),
        n_train=int(cfg.data.n_train),
        n_val_per_length=int(cfg.data.n_val_per_length),
        n_test_per_length=int(cfg.eval.n_per_length),
        cache_dir=cfg.data.get("cache_dir"),
    )


def variant_of(task_cfg: dict) -> str:
    """A short label of the task's format options (scratchpad, number format), 'default' if none."""
    parts = []
    sp = task_cfg.get("scratchpad")
    if sp not in (None, "none", [], ()):
        parts.append(f"scratchpad={sp if isinstance(sp, str) else '+'.join(map(str, sp))}")
    for k, v in sorted((task_cfg.get("format") or {}).items()):
        if v not in (None, False, 0, 0.0):
            parts.append(f"{k}={v}")
    return ",".join(parts) or "default"


def check_positions(model: torch.nn.Module, *datasets_) -> None:
    """An absolute table must cover every position the data will use (else: clear error)."""
    need = max(max(len(x) for x in ds["input_ids"]) - 1 for ds in datasets_)
    try:
        model.pe.check_positions(need)
    except ValueError as e:
        raise ConfigError(f"{e}; raise pe.max_positions to at least {need} (or lower eval.max_len)") from None


def run_meta(cfg: DictConfig) -> dict[str, Any]:
    tl = train_lengths(cfg)
    return {
        "run_id": f"{cfg.study}/{cfg.task.name}/{cfg.pe.name}/{cfg.run_id}/seed{cfg.seed}",
        "study": str(cfg.study),
        "task": str(cfg.task.name),
        "variant": variant_of(OmegaConf.to_container(cfg.task, resolve=True)),
        "pe": str(cfg.pe.name),
        "seed": int(cfg.seed),
        "train_min": min(tl),
        "train_max": max(tl),
    }


def guard_run_dir(run_dir: Path, resolved: dict) -> None:
    """Refuse to reuse a run dir that holds a different experiment (never clobber its checkpoints)."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    if identity(old) != identity(resolved):
        diff = sorted(k for k in IDENTITY_KEYS if identity(old).get(k) != identity(resolved).get(k))
        raise ConfigError(
            f"run dir {run_dir} holds a different run (differs in: {', '.join(diff)}); "
            f"set runs_root=... or study=... to start a new one"
        )


def train(cfg: DictConfig, console: Console | None = None) -> Path:
    console = console or Console()
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    guard_run_dir(run_dir, resolved)
    if (run_dir / RESULTS_FILE).exists():
        console.print(f"[bold]{run_dir}[/] already finished; nothing to do (delete {RESULTS_FILE} to re-evaluate)")
        print_table(read_results(run_dir), console)
        return run_dir

    if cfg.trainer.get("threads"):
        torch.set_num_threads(int(cfg.trainer.threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    try:
        data = task_data(cfg)
        module = LengenModule(
            OmegaConf.to_container(cfg.model, resolve=True),
            OmegaConf.to_container(cfg.pe, resolve=True),
            len(data.tokenizer),
            optim={k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k in OPTIM_KEYS},
            seed=int(cfg.seed),
        )
    except ValueError as e:  # bad model / PE / task options: one line, before any data or training
        raise ConfigError(str(e)) from None
    test, val, train_ds = data.split("test"), data.split("val"), data.split("train")
    check_positions(module.model, test, val, train_ds)

    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(run_dir / "config.yaml", lambda p: p.write_text(OmegaConf.to_yaml(cfg, resolve=True)))
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    trainer_cfg = cfg.trainer
    max_steps = int(trainer_cfg.max_steps)
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor="val/selection", mode="max",
        save_top_k=1, save_last=True, enable_version_counter=False,
    )
    callbacks: list[L.Callback] = [checkpoint, GracefulInterrupt(last)]
    if trainer_cfg.enable_progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    logger = build_logger(cfg, run_dir, resolved)
    trainer = L.Trainer(
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        precision=trainer_cfg.precision,
        max_steps=max_steps,
        max_epochs=-1,
        val_check_interval=min(int(trainer_cfg.val_every), max_steps),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        gradient_clip_val=float(trainer_cfg.gradient_clip) or None,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_progress_bar=bool(trainer_cfg.enable_progress_bar),
        enable_model_summary=False,
        deterministic=bool(trainer_cfg.deterministic),
        log_every_n_steps=max(1, min(50, max_steps // 10)),
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
    )
    train_store = TokenStore(train_ds, data.tokenizer.pad_id)
    val_store = TokenStore(val, data.tokenizer.pad_id)
    train_loader = torch.utils.data.DataLoader(
        TrainBatches(train_store, int(trainer_cfg.batch_size), int(cfg.data.bucket_batches), int(cfg.seed),
                     start_step=lambda: trainer.global_step, pack_width=int(cfg.data.pack_width)),
        batch_size=None,
    )
    val_loader = torch.utils.data.DataLoader(
        eval_batches(val_store, int(cfg.eval.batch_size)), batch_size=None, collate_fn=val_store.collate
    )
    resume = str(last) if last.exists() else None
    if resume:
        console.print(f"resuming from {last}")
    start = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    train_seconds = time.perf_counter() - start

    chosen = Path(checkpoint.best_model_path) if cfg.eval.checkpoint == "best" and checkpoint.best_model_path else last
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), OmegaConf.to_container(cfg.pe, resolve=True),
                        len(data.tokenizer))
    state = torch.load(chosen, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    device = module.device if module.device.type != "meta" else torch.device("cpu")
    model.to(device)
    start = time.perf_counter()
    rows = evaluate(model, data.task, test, data.tokenizer, train_range=(min(train_lengths(cfg)), max(train_lengths(cfg))),
                    batch_size=int(cfg.eval.batch_size), device=device, precision=str(trainer_cfg.precision))
    eval_seconds = time.perf_counter() - start
    rows = with_metadata(rows, run_meta(cfg))
    rows["checkpoint"] = chosen.name
    write_results(rows, run_dir)
    s = summary(rows)
    log_results(logger, rows, s)
    tl = train_lengths(cfg)
    print_samples(model, test, data.tokenizer, sorted({max(tl), max(eval_lengths(cfg))}), int(cfg.eval.samples),
                  console, device=device)
    print_table(rows, console, title=f"{cfg.task.name} · {cfg.pe.name} · seed {cfg.seed} ({chosen.name})")
    console.print(f"train {train_seconds:.1f}s, eval {eval_seconds:.1f}s → {run_dir}")
    return run_dir
