"""Positional encodings, one module per family, looked up by name from the ``pe`` config group.

A module registers its class with ``@register`` (the class's ``name`` is the ``+pe=NAME`` choice);
the registry imports every module of this package on first use, so a new PE is one module here
plus one ``conf/pe/<name>.yaml``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lengen.model.positional.base import PE_REGISTRY, PositionalEncoding, register
from lengen.model.random_positions import split_options

#: name -> class of every registered PE (iterating gives the sorted names).
PE_CLASSES = PE_REGISTRY


def pe_class(name: str) -> type[PositionalEncoding]:
    if name not in PE_CLASSES:
        raise ValueError(f"unknown positional encoding pe={name!r}; valid: {', '.join(PE_CLASSES)}")
    return PE_CLASSES[name]


def build_pe(cfg: Mapping[str, Any], *, d_model: int, n_heads: int, n_layers: int) -> PositionalEncoding:
    """Instantiate from a ``pe`` config: ``name`` picks the class, other keys are its options,
    except the options every PE has (``randomize``, ...: :mod:`lengen.model.random_positions`)."""
    random_positions, own = split_options(cfg)
    options = {k: v for k, v in own.items() if k != "name"}
    cls = pe_class(cfg["name"])
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = sorted(k for k in params if k not in ("self", "d_model", "n_heads", "n_layers"))
        for key in options:
            if key not in params:
                raise ValueError(f"unknown option pe.{key} of pe={cfg['name']}; valid: {', '.join(valid) or 'none'}")
    pe = cls(d_model=d_model, n_heads=n_heads, n_layers=n_layers, **options)
    table = pe.max_positions()
    if random_positions is not None and table is not None and table < random_positions.max_positions:
        raise ValueError(f"pe.max_positions_random={random_positions.max_positions} draws ids beyond the "
                         f"{table} positions of pe={cfg['name']}; raise pe.max_positions or lower pe.max_positions_random")
    pe.random_positions = random_positions
    return pe


__all__ = ["PE_CLASSES", "PositionalEncoding", "build_pe", "pe_class", "register"]
