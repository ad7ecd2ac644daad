"""Fitting one run with Lightning: the Trainer, its callbacks and loaders, resume from ``last.ckpt``.

Everything that decides *what* is trained lives in the config; this module only wires the run's
data and module into a Trainer so that a killed, preempted or Ctrl-C'd run resumes exactly.

Data parallel (``trainer.devices=N``, ``trainer.num_nodes=M``) is Lightning's DDP: ``batch_size``
stays the global batch (:class:`~lengen.data.batching.TrainBatches` deals each batch out over the
ranks), so the learning-rate recipe and the data order are those of one process. Every rank
validates on the whole (small) validation set, so all ranks log the same selection metric and
agree on the best checkpoint without a reduction; only rank 0 writes checkpoints, progress and
logs, and ranks > 0 end when training ends (evaluation, rows and the table are rank 0's).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint, RichProgressBar
from omegaconf import OmegaConf
from rich.console import Console

from lengen.checkpoint_io import AtomicCheckpointIO
from lengen.data.batching import TokenStore, TrainBatches, eval_batches
from lengen.errors import ConfigError, RunInterrupted
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


class AgreedInterrupt(GracefulInterrupt):
    """:class:`GracefulInterrupt` that also works under DDP.

    Saving a checkpoint is collective (every rank enters it), and a signal may reach one rank only
    (``kill`` of the launching process) or all of them (Ctrl-C, SLURM), at different steps. So after
    each step the ranks agree -- one all-reduce of the signal number -- and all stop together.
    """

    def stop_signal(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int | None:
        """The largest signal number any rank has received, the same on every rank.

        The agreed value is kept apart from this rank's own flag: a signal that lands while the
        all-reduce runs (its handler fires as soon as the call returns) must not be overwritten by the
        reduced 0 -- it is counted at the next step's agreement instead of being lost.
        """
        if not (trainer.world_size > 1 and torch.distributed.is_initialized()):
            return self.signum
        flag = torch.tensor([int(self.signum or 0)], device=pl_module.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item()) or None


def uses_cuda(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def deterministic_mode(t: Any) -> bool | str:
    """Lightning's ``deterministic``: True on CPU; ``"warn"`` on CUDA.

    Lightning's flag also sets ``CUBLAS_WORKSPACE_CONFIG`` (deterministic cuBLAS). On CUDA some
    kernels this model may take (FlexAttention's backward of a learned bias, atomics in fused
    attention backward) have no deterministic version, and in strict mode such an op stops the job
    -- after hours in a queue. ``"warn"`` keeps every deterministic kernel and cuBLAS setting but
    only warns on the others, so bit-identical reruns are promised on CPU only.
    """
    if not bool(t.deterministic):
        return False
    return "warn" if uses_cuda(str(t.accelerator)) else True


def reexec_as_script() -> None:
    """Make Lightning's DDP start ranks > 0 as ``python <sys.argv[0]> <overrides>``.

    Lightning re-executes ``python -m <__main__'s module> sys.argv[1:]`` when the command ran as a
    module (``python -m lengen.cli train ...``); ``lengen.cli`` leaves ``sys.argv`` as ``[.../train.py,
    *overrides]``, which only the script form re-enters (the module form would lose ``train``).
    """
    import __main__

    main_file = getattr(__main__, "__file__", None)
    if getattr(__main__, "__spec__", None) is not None and main_file and sys.argv and \
            Path(sys.argv[0]).resolve() != Path(main_file).resolve():
        __main__.__spec__ = None


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
    callbacks: list[L.Callback] = [AgreedInterrupt(run.checkpoint("last")), ProgressFile(run.dir / PROGRESS_FILE),
                                   checkpoint, SaveLast(run.checkpoint("last"))]
    if t.enable_progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=int(t.get("num_nodes", 1)),
        use_distributed_sampler=False,  # training shards itself (TrainBatches); validation runs whole on every rank
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
        deterministic=deterministic_mode(t),
        log_every_n_steps=max(1, min(50, max_steps // 10)),
        default_root_dir=str(run.dir),
        plugins=[AtomicCheckpointIO()],
    )


def fit(run: Run, module: LengenModule, data, splits: dict, logger: Any, console: Console) -> Path:
    """Train (resuming from ``last.ckpt`` when it exists); return the checkpoint to evaluate.

    Under DDP, ranks > 0 exit here (status 0) once training ends or is interrupted.
    """
    cfg = run.cfg
    last = run.checkpoint("last")
    checkpoint = ModelCheckpoint(dirpath=last.parent, filename="best", monitor="val/selection", mode="max",
                                 save_top_k=1, enable_version_counter=False)
    trainer = build_trainer(run, logger, checkpoint)
    pad = data.tokenizer.pad_id
    train_store, val_store = TokenStore(splits["train"], pad), TokenStore(splits["val"], pad)
    batches = TrainBatches(train_store, int(cfg.trainer.batch_size), int(cfg.data.bucket_batches), int(cfg.seed),
                           start_step=lambda: trainer.global_step, pack_width=int(cfg.data.pack_width),
                           shard=lambda: (trainer.global_rank, trainer.world_size))
    world = trainer.world_size
    if world > 1:
        check_shards(cfg, batches, world)
        check_reexec(trainer)
        reexec_as_script()
        if cfg.trainer.get("threads"):  # Lightning would set cores / processes threads otherwise
            os.environ.setdefault("OMP_NUM_THREADS", str(int(cfg.trainer.threads)))
        # every rank validates on the whole set: the epoch-level metrics need no sync_dist
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
    train_loader = torch.utils.data.DataLoader(batches, batch_size=None)
    val_loader = torch.utils.data.DataLoader(eval_batches(val_store, int(cfg.eval.batch_size)), batch_size=None,
                                             collate_fn=val_store.collate)
    if cfg.trainer.get("compile"):
        module.model.compile()  # in place: the state dict (checkpoints) keeps its keys
    resume = str(last) if last.exists() else None
    if resume and trainer.is_global_zero:
        console.print(f"resuming from {last}")
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    except RunInterrupted:
        if trainer.is_global_zero:
            raise
        sys.exit(0)  # rank 0 reports the interruption
    if not trainer.is_global_zero:
        sys.exit(0)
    # Not ``checkpoint.best_model_path``: a resumed run restores it from the checkpoint as an absolute
    # path, which names the old location when the run dir was moved or copied.
    best = run.checkpoint("best")
    return best if cfg.eval.checkpoint == "best" and best.exists() else last


def check_reexec(trainer: L.Trainer) -> None:
    """Refuse DDP that Lightning would start by re-executing a sweep's command line (``-m`` with a
    local, joblib or submitit-local launcher): every rank would rerun the whole sweep. Under SLURM the
    job's tasks are the ranks and nothing is re-executed."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if trainer.strategy.cluster_environment.creates_processes_externally or not HydraConfig.initialized():
        return
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError(f"trainer.devices={trainer.num_devices} in a sweep (-m) needs a launcher that starts one "
                          f"task per device (hydra/launcher=slurm); locally, train each config with its own "
                          f"lengen train command")


def check_shards(cfg: Any, batches: TrainBatches, world: int) -> None:
    """The global batch must split evenly over ``world`` processes (equal shares keep the mean of the
    ranks' losses the loss of the whole batch, as closely as token counts allow)."""
    bs = int(cfg.trainer.batch_size)
    if bs % world:
        raise ConfigError(f"trainer.batch_size={bs} is the global batch (all processes together) and must be "
                          f"divisible by the {world} processes (trainer.devices x trainer.num_nodes)")
    smallest = batches.smallest_batch()
    if smallest < world:
        raise ConfigError(f"the last batch of each epoch holds {smallest} of the {len(batches.store)} training "
                          f"examples, fewer than the {world} processes; change data.n_train by a few examples")
