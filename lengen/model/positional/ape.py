"""Learned absolute positions (GPT-2 style): one trained vector per position id, added to tokens.

The table has a fixed size, so positions beyond it cannot be served at all — the pipeline calls
``check_positions`` up front, and ``embed`` guards again so a stray id never reaches an
out-of-bounds (on GPU: device-assert) embedding lookup.
"""

from __future__ import annotations

import torch
from torch import nn

from lengen.model.positional.base import PositionalEncoding, register


@register
class LearnedAbsolute(PositionalEncoding):
    name = "ape"
    def __init__(
        self, *, d_model: int, n_heads: int, n_layers: int, max_positions: int = 512, **unknown
    ) -> None:
        super().__init__(d_model=d_model, n_heads=n_heads, n_layers=n_layers)
        if unknown:
            raise ValueError(
                f"pe=ape got unknown option(s) {', '.join(sorted(unknown))}; valid: max_positions"
            )
        if isinstance(max_positions, bool) or not isinstance(max_positions, int) or max_positions < 1:
            raise ValueError(f"pe.max_positions={max_positions!r} must be a positive integer")
        self.table = nn.Embedding(max_positions, d_model)

    def max_positions(self) -> int:
        return self.table.num_embeddings

    def embed(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        if pos.numel():
            lo, hi = int(pos.min()), int(pos.max())  # one host sync; cheap next to a silent crash
            if lo < 0 or hi >= self.table.num_embeddings:
                raise ValueError(
                    f"LearnedAbsolute (pe=ape) has {self.table.num_embeddings} positions (ids 0.."
                    f"{self.table.num_embeddings - 1}) but got position ids {lo}..{hi}; raise pe.max_positions"
                )
        return x + self.table(pos).to(x.dtype)
