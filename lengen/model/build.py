"""Config mappings -> a :class:`Transformer` with its PE (no Lightning: evaluation, benchmarks and
analysis build models without importing the training loop)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lengen.model.config import ModelConfig
from lengen.model.positional import build_pe
from lengen.model.transformer import Transformer


def build_model(model_cfg: Mapping[str, Any], pe_cfg: Mapping[str, Any], vocab_size: int) -> Transformer:
    cfg = ModelConfig.from_mapping(dict(model_cfg), vocab_size)
    pe = build_pe(pe_cfg, d_model=cfg.d_model, n_heads=cfg.n_heads, n_layers=cfg.n_layers)
    return Transformer(cfg, pe)
