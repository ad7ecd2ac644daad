"""Validation of a composed config, before any data or training: one clear line per problem."""

from __future__ import annotations

from omegaconf import DictConfig

from lengen.compose import compose, conf_dir
from lengen.errors import ConfigError
from lengen.model.positional import PE_CLASSES
from lengen.tasks import TASKS

__all__ = ["ConfigError", "compose", "conf_dir", "eval_lengths", "group_options", "train_lengths", "validate"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def train_lengths(cfg: DictConfig) -> list[int]:
    t = cfg.task
    if t.get("train_lengths"):
        return sorted(int(x) for x in t.train_lengths)
    return list(range(int(t.train_min), int(t.train_max) + 1))


def eval_lengths(cfg: DictConfig) -> list[int]:
    e = cfg.eval
    if e.get("lengths"):
        return sorted({int(x) for x in e.lengths})
    return list(range(int(e.min_len), int(e.max_len) + 1))


def validate(cfg: DictConfig, *, pe: bool = True, extra: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` naming the bad value and the valid choices (``pe=False``: a
    command that needs no model, like ``lengen data``, whose own top-level keys are ``extra``).

    Types, ranges and closed choices of every key are declared once, in :mod:`lengen.schema`;
    what remains here are the checks that need the registries and the length arithmetic.
    """
    from lengen import schema

    schema.check(cfg, pe=pe, extra=extra)
    if pe and ("pe" not in cfg or cfg.pe is None):
        raise ConfigError(f"no positional encoding chosen: add +pe=NAME with NAME one of {', '.join(group_options('pe'))}")
    if pe and cfg.pe.get("name") not in PE_CLASSES:
        raise ConfigError(f"unknown positional encoding pe={cfg.pe.get('name')!r}; valid: {', '.join(sorted(PE_CLASSES))}")
    if cfg.task.get("name") not in TASKS:
        raise ConfigError(f"unknown task task={cfg.task.get('name')!r}; valid: {', '.join(sorted(TASKS))}")
    m = cfg.model
    if int(m.n_heads) <= 0 or int(m.d_model) % int(m.n_heads):
        raise ConfigError(
            f"model.d_model={m.d_model} is not divisible by model.n_heads={m.n_heads}; pick n_heads dividing d_model"
        )
    t = cfg.task
    if not t.get("train_lengths"):
        lo, hi = int(t.train_min), int(t.train_max)
        if lo < 1 or lo > hi:
            raise ConfigError(f"empty training range task.train_min={lo} task.train_max={hi}; need 1 <= train_min <= train_max")
    tl = train_lengths(cfg)
    el = eval_lengths(cfg)
    if not el:
        raise ConfigError(f"empty evaluation range eval.min_len={cfg.eval.min_len} eval.max_len={cfg.eval.max_len}")
    if max(tl) > max(el):
        raise ConfigError(
            f"training range reaches {max(tl)} (task.train_max) but evaluation stops at {max(el)} (eval.max_len); "
            f"need train_max <= eval.max_len"
        )
    if int(cfg.trainer.max_steps) < 1:
        raise ConfigError(f"trainer.max_steps={cfg.trainer.max_steps} must be >= 1")
    if cfg.logger.name not in group_options("logger"):
        raise ConfigError(f"unknown logger={cfg.logger.name!r}; valid: {', '.join(group_options('logger'))}")
