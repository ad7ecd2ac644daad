"""Evaluation-time length extension of a finished run (``lengen eval run_dir=DIR extend=NAME``).

One module per method, each a :class:`~lengen.extend.base.Extension` registered by name (the
``extend`` config group, ``none`` by default); a new method is one module here plus one
``conf/extend/<name>.yaml``. :func:`build` makes a method from its config and :func:`apply`
installs it on a loaded model; :func:`annotate` adds the method's columns to the result rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lengen.errors import ConfigError
from lengen.extend.base import EXTEND_REGISTRY, Extension, register

#: name -> class of every registered method (iterating gives the sorted names).
METHODS = EXTEND_REGISTRY


def build(cfg: Mapping[str, Any] | None) -> Extension:
    """The method an ``extend`` config names (``None`` or no config = ``none``), options checked."""
    cfg = dict(cfg or {"name": "none"})
    name = cfg.pop("name", "none")
    if name not in METHODS:
        raise ConfigError(f"unknown extend={name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name](**cfg)


def training_positions(train_split) -> int:
    """Positions of the longest training sequence (the model input is the sequence minus its last token)."""
    import pyarrow.compute as pc

    table = train_split.data.table if hasattr(train_split.data, "table") else train_split.data
    return int(pc.max(pc.list_value_length(table.column("input_ids"))).as_py()) - 1


def apply(method: Extension, model, data=None) -> Extension:
    """Install ``method`` on ``model`` (the training length read from ``data``'s train split if needed)."""
    length = None
    if method.needs_length and method.opts.get("original_length") is None:
        method.check(model.pe)  # refuse before building any data
        if data is None:
            raise ConfigError(f"extend={method.name} needs the training length: give extend.original_length=N")
        length = training_positions(data.split("train"))
    method.install(model, length)
    return method


def annotate(rows, method: Extension):
    """Result rows with the method's columns, and its label appended to ``variant`` (``none``: unchanged)."""
    columns = method.columns()
    if not columns:
        return rows
    out = rows.assign(**columns)
    out["variant"] = out["variant"].astype(str) + f"+extend={method.label()}"
    return out


__all__ = ["METHODS", "Extension", "annotate", "apply", "build", "register", "training_positions"]
