"""A run directory and everything that knows its layout.

``runs/<study>/<task>/<pe>/<overrides>/seed<k>/`` holds the resolved ``config.yaml``, ``meta.yaml``
(hardware and software it ran on), ``checkpoints/{last,best}.ckpt``, the W&B offline run, the
result rows and ``evals/<overrides>/`` of later ``lengen eval`` calls. :class:`Run` is the one
place that builds the run's task data, guards the directory against a different experiment,
locks it against a second writer and loads a trained model from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from lengen.config import eval_lengths, train_lengths, validate
from lengen.errors import ConfigError
from lengen.io import atomic_text
from lengen.results.schema import CONFIG_FILE, META_FILE, RESULTS_FILE

#: config sections that define what a run computes (a run dir must never mix two of them).
IDENTITY_KEYS = ("task", "pe", "model", "trainer", "data", "seed")
#: trainer / data keys that change where or how fast a run computes, not what.
NON_IDENTITY_KEYS = {"trainer": ("accelerator", "devices", "num_nodes", "enable_progress_bar", "val_every", "threads",
                                 "compile"),
                     "data": ("cache_dir",)}
CHECKPOINTS = ("best", "last")


def identity(cfg: dict) -> dict:
    ident = {k: cfg.get(k) for k in IDENTITY_KEYS}
    for section, keys in NON_IDENTITY_KEYS.items():
        ident[section] = {k: v for k, v in (ident[section] or {}).items() if k not in keys}
    return ident


def pe_label(pe_cfg: dict) -> str:
    """The PE as tables name it: its name, '+randomized' when training positions are randomized
    (Ruoss et al. 2023), and the base of a wrapper (Abacus on NoPE: 'abacus(nope)')."""
    label = str(pe_cfg.get("name"))
    if pe_cfg.get("base") and label == "abacus":
        label += f"({pe_cfg['base']})"
    return label + ("+randomized" if pe_cfg.get("randomize") else "")


def variant_of(task_cfg: dict) -> str:
    """A short label of the task's format options (scratchpad, number format, a task's own position
    ids such as position coupling), 'default' if none."""
    parts = []
    sp = task_cfg.get("scratchpad")
    if sp not in (None, "none", [], ()):
        parts.append(f"scratchpad={sp if isinstance(sp, str) else '+'.join(map(str, sp))}")
    if task_cfg.get("positions") not in (None, "default"):
        parts.append(f"positions={task_cfg['positions']}")
    for k, v in sorted((task_cfg.get("format") or {}).items()):
        if v not in (None, False, 0, 0.0):
            parts.append(f"{k}={v}")
    return ",".join(parts) or "default"


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True)


def task_data(c: DictConfig):
    """The three splits a config defines (``lengen data`` uses it without a run dir)."""
    from lengen.data.dataset import TaskData

    return TaskData(
        _container(c.task),
        seed=int(c.seed),
        train_lengths=train_lengths(c),
        test_lengths=eval_lengths(c),
        n_train=int(c.data.n_train),
        n_val_per_length=int(c.data.n_val_per_length),
        n_test_per_length=int(c.eval.n_per_length),
        cache_dir=c.data.get("cache_dir"),
    )


class _NoLock:
    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


@dataclass
class Run:
    """One run: its resolved config and its directory."""

    cfg: DictConfig
    dir: Path

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> Run:
        """A run about to be trained: the config is validated before anything touches the disk."""
        validate(cfg)
        return cls(cfg, Path(cfg.run_dir))

    @classmethod
    def from_dir(cls, run_dir: str | Path) -> Run:
        """A run that was trained: its stored ``config.yaml`` (one line if missing or damaged)."""
        if isinstance(run_dir, bool) or not isinstance(run_dir, (str, Path, int)) or not str(run_dir):
            raise ConfigError(f"run_dir={run_dir!r} must be the folder of a finished lengen train run")
        run_dir = Path(str(run_dir))
        path = run_dir / CONFIG_FILE
        try:
            found = path.is_file()
        except OSError as e:  # e.g. a name longer than the file system allows
            raise ConfigError(f"run_dir={str(run_dir)[:80]}...: {e.strerror}") from None
        if not found:
            raise ConfigError(f"run_dir={run_dir} is not a lengen run directory (no {CONFIG_FILE} there)")
        try:
            cfg = OmegaConf.load(path)
        except Exception as e:  # yaml/omegaconf raise many types
            raise ConfigError(f"cannot read {path} ({type(e).__name__}); it is damaged -- rerun the train "
                              f"command of this run to rewrite it") from None
        if not isinstance(cfg, DictConfig) or "task" not in cfg or "pe" not in cfg:
            raise ConfigError(f"{path} is not a lengen run config; rerun the train command of this run to rewrite it")
        return cls(cfg, run_dir)

    # -- identity ------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """``<study>/<task>/<pe>/<overrides>/seed<k>``: the run dir below ``runs_root``."""
        c = self.cfg
        return f"{c.study}/{c.task.name}/{c.pe.name}/{c.run_id}/seed{c.seed}"

    def meta(self) -> dict[str, Any]:
        """The identity columns every result row of this run carries."""
        tl = train_lengths(self.cfg)
        return {
            "run_id": self.run_id,
            "study": str(self.cfg.study),
            "task": str(self.cfg.task.name),
            "variant": variant_of(_container(self.cfg.task)),
            "pe": pe_label(_container(self.cfg.pe)),
            "seed": int(self.cfg.seed),
            "train_min": min(tl),
            "train_max": max(tl),
        }

    @property
    def train_range(self) -> tuple[int, int]:
        tl = train_lengths(self.cfg)
        return min(tl), max(tl)

    @property
    def finished(self) -> bool:
        return (self.dir / RESULTS_FILE).exists()

    def guard(self) -> None:
        """Refuse a run dir that holds a different experiment (never clobber its checkpoints)."""
        path = self.dir / CONFIG_FILE
        if not path.exists():
            return
        try:
            old = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            raise ConfigError(f"cannot read {path}; it is damaged -- move it aside to let this run rewrite it, "
                              f"or pick another runs_root") from None
        new = _container(self.cfg)
        if not isinstance(old, dict) or identity(old) != identity(new):
            diff = sorted(k for k in IDENTITY_KEYS if not isinstance(old, dict)
                          or identity(old).get(k) != identity(new).get(k))
            raise ConfigError(f"run dir {self.dir} holds a different run (differs in: {', '.join(diff)}); "
                              f"set runs_root=... or study=... to start a new one")

    def lock(self):
        """The run dir's writer lock (a second process on the same run stops with one line).

        Only the process of global rank 0 locks: Lightning's DDP re-executes the command for the
        other ranks, which must join the run, not be refused by it.
        """
        from lengen.lock import RunLock

        if not self.is_writer:
            return _NoLock()
        return RunLock(self.dir)

    @property
    def is_writer(self) -> bool:
        """True in the process of global rank 0, the only one that writes into the run dir."""
        import os

        return all(os.environ.get(k, "0") == "0" for k in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))

    # -- files ----------------------------------------------------------------------------------

    def checkpoint(self, name: str) -> Path:
        return self.dir / "checkpoints" / f"{name}.ckpt"

    def write_config(self) -> None:
        if not self.is_writer:
            return
        atomic_text(self.dir / CONFIG_FILE, OmegaConf.to_yaml(self.cfg, resolve=True))

    def write_meta(self) -> dict[str, Any]:
        """Record the hardware and software the run trained on (bit-reproducibility holds only there)."""
        from lengen.hardware import hardware_info, same_hardware

        meta = {"hardware": hardware_info()}
        if not self.is_writer:  # DDP ranks > 0: the same facts, written once by rank 0
            return meta
        path = self.dir / META_FILE
        try:
            old = yaml.safe_load(path.read_text()) if path.exists() else None
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            old = None
        if isinstance(old, dict) and isinstance(old.get("hardware"), dict):
            # A resumed run keeps where it started; a run that moved machines says so.
            first = old.get("started_on", old["hardware"])
            if not same_hardware(first, meta["hardware"]):
                import warnings

                warnings.warn(f"{self.dir} started on {first.get('label')} and resumes on "
                              f"{meta['hardware'].get('label')}: its numbers are not bit-reproducible",
                              stacklevel=2)
                meta["started_on"] = first
        atomic_text(path, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
        return meta

    def record_timing(self, train_seconds: float, eval_seconds: float, sessions: int = 1) -> None:
        """Add wall times to meta.yaml (a study's budget is read from its runs, not from memory).

        The load average next to them says whether the cores were shared while the run trained;
        ``sessions`` > 1 says the run was resumed and ``train_seconds`` sums all its sessions.
        """
        import os

        path = self.dir / META_FILE
        try:
            meta = yaml.safe_load(path.read_text()) if path.exists() else None
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            meta = None
        meta = meta if isinstance(meta, dict) else {}
        meta["timing"] = {"train_seconds": round(float(train_seconds), 1),
                          "eval_seconds": round(float(eval_seconds), 1),
                          "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                          "sessions": int(sessions)}
        atomic_text(path, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))

    # -- data and model --------------------------------------------------------------------------

    def task_data(self):
        """The run's three splits (built once, then read from the cache)."""
        return task_data(self.cfg)

    def build_model(self, vocab_size: int):
        from lengen.model.build import build_model

        try:
            return build_model(_container(self.cfg.model), _container(self.cfg.pe), vocab_size)
        except ValueError as e:  # bad model / PE options: one line, before any data or training
            raise ConfigError(str(e)) from None

    def check_positions(self, model, *datasets_) -> None:
        """An absolute table must cover every position the data will use (else: clear error)."""
        need = max(max(len(x) for x in ds["input_ids"]) - 1 for ds in datasets_)
        try:
            model.pe.check_positions(need)
        except ValueError as e:
            raise ConfigError(f"{e}; raise pe.max_positions to at least {need} (or lower eval.max_len)") from None

    def load_model_path(self, checkpoint: str | Path) -> Path:
        """``best``/``last`` (or a path) -> the checkpoint file; one line when it is missing."""
        path = Path(checkpoint) if str(checkpoint) not in CHECKPOINTS else self.checkpoint(str(checkpoint))
        if not path.is_file():
            raise ConfigError(f"eval.checkpoint={checkpoint}: {path} does not exist; valid: "
                              f"{', '.join(CHECKPOINTS)} (of a trained run)")
        return path

    def load_model(self, checkpoint: str | Path, vocab_size: int):
        """The trained model from ``checkpoints/<best|last>.ckpt`` (or a path), safely, on CPU."""
        from lengen.checkpoint_io import load_checkpoint

        path = self.load_model_path(checkpoint)
        model = self.build_model(vocab_size)
        state = load_checkpoint(path).get("state_dict")
        if not isinstance(state, dict):
            raise ConfigError(f"{path} holds no model weights; move it aside and retrain this run")
        try:
            model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise ConfigError(f"the weights in {path} do not fit the model this config builds "
                              f"({first[1].strip() if len(first) > 1 else first[0]}); an override changed the "
                              f"model shape (model.* or pe.*)") from None
        return model
