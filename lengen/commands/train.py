"""``lengen train`` (a Hydra app): validate, build data, train (resuming when possible), evaluate.

A run directory is fully determined by the config, so rerunning the same command resumes from
``checkpoints/last.ckpt`` or, when ``results.parquet`` already exists, does nothing at all. The
module is runnable as a script, so Lightning's DDP can re-execute ``sys.argv`` into it.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import lengen.resolvers  # noqa: F401  (registers ${lengen_run_id:...})
from lengen.errors import guarded


def train(cfg: DictConfig, console=None, *, in_sweep: bool = False) -> Path:
    """Train and evaluate one run; in a sweep, a run locked by another process is skipped."""
    import lightning as L
    import torch
    from rich.console import Console

    from lengen.config import eval_lengths
    from lengen.evaluation import evaluate_run, print_samples
    from lengen.lock import RunLocked
    from lengen.loggers import build_logger, log_results
    from lengen.progress import read_progress
    from lengen.results import CONFIG_FILE, RESULTS_FILE, print_table, read_results, summary, write_results
    from lengen.rundir import Run
    from lengen.trainer import build_module, fit

    console = console or Console()
    run = Run.from_cfg(cfg)
    run.guard()
    if run.finished:
        rows = read_results(run.dir)  # a damaged file: one line naming it and the fix
        if not (run.dir / CONFIG_FILE).exists():
            run.write_config()  # a finished run always carries the config that made it
        console.print(f"[bold]{run.dir}[/] already finished; nothing to do (delete {RESULTS_FILE} to re-evaluate)")
        print_table(rows, console)
        return run.dir
    if cfg.trainer.get("threads"):
        torch.set_num_threads(int(cfg.trainer.threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data = run.task_data()
    module = build_module(run, len(data.tokenizer))
    splits = {s: data.split(s) for s in ("test", "val", "train")}
    run.check_positions(module.model, *splits.values())
    # Bad options fail above, before anything is written; the lock comes before the first write.
    try:
        lock = run.lock()
        lock.acquire()
    except RunLocked as e:
        if not in_sweep:
            raise
        console.print(f"[yellow]skipping[/] {run.dir}: {e}")
        return run.dir
    try:
        if run.finished:  # another process finished it while we waited
            console.print(f"[bold]{run.dir}[/] already finished; nothing to do")
            return run.dir
        run.write_config()
        meta = run.write_meta()
        logger = build_logger(cfg, run.dir, {**OmegaConf.to_container(cfg, resolve=True), **meta})
        start = time.perf_counter()
        chosen = fit(run, module, data, splits, logger, console)
        train_seconds = time.perf_counter() - start

        device = module.device if module.device.type != "meta" else torch.device("cpu")
        model = run.load_model(chosen, len(data.tokenizer)).to(device)
        start = time.perf_counter()
        rows = evaluate_run(run, model, data, splits["test"], checkpoint=chosen.name, device=device)
        eval_seconds = time.perf_counter() - start
        progress = read_progress(run.dir) or {}
        run.record_timing(train_seconds + float(progress.get("seconds_before", 0.0)), eval_seconds,
                          sessions=int(progress.get("sessions", 1)))
        write_results(rows, run.dir)
        log_results(logger, rows, summary(rows), step=module.global_step)
    finally:
        lock.release()
    lengths = sorted({run.train_range[1], max(eval_lengths(cfg))})
    print_samples(model, splits["test"], data.tokenizer, lengths, int(cfg.eval.samples), console, device=device)
    print_table(rows, console, title=f"{cfg.task.name} · {cfg.pe.name} · seed {cfg.seed} ({chosen.name})")
    console.print(f"train {train_seconds:.1f}s, eval {eval_seconds:.1f}s → {run.dir}")
    return run.dir


@hydra.main(config_path="pkg://lengen.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    guarded(train, cfg, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN)


if __name__ == "__main__":
    main()
