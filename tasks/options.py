"""Reading and checking task options: every bad value stops with one line naming it.

Tasks call these in ``__init__`` so an impossible config fails before any data is drawn, with a
:class:`TaskConfigError` the CLI prints as ``lengen: error: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lengen.tasks.base import TaskConfigError


def int_option(cfg: Mapping[str, Any], key: str, default: int, *, lo: int | None = None, hi: int | None = None) -> int:
    value = cfg.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TaskConfigError(f"task.{key}={value!r} must be an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"in {lo}..{hi}"
        raise TaskConfigError(f"task.{key}={value} is out of range; allowed: {allowed}")
    return value


def digit_range(cfg: Mapping[str, Any], lo_key: str, hi_key: str, lo_default: int, hi_default: int) -> tuple[int, int]:
    """A (min, max) pair of digit counts: both >= 1 and min <= max."""
    lo = int_option(cfg, lo_key, lo_default, lo=1)
    hi = int_option(cfg, hi_key, hi_default, lo=1)
    if lo > hi:
        raise TaskConfigError(f"empty range task.{lo_key}={lo} > task.{hi_key}={hi}; need {lo_key} <= {hi_key}")
    return lo, hi


def check_lengths(cfg: Mapping[str, Any], min_length: int, unit: str) -> None:
    """The common length keys must describe lengths this task can make (``>= min_length``)."""
    lo, hi = cfg.get("train_min"), cfg.get("train_max")
    if lo is not None and hi is not None and int(lo) > int(hi):
        raise TaskConfigError(f"empty training range task.train_min={lo} > task.train_max={hi}; need train_min <= train_max")
    if lo is not None and int(lo) < min_length:
        raise TaskConfigError(f"task.train_min={lo} is below the smallest length {min_length} ({unit}); use >= {min_length}")
    for key in ("train_lengths", "eval_lengths"):
        values: Sequence[Any] = cfg.get(key) or ()
        bad = [v for v in values if int(v) < min_length]
        if bad:
            raise TaskConfigError(f"task.{key} contains {bad[0]}, below the smallest length {min_length} ({unit})")


def reject_options(cfg: Mapping[str, Any], task: str) -> None:
    """Tasks without steps or numbers refuse ``scratchpad``/``format`` instead of ignoring them."""
    sp = cfg.get("scratchpad")
    if sp not in (None, "none", [], ()):
        raise TaskConfigError(f"task.scratchpad={sp!r}: task {task} has no steps; allowed: none")
    fmt = cfg.get("format")
    if fmt and any(v not in (None, False, 0, 0.0) for v in dict(fmt).values()):
        raise TaskConfigError(f"task.format={dict(fmt)!r}: task {task} has no multi-digit numbers; leave format unset")
