"""The runs an analysis reads: found below the given dirs, checked to share a task, loaded.

A run takes part when it is finished (``results.parquet``: its best checkpoint is final) and has
the checkpoint asked for; others are skipped with a reason, as ``lengen report`` does. A path
that does not exist is a typo and stops the command with one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from lengen.errors import ConfigError
from lengen.model.transformer import Transformer
from lengen.report.load import find_run_dirs
from lengen.rundir import Run


@dataclass
class Loaded:
    run: Run
    model: Transformer

    @property
    def label(self) -> str:
        """``pe seed<k>`` (the run's identity within one task and study)."""
        return f"{self.run.cfg.pe.name} seed{self.run.cfg.seed}"


def collect(paths: Sequence[str | Path], checkpoint: str) -> tuple[list[Run], list[tuple[Path, str]]]:
    """Finished runs below ``paths`` (in order, each once) and the ``(dir, reason)`` of those skipped."""
    runs: list[Run] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise ConfigError(f"{raw}: no such run or sweep dir")
        if not root.is_dir():
            raise ConfigError(f"{raw} is a file; give run or sweep dirs")
        for path in find_run_dirs(root):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                run = Run.from_dir(path)
            except ConfigError as e:
                skipped.append((path, str(e)))
                continue
            if not run.finished:
                skipped.append((path, "unfinished (no results.parquet)"))
            elif not run.checkpoint(checkpoint).is_file():
                skipped.append((path, f"no checkpoints/{checkpoint}.ckpt"))
            else:
                runs.append(run)
    return runs, skipped


def check_same_task(runs: Sequence[Run]) -> None:
    """The inputs are shared, so every run must have been trained on the same task and format."""
    first = OmegaConf.to_container(runs[0].cfg.task, resolve=True)
    for run in runs[1:]:
        task = OmegaConf.to_container(run.cfg.task, resolve=True)
        if task != first:
            keys = sorted(k for k in set(first) | set(task) if first.get(k) != task.get(k))
            raise ConfigError(f"runs {runs[0].dir} and {run.dir} differ in their task ({', '.join(keys)}); "
                              f"analyse one task at a time")


def load(run: Run, checkpoint: str, vocab_size: int, n_positions: int, device) -> Loaded:
    """The run's trained model in eval mode on ``device``; one line if it cannot serve the inputs."""
    model = run.load_model(checkpoint, vocab_size)
    try:
        model.pe.check_positions(n_positions)
    except ValueError as e:
        raise ConfigError(f"{run.dir}: {e}; lower max_len (the longest input has {n_positions} tokens)") from None
    return Loaded(run, model.eval().to(device))
